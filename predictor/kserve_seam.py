"""The predictor's subclasses of kserve's internals (for the kserve of serving.cli): its REST
server (guard, deadline, fast path, time-series routes), data plane (forecast models' readiness,
versioned addressing), v2 endpoints (its model routes re-registered for versions, answers written
once), and its module-level server classes re-pointed (`install`: what survives `--workers N`).
Shared with the transformer: serving.kserve_seam; gRPC: predictor.grpc_service; assembly: __main__.
"""

from __future__ import annotations

import functools

import orjson
from fastapi import Request
from fastapi.responses import Response
from kserve import model_server
from kserve.constants.constants import PredictorProtocol
from kserve.errors import ModelNotReady
from kserve.protocol.rest.multiprocess import server as multiprocess_server
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.protocol.rest.v2_endpoints import V2Endpoints
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from bundle import redact
from predictor import timeseries
from predictor.batching import Batcher
from predictor.fastpath import FastPath
from predictor.grpc_service import ForecastGRPCServer
from predictor.model import forecast_models, served_settings
from serving.deadline import DeadlineProtocol
from serving.errors import DETAILS, VersionNotFound
from serving.guard import guard, http_error, server_error
from serving.kserve_seam import ServingDataPlane
from serving.v2 import v2_answer


class ForecastDataPlane(ServingDataPlane):
    """Readiness after every model's first load attempt, with each one's reason; versioned addressing."""

    def not_ready_reason(self, model, detailed: bool = False) -> str:
        if forecast_models([model]):
            return model.not_ready_reason(detailed)
        return super().not_ready_reason(model, detailed)

    def settled(self, models: list) -> bool:
        return all(m.attempted for m in forecast_models(models))

    def check_version(self, model_name: str, version: str | None) -> None:
        """Versioned addressing (REST `/versions/{v}` or `?model_version=`, gRPC `model_version`)
        names the served version, which metadata advertises, or is refused: VersionNotFound.
        Before a bundle is served, the model's not-ready answer."""
        if not version:
            return
        model = self.get_model_from_registry(model_name)  # ModelNotFound
        served = model.require() if forecast_models([model]) else None  # NotReadyError
        if served is None or version != served.version:
            raise VersionNotFound(model_name, version, served.version if served else "none")


class ForecastRESTServer(RESTServer):
    def __init__(self, *args, **kwargs) -> None:
        """kserve's uvicorn config, plus a deadline per request and a bound on connections."""
        super().__init__(*args, **kwargs)
        settings = served_settings(list(self.dataplane.model_registry.get_models().values()))
        self.config.http = functools.partial(DeadlineProtocol, request_timeout=settings.request_timeout_s)
        self.config.limit_concurrency = settings.max_connections  # beyond it: 503 and close

    def _register_endpoints(self, app) -> None:
        """kserve's endpoints, behind ours for its v2 model routes and server readiness: registered
        first, so they are the ones matched (kserve's stay in the OpenAPI document)."""
        v2 = ForecastV2Endpoints(self.dataplane, self.model_repository_extension)
        app.add_api_route("/v2/health/ready", functools.partial(server_ready, self.dataplane),
                          methods=["GET"], response_model=None, include_in_schema=False)  # fmt: skip
        for suffix, handler, method in MODEL_ROUTES:
            for prefix in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"):
                app.add_api_route(prefix + suffix, _versioned(getattr(v2, handler), self.dataplane),
                                  methods=[method], response_model=None, include_in_schema=False)  # fmt: skip
        super()._register_endpoints(app)

    def create_application(self):
        """Runs in every worker: settings come with the (pickled) model, not module globals."""
        redact.install()  # a spawned worker's log records too (the main process: predictor.__main__)
        super().create_application()
        app = model_server.app
        models = list(self.dataplane.model_registry.get_models().values())
        settings = served_settings(models)
        if settings.fast_path:  # behind the guard (added next, so outermost), in front of kserve's app
            batcher = Batcher(settings.max_batch) if settings.batching else None
            app.add_middleware(FastPath, lookup=self.dataplane.model_registry.get_model, batcher=batcher)
        guard(app, settings)
        app.add_exception_handler(HTTPException, http_error)
        app.add_exception_handler(Exception, server_error)
        timeseries.Routes(self.dataplane, settings).register(app)
        for model in forecast_models(models):
            model.start_loading()  # this worker's own session and loader


async def server_ready(dataplane: ForecastDataPlane) -> Response:
    """kserve's `{"ready": true}`, plus the models not serving and why (`missing`); 503 naming
    them while the server is not ready."""
    ready, missing = await dataplane.readiness(detailed=DETAILS.get())
    if ready:
        body = {"ready": True, **({"missing": missing} if missing else {})}
        return Response(orjson.dumps(body), media_type="application/json")
    names = "; ".join(f"{name}: {reason}" for name, reason in missing.items()) or "no model registered"
    body = {"error": f"Server is not ready. Not serving: {names}", "ready": False, "missing": missing}
    return Response(orjson.dumps(body), status_code=503, media_type="application/json")


class ForecastV2Endpoints(V2Endpoints):
    """kserve's v2 endpoints; its infer handler (as of its version) writes a JSON answer once: kserve
    validates the encoded answer into a pydantic `InferenceResponse` for FastAPI to dump again (and
    the predictor dumped it a third time to drop nulls); serving.v2.v2_answer writes the same bytes."""

    async def model_ready(self, model_name: str, model_version: str | None = None):
        """kserve's answer; a forecast model not ready says why (its last load failure)."""
        if not await self.dataplane.model_ready(model_name):  # ModelNotFound
            raise self.not_ready(model_name)
        return await super().model_ready(model_name, model_version)

    def not_ready(self, model_name: str) -> ModelNotReady:
        model = self.dataplane.get_model_from_registry(model_name)
        if forecast_models([model]) and model.not_ready_reason():
            return model.not_ready_error()  # its state; its details to a caller holding the token
        return ModelNotReady(model_name)

    async def infer(self, raw_request: Request, raw_response: Response, model_name: str,
                    request_body: InferenceRequest | bytes, model_version: str | None = None):  # fmt: skip
        if model_version:  # unreachable behind `_versioned`, which pops it; kserve's answer
            raise NotImplementedError("Model versioning not supported yet.")
        if not await self.dataplane.model_ready(model_name, True):
            raise self.not_ready(model_name)
        headers = dict(raw_request.headers)
        request, _ = self.dataplane.decode(request_body, headers, PredictorProtocol.REST_V2.value, model_name)
        response, response_headers = await self.dataplane.infer(model_name, request, headers)
        response, encoded_headers = self.dataplane.encode(model_name, response, headers, {})
        response_headers.update(encoded_headers)
        response_headers.pop("content-length", None)
        response_headers.pop("content-type", None)
        if isinstance(response, bytes):  # binary tensor extension or a CloudEvent: kserve's answer
            raw_response.headers.update(response_headers)
            raw_response.status_code = 200
            raw_response.body = response
            return raw_response
        return Response(v2_answer(response), media_type="application/json")


# kserve's v2 model routes, which answer 501 to any version (`/versions/{v}/...`, `?model_version=`).
MODEL_ROUTES = (
    ("", "model_metadata", "GET"),
    ("/ready", "model_ready", "GET"),
    ("/infer", "infer", "POST"),
)


def _versioned(handler, dataplane: ForecastDataPlane):
    """kserve's handler, answering the served version and refusing any other (404, as over gRPC),
    its answer without null fields (kserve writes `"parameters": null`)."""

    @functools.wraps(handler)  # FastAPI reads the handler's signature through __wrapped__
    async def call(**kwargs):
        dataplane.check_version(kwargs["model_name"], kwargs.pop("model_version", None))
        result = await handler(**kwargs)
        if isinstance(result, BaseModel):
            body = orjson.dumps(result.model_dump(mode="json", exclude_none=True))
            return Response(body, media_type="application/json")
        if isinstance(result, Response) and "content-type" not in result.headers:
            result.headers["content-type"] = "application/octet-stream"  # binary tensor extension
        return result

    return call


def install() -> None:
    """kserve's module-level server classes, which ModelServer (and each REST worker) builds, ours."""
    model_server.RESTServer = ForecastRESTServer
    multiprocess_server.RESTServer = ForecastRESTServer
    model_server.GRPCServer = ForecastGRPCServer
