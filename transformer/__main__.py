"""`python -m transformer`: kserve's flags (--predictor_host, ...) plus ours, then kserve's ModelServer
with a v2 PredictorConfig and no gRPC server, around the one-call model."""

from __future__ import annotations

import argparse
import sys
import warnings
from datetime import timedelta

from serving import cli

if __name__ == "__main__":  # first: prometheus_client (kserve, the cache) picks its mode on import
    cli.prepare_metrics_dir()

from kserve import ModelServer, model_server
from kserve.predictor_config import PredictorConfig

from marketdata.cache import MarketData
from marketdata.calendar import SessionCalendar
from marketdata.sources import CsvSource, SampleSource, Source, YahooSource
from serving.kserve_seam import LockedRepository, ServingDataPlane
from transformer.kserve_seam import TransformerRESTServer
from transformer.model import OneCallTransformer
from transformer.settings import TransformerSettings
from transformer.upstream import PredictorClient

PREDICTOR_TIMEOUT_S = 10  # kserve's --predictor_request_timeout_seconds defaults to 600 s


class TransformerParser(argparse.ArgumentParser):
    """kserve's flags with one default of our own: a predictor that stalls is given up on after
    PREDICTOR_TIMEOUT_S, not kserve's 600 s (its actions are shared with kserve's parser, so the
    default goes in the namespace, not on them)."""

    def parse_known_args(self, args=None, namespace=None):
        if namespace is None:
            namespace = argparse.Namespace(predictor_request_timeout_seconds=PREDICTOR_TIMEOUT_S)
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    """kserve's parser as parent (its --model_name, --http_port, --predictor_host, ...) plus ours."""
    return TransformerParser(
        parents=[model_server.parser], prog="python -m transformer",
        epilog=f"--predictor_request_timeout_seconds defaults to {PREDICTOR_TIMEOUT_S} here (kserve's "
        "600): it bounds each request to the predictor, retries included, head and body.",
    )  # fmt: skip


def parse(argv: list[str]) -> tuple[argparse.Namespace, TransformerSettings]:
    return cli.parse_with(TransformerSettings, build_parser(), argv)


def source_of(settings: TransformerSettings) -> Source:
    if settings.source == "csv":
        return CsvSource(settings.csv)
    if settings.source == "sample":
        return SampleSource()
    return YahooSource(settings.history_days, settings.fetch_timeout_s)


def predictor_config(args: argparse.Namespace) -> PredictorConfig:
    """Always v2 REST to the predictor, whatever kserve's default (v1) says."""
    return PredictorConfig(
        predictor_host=args.predictor_host, predictor_protocol="v2",
        predictor_use_ssl=args.predictor_use_ssl,
        predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
        predictor_request_retries=args.predictor_request_retries,
        predictor_health_check=args.enable_predictor_health_check,
    )  # fmt: skip


def serve(argv: list[str]) -> None:
    cli.check_versions()
    args, settings = parse(argv)
    if not args.predictor_host:
        raise SystemExit("python -m transformer: --predictor_host is required (KServe sets it in a cluster)")
    if settings.quiet:
        cli.quiet_kserve()
    config = predictor_config(args)
    calendar = SessionCalendar(settings.calendar, timedelta(minutes=settings.settle_minutes))
    market = MarketData(source_of(settings), calendar, settings.policy)
    predictor = PredictorClient(config.predictor_base_url, args.model_name, settings.upstream_token,
                                float(config.timeout), config.retries, settings.metadata_ttl_s)  # fmt: skip
    model = OneCallTransformer(args.model_name, settings, market, calendar, predictor)
    model_server.RESTServer = TransformerRESTServer
    server = ModelServer(
        workers=1,  # one cache per process: more workers would fetch once each
        enable_grpc=False,
        predictor_config=config,
        enable_latency_logging=model_server.args.enable_latency_logging,
    )
    server.dataplane = ServingDataPlane(model_registry=server.registered_models)
    server.model_repository_extension = LockedRepository(server.registered_models)
    model.load()
    server.register_model(model)
    server.start([])


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")  # kserve's, not ours
    serve(sys.argv[1:])
