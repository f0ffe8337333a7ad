"""`python -m predictor`: kserve's flags plus ours, then kserve's ModelServer around the models, as
kserve's own servers (sklearnserver) do: a parser on `kserve.model_server.parser`, `ModelServer`."""

from __future__ import annotations

import argparse
import sys
import warnings

from serving import cli

if __name__ == "__main__":  # first: prometheus_client (kserve imports it) picks its mode on import
    cli.prepare_metrics_dir()

from kserve import ModelServer, model_server

from bundle import redact
from bundle.source import bound_mlflow_requests
from predictor import kserve_seam
from predictor.model import ForecastModel
from predictor.settings import PredictorSettings
from predictor.sources import SourceListError, model_sources
from serving.kserve_seam import LockedRepository


def build_parser() -> argparse.ArgumentParser:
    """kserve's parser as parent (its --model_name, --http_port, --workers, ...) plus ours."""
    return argparse.ArgumentParser(parents=[model_server.parser], prog="python -m predictor")


def parse(argv: list[str]) -> tuple[argparse.Namespace, PredictorSettings]:
    """kserve's arguments and our settings (flags, then FORECASTER_PREDICTOR_* variables)."""
    return cli.parse_with(PredictorSettings, build_parser(), argv)


def serve(argv: list[str]) -> None:
    """Check the versions, parse, assemble kserve's ModelServer around its models, run."""
    redact.install()  # no credential in any log line of this process (its workers: create_application)
    cli.check_versions()
    args, settings = parse(argv)
    bound_mlflow_requests(settings.mlflow_timeout_s, settings.mlflow_retries)
    if settings.quiet:
        cli.quiet_kserve()
    kserve_seam.install()
    try:
        sources = model_sources(settings, args.model_name)
    except SourceListError as exc:
        raise SystemExit(f"python -m predictor: {redact.redact(str(exc))}") from None
    models = [ForecastModel(m.name, settings, m.source) for m in sources]
    server = ModelServer(enable_latency_logging=model_server.args.enable_latency_logging)
    server.dataplane = kserve_seam.ForecastDataPlane(model_registry=server.registered_models)
    server.model_repository_extension = LockedRepository(server.registered_models)
    for model in models:  # kserve's repository routes by name; each is ready after its self-test
        server.register_model(model)
    for model in models:
        model.start_loading()  # this process's loader (gRPC, and REST with one worker)
    server.start([])


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")  # kserve's, not ours
    serve(sys.argv[1:])
