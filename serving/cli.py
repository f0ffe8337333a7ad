"""Both servers' start-up: the settings they both declare, the metrics directory, the versions of
the libraries whose internals they subclass, kserve's flags and ours on one parser, quiet logging.
It imports no kserve: `python -m predictor` (or transformer) prepares the metrics directory before
kserve imports prometheus_client, which picks its multiprocess mode then."""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

from pydantic import Field, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, CliSettingsSource

from bundle.conventions import CLI_CONVENTION

KSERVE_VERSION, UVICORN_VERSION = "0.21.0", "0.55.0"
PINNED = {  # package -> (the version written for, the modules to review on an upgrade)
    "kserve": (KSERVE_VERSION, "serving/kserve_seam.py, predictor/kserve_seam.py, predictor/grpc_service.py "
               "and transformer/kserve_seam.py"),
    "uvicorn": (UVICORN_VERSION, "serving/deadline.py"),
}  # fmt: skip


class VersionError(RuntimeError):
    """Another version than the one written for: review first, rather than fail in ways no file explains."""


def check_version(package: str, installed: str | None = None) -> None:
    written_for, modules = PINNED[package]
    installed = installed or metadata.version(package)
    if installed != written_for:
        raise VersionError(
            f"{package} {installed} is installed; {modules} were written for {package} {written_for}: "
            "review them against the new version, then update serving/cli.py"
        )


def check_versions() -> None:
    for package in PINNED:
        check_version(package)


class ServingSettings(BaseSettings):
    """Each server subclasses it with its own `model_config` (its env prefix; `extra="ignore"`:
    kserve's parser is the root parser, its flags are not ours to refuse)."""

    max_body_bytes: PositiveInt = Field(1_048_576, description="request body limit (413 above)")
    fast_path: bool = Field(
        True,
        description="answer v2 /infer and v1 :predict JSON requests without kserve's FastAPI stack (same "
        "checks, metrics and answers; anything else, e.g. the transformer's relayed calls, goes to "
        "kserve's route)",
    )
    quiet: bool = Field(True, description="no per-request log lines (kserve's cost ~20%)")
    api_token: SecretStr | None = Field(
        None,
        description="optional bearer token required on inference routes (off by default; in a mesh, "
        "prefer mTLS and an AuthorizationPolicy); set it from a Secret",
    )


def prepare_metrics_dir() -> None:
    """Multiprocess metrics need their directory before prometheus_client is first imported (kserve
    imports it), and a restarted container must not add its counters to the previous run's."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="forecaster-metrics-")
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):
        stale.unlink()


def parse_with(settings_class, parser: argparse.ArgumentParser, argv: list[str]):
    """kserve's arguments and a settings class of ours on one parser (flags, then the class's
    environment variables), in the one CLI convention."""
    cli = CliSettingsSource(settings_class, root_parser=parser, **CLI_CONVENTION)
    settings = settings_class(_cli_settings_source=cli(args=argv))
    args, _ = parser.parse_known_args(argv)
    return args, settings


def quiet_log_config(directory: str) -> str:
    """kserve's logging config with per-request lines (access, trace) at WARNING."""
    from kserve.logging import KSERVE_LOG_CONFIG

    config = copy.deepcopy(KSERVE_LOG_CONFIG)
    config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    config["loggers"]["kserve.trace"]["level"] = "WARNING"
    config["loggers"]["predictor"] = {"handlers": ["kserve"], "level": "INFO", "propagate": False}
    config["loggers"]["predictor.rejected"] = {"handlers": ["kserve"], "level": "WARNING", "propagate": False}
    path = Path(directory) / "forecaster-logging.json"
    path.write_text(json.dumps(config))
    return str(path)


def quiet_kserve() -> None:
    """No per-request log lines: ModelServer reads these module-level args when it configures logging."""
    from kserve import model_server

    model_server.args.log_config_file = quiet_log_config(tempfile.mkdtemp(prefix="forecaster-"))
    model_server.args.enable_latency_logging = False
