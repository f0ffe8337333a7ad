"""The transformer's touches of kserve's internals, beside the predictor's (predictor/kserve_seam.py,
whose version check, refusals, data plane and logging it reuses): its REST server with the
predictor's Gatekeeper (token, body limit, /metrics), and kserve's ModelServer assembled with a v2
PredictorConfig and no gRPC server.
"""

from __future__ import annotations

import argparse
import logging
import tempfile

from fastapi.responses import JSONResponse
from kserve import ModelServer, model_server
from kserve.predictor_config import PredictorConfig
from kserve.protocol.rest.server import RESTServer

from marketdata.cache import CachePolicy, MarketData, StaleDataError
from marketdata.calendar import SessionCalendar
from marketdata.sources import CsvSource, SampleSource, Source, YahooSource
from predictor import kserve_seam as seam
from predictor.metrics import REJECTED
from transformer.settings import TransformerSettings
from transformer.upstream import PredictorClient, UpstreamError


def refusal(exc: StaleDataError | UpstreamError) -> tuple[int, dict]:
    """Market data too old or missing, or the predictor unable to answer: 503/502 with the reason
    (counted and logged; the fast path answers these too)."""
    status = exc.status if isinstance(exc, UpstreamError) else 503
    REJECTED.labels("stale_data" if isinstance(exc, StaleDataError) else "upstream").inc()
    level = logging.WARNING if status >= 500 else logging.INFO  # a relayed 4xx is the client's
    seam.rejections.log(level, "refused (%d): %s", status, exc)
    return status, {"error": str(exc)}


async def refused(_request, exc: Exception) -> JSONResponse:
    status, body = refusal(exc)
    return JSONResponse(body, status_code=status)


def transformer_of(server: RESTServer):
    from transformer.model import OneCallTransformer

    models = [m for m in server.dataplane.model_registry.get_models().values()
              if isinstance(m, OneCallTransformer)]  # fmt: skip
    if not models:
        raise RuntimeError("no transformer is registered with the kserve model server")
    return models[0]


class TransformerRESTServer(RESTServer):
    def create_application(self):
        super().create_application()
        app = model_server.app
        settings: TransformerSettings = transformer_of(self).settings
        if settings.fast_path:  # behind the guard (added next, so outermost), in front of kserve's app
            from transformer.fastpath import OneCallFastPath

            app.add_middleware(OneCallFastPath, lookup=self.dataplane.model_registry.get_model)
        seam.guard(app, settings)
        app.add_exception_handler(StaleDataError, refused)
        app.add_exception_handler(UpstreamError, refused)


def build_parser() -> argparse.ArgumentParser:
    """kserve's parser as parent (its --model_name, --http_port, --predictor_host, ...) plus ours."""
    return argparse.ArgumentParser(parents=[model_server.parser], prog="python -m transformer")


def parse(argv: list[str]) -> tuple[argparse.Namespace, TransformerSettings]:
    return seam.parse_with(TransformerSettings, build_parser(), argv)


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
    seam.check_version()
    args, settings = parse(argv)
    if not args.predictor_host:
        raise SystemExit("python -m transformer: --predictor_host is required (KServe sets it in a cluster)")
    if settings.quiet:
        model_server.args.log_config_file = seam.quiet_log_config(tempfile.mkdtemp(prefix="forecaster-"))
        model_server.args.enable_latency_logging = False
    from datetime import timedelta

    from transformer.model import OneCallTransformer

    config = predictor_config(args)
    calendar = SessionCalendar(settings.calendar, timedelta(minutes=settings.settle_minutes))
    policy: CachePolicy = settings.policy
    market = MarketData(source_of(settings), calendar, policy)
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
    server.dataplane = seam.ForecastDataPlane(model_registry=server.registered_models)
    server.model_repository_extension = seam.LockedRepository(server.registered_models)
    model.load()
    server.register_model(model)
    server.start([])
