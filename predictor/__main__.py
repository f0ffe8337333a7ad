"""`python -m predictor`: kserve's flags plus ours, then kserve's ModelServer."""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import warnings
from pathlib import Path


def _metrics_dir() -> None:
    """Multiprocess metrics must be configured before prometheus_client is first imported."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="forecaster-metrics-")
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):  # counters of a previous container run
        stale.unlink()


_metrics_dir()
warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")  # kserve's, not ours

from kserve import ModelServer, model_server  # noqa: E402
from kserve.logging import KSERVE_LOG_CONFIG  # noqa: E402

from predictor import server  # noqa: E402
from predictor.model import ForecastModel  # noqa: E402
from predictor.settings import PredictorSettings  # noqa: E402

FIELDS = PredictorSettings.model_fields


def _bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """kserve's parser as parent (its --model_name, --http_port, --workers, ...) plus ours."""
    parser = argparse.ArgumentParser(parents=[model_server.parser], prog="python -m predictor")
    for name, field in FIELDS.items():
        kind = _bool if field.annotation in (bool, "bool") else str
        parser.add_argument(f"--{name}", type=kind, default=None,
                            help=f"{field.description or ''} (env FORECASTER_PREDICTOR_{name.upper()}; "
                            f"default {field.default})".replace("%", "%%"))  # fmt: skip
    return parser


def quiet_log_config(directory: str) -> str:
    """kserve's logging config with per-request lines (access, trace) at WARNING."""
    config = copy.deepcopy(KSERVE_LOG_CONFIG)
    config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    config["loggers"]["kserve.trace"]["level"] = "WARNING"
    config["loggers"]["predictor"] = {"handlers": ["kserve"], "level": "INFO", "propagate": False}
    path = Path(directory) / "forecaster-logging.json"
    path.write_text(json.dumps(config))
    return str(path)


def main() -> None:
    args, _ = build_parser().parse_known_args()
    settings = PredictorSettings(**{k: v for k, v in vars(args).items() if k in FIELDS and v is not None})
    if settings.quiet:
        model_server.args.log_config_file = quiet_log_config(tempfile.mkdtemp(prefix="forecaster-"))
        model_server.args.enable_latency_logging = False
    server.install()
    model = ForecastModel(args.model_name, settings)
    kserve_server = ModelServer(enable_latency_logging=model_server.args.enable_latency_logging)
    kserve_server.dataplane = server.ForecastDataPlane(model_registry=kserve_server.registered_models)
    kserve_server.model_repository_extension = server.LockedRepository(kserve_server.registered_models)
    kserve_server.register_model(model)  # not ready yet: live at once, ready after the self-test
    model.start_loading()  # this process (gRPC, and REST with one worker)
    kserve_server.start([])


if __name__ == "__main__":
    main()
