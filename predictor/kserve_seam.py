"""Every touch of kserve's internals, in one place, for the kserve version it was written against.

kserve has no hooks for what the predictor adds, so this module subclasses its REST and gRPC
servers (guard, deadline, token, quiet refusals), data plane (readiness, metadata, decoding) and
repository extension, re-points its module-level server classes (what survives `--workers N`: each
spawned worker runs `create_application` itself) and assembles its `ModelServer`. A kserve upgrade
is reviewed here and nowhere else; `check_version` refuses to start on another version instead of
failing in ways no single file explains.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hmac
import json
import logging
import struct
import tempfile
from concurrent import futures
from importlib import metadata
from pathlib import Path

import grpc
import orjson
from cloudevents.sdk.converters.util import has_binary_headers
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from kserve import ModelServer, model_server
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER, PredictorProtocol
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    generic_exception_handler,
)
from kserve.logging import KSERVE_LOG_CONFIG
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc import server as grpc_server
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.multiprocess import server as multiprocess_server
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.timeseries.types import ForecastRequest, ForecastResponse
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.protocol.rest.v2_endpoints import V2Endpoints
from pydantic import BaseModel, ValidationError
from pydantic_settings import CliSettingsSource
from starlette.exceptions import HTTPException

from bundle.conventions import CLI_CONVENTION
from predictor import timeseries
from predictor.codecs import Rejected, check_datatype_case
from predictor.deadline import DeadlineProtocol
from predictor.errors import error_body
from predictor.gatekeeper import LOCKED, Gatekeeper
from predictor.metrics import REJECTED, init_route_series
from predictor.settings import PredictorSettings

KSERVE_VERSION = "0.21.0"
rejections = logging.getLogger("predictor.rejected")  # one line per refused request; WARNING when quiet


class KServeVersionError(RuntimeError):
    """The installed kserve is not the one this module was written and tested against."""


def check_version(installed: str | None = None) -> None:
    installed = installed or metadata.version("kserve")
    if installed != KSERVE_VERSION:
        raise KServeVersionError(
            f"kserve {installed} is installed; predictor/kserve_seam.py was written for kserve "
            f"{KSERVE_VERSION}: review this module against the new version, then update KSERVE_VERSION"
        )


class NotReadyError(ModelNotReady):
    """kserve's ModelNotReady plus the `.reason` its gRPC interceptor reads (without it a not-ready
    model reaches gRPC clients as UNKNOWN "no attribute 'reason'" instead of UNAVAILABLE)."""

    PENDING = "No bundle has been loaded and self-tested yet."

    def __init__(self, model_name: str, detail: str = PENDING) -> None:
        super().__init__(model_name, detail)
        self.reason = self.error_msg


class VersionNotFound(ModelNotFound):
    """404 / NOT_FOUND: a version other than the one served (kserve answers 501 to any version)."""

    def __init__(self, model_name: str, version: str, served: str) -> None:
        super().__init__(model_name)
        self.reason = (
            f"model {model_name} has no version {version!r}: it serves version {served!r} "
            f"(the one its source points at; GET /v2/models/{model_name} names it)"
        )


class ForecastDataPlane(DataPlane):
    """Server readiness that means it (kserve answers ready while models load), metadata that names
    the served version, and request decoding that never turns a client's mistake into a 500."""

    async def ready(self) -> bool:
        return (await self.readiness())[0]

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Ready once every model has had its first load attempt and at least one serves (one model,
        ours or the transformer's: ready when it is); the models not serving, each with its reason.
        A model that cannot load never takes the others out of service: it is reported, and retried."""
        models = list(self.model_registry.get_models().values())
        missing = {}
        for model in models:
            if not await model.healthy():
                missing[model.name] = model.not_ready_reason() if forecast_models([model]) else "not ready"
        settled = all(m.attempted for m in forecast_models(models))
        return bool(models) and len(missing) < len(models) and settled, missing

    def metadata(self) -> dict:
        """The extensions this server really offers: the binary tensor extension (REST), not the
        model repository (refused: the predictor follows its model source)."""
        return {**super().metadata(), "extensions": ["binary_tensor_data"]}

    async def model_metadata(self, model_name: str) -> dict:
        meta = await super().model_metadata(model_name)
        model = self.get_model_from_registry(model_name)
        served = getattr(model, "served", None)
        meta.update(platform="onnxruntime_onnx", versions=[served.version] if served else [])
        return meta

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

    def decode(self, body, headers, protocol_version=PredictorProtocol.REST_V1.value, model_name=None):
        """A body is JSON whatever Content-Type it declares (curl -d sends a form type, tritonclient
        none) unless the binary tensor extension or a binary CloudEvent says otherwise."""
        if isinstance(body, bytes) and headers and not _binary(headers):
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return super().decode(body, headers, protocol_version, model_name)

    def decode_inference_request(self, body, headers, model_name):
        """kserve's decoding, with the datatype-case rule (kserve upper-cases REST datatypes)."""
        if not isinstance(body, bytes):
            check_datatype_case(i.datatype for i in body.inputs)
            return super().decode_inference_request(body, headers, model_name)
        declared = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if declared is None:  # a v2 JSON body that came without a JSON Content-Type
            try:
                request = InferenceRequest.model_validate_json(body)
            except ValidationError as exc:
                raise InvalidInput(body_error(exc.errors())) from exc
            check_datatype_case(i.datatype for i in request.inputs)
            return InferRequest.from_inference_request(request, model_name)
        if not declared.isdigit() or int(declared) > len(body):
            raise InvalidInput(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be a byte count within the "
                               f"{len(body)}-byte body, got {declared!r}")  # fmt: skip
        try:
            check_datatype_case(_header_datatypes(orjson.loads(body[: int(declared)])))
            return InferRequest.from_bytes(body, int(declared), model_name)
        except InvalidInput:
            raise
        except (
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AttributeError,
            struct.error,
            InferenceError,  # e.g. shape [-1] with binary_data_size 0: "unexpected numpy array shape"
        ) as exc:  # kserve's parser
            raise InvalidInput(f"malformed binary tensor request: {type(exc).__name__}: {exc}") from exc


def _header_datatypes(header) -> list:
    """The datatypes a binary-extension JSON header declares (kserve's parser judges the rest)."""
    inputs = header.get("inputs") if isinstance(header, dict) else None
    return [i.get("datatype") for i in inputs if isinstance(i, dict)] if isinstance(inputs, list) else []


def _binary(headers: dict) -> bool:
    return INFERENCE_CONTENT_LENGTH_HEADER in headers or has_binary_headers(headers)


class RepositoryLockedError(NotImplementedError):
    """501 / UNIMPLEMENTED; `.reason` is what kserve's gRPC interceptor reports."""

    def __init__(self, action: str) -> None:
        self.reason = LOCKED.format(action)
        super().__init__(self.reason)


class LockedRepository(ModelRepositoryExtension):
    """gRPC and REST load/unload refused: kserve's unload cannot be undone by load."""

    async def load(self, model_name: str) -> None:
        raise RepositoryLockedError("load")

    async def unload(self, model_name: str) -> None:
        raise RepositoryLockedError("unload")


def _where(errors: list) -> str:
    first = errors[0] if errors else {}
    return "/".join(str(p) for p in first.get("loc", ())) or "body"


def body_error(errors: list) -> str:
    """The first validation error as one line naming its place, never the input itself."""
    first = errors[0] if errors else {}
    return f"invalid request body: {first.get('msg', 'invalid')} at {_where(errors)}"


def _param(errors: list) -> str:
    """The field a validation error is about, without FastAPI's leading "body", dotted."""
    parts = _where(errors).split("/")
    return ".".join(parts[1:] if parts[0] == "body" else parts)


def _error(request, status: int, message: str, param: str | None = None, headers=None) -> JSONResponse:
    path = request.url.path if request is not None else ""
    return JSONResponse(error_body(path, status, message, param), status_code=status, headers=headers)


async def invalid_body(request, exc: RequestValidationError) -> JSONResponse:
    """A body that does not parse or validate is a 400 like every other bad request (FastAPI's 422
    echoes the input, and one holding NaN or Infinity failed to encode: a 500). It names the
    problem and its place, never the input, in the surface's one error shape."""
    errors = list(exc.errors())
    REJECTED.labels("malformed").inc()
    rejections.info("rejected (400): %s", body_error(errors))
    return _error(request, 400, body_error(errors), _param(errors))


async def http_error(request, exc: HTTPException) -> JSONResponse:
    """Unknown routes (404) and wrong methods (405) in the surface's error shape, not `{"detail"}`."""
    message = str(exc.detail)
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        allowed = (exc.headers or {}).get("Allow")
        message += f"; allowed: {allowed}" if allowed else ""
    elif exc.status_code == 404:
        message = f"no route {request.url.path}: see /openapi.json"
    return _error(request, exc.status_code, message, headers=exc.headers)


async def server_error(request, exc: Exception) -> JSONResponse:
    """A bug: kserve's traceback and 500, in the surface's error shape."""
    await generic_exception_handler(request, exc)
    return _error(request, 500, f"{type(exc).__name__} : {exc}")


# Refusals that are the client's or the moment's, not bugs: kserve logs a 31-line traceback for each
# (a cheap way to flood logs); here each is one line on `predictor.rejected`, with kserve's body.
QUIET_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (InvalidInput, 400),
    (ModelNotFound, 404),
    (ModelNotReady, 503),
    (NotImplementedError, 501),
)


async def rejected_request(request, exc: Exception) -> JSONResponse:
    status = next(code for kind, code in QUIET_STATUS if isinstance(exc, kind))
    rejections.info("rejected (%d): %s", status, exc)
    return _error(request, status, str(exc), getattr(exc, "param", None))


class QuietStatusInterceptor(ExceptionToStatusInterceptor):
    """gRPC: a refusal of ours (bad input, repository locked, model not ready yet) is its status code
    with one log line, not kserve's traceback; anything else goes to kserve's handling."""

    CODES = (
        (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
        (RepositoryLockedError, grpc.StatusCode.UNIMPLEMENTED),
        (ModelNotFound, grpc.StatusCode.NOT_FOUND),
        (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    )

    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        code = next((c for kind, c in self.CODES if isinstance(ex, kind)), None)
        if code is None:
            return await super().handle_exception(ex, request_or_iterator, context, method_name)
        rejections.info("rejected: %s (%s)", ex.reason, method_name)
        return await context.abort(code, ex.reason)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """gRPC ModelInfer requires the same bearer token as REST inference (metadata `authorization`);
    health, readiness and metadata stay open, as on REST."""

    GUARDED = ("/inference.GRPCInferenceService/ModelInfer",)

    def __init__(self, token: str) -> None:
        self.expected = f"Bearer {token}"

    async def intercept_service(self, continuation, details):
        if details.method in self.GUARDED:
            given = dict(details.invocation_metadata or ()).get("authorization", "")
            if not hmac.compare_digest(given.encode(), self.expected.encode()):
                return _refuse(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        return await continuation(details)


def _refuse(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def abort(_request, context):
        REJECTED.labels("unauthorized").inc()
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class ForecastServicer(InferenceServicer):
    """kserve's servicer, plus what REST does: the served version is addressable and any other is
    NOT_FOUND (kserve ignores `model_version`: ModelReady(version="999") was true), metadata names
    the served version, and a lower-case datatype is refused by name."""

    async def ModelReady(self, request: pb.ModelReadyRequest, context) -> pb.ModelReadyResponse:  # noqa: N802 (gRPC's name)
        ready = await self._data_plane.model_ready(model_name=request.name)  # ModelNotFound
        if ready:
            self._data_plane.check_version(request.name, request.version)
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context) -> pb.ModelMetadataResponse:  # noqa: N802 (gRPC's name)
        self._data_plane.check_version(request.name, request.version)
        meta = await self._data_plane.model_metadata(model_name=request.name)
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta.get("versions") or [], platform=meta["platform"],
            inputs=meta["inputs"], outputs=meta["outputs"],
        )  # fmt: skip

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:  # noqa: N802 (gRPC's name)
        self._data_plane.check_version(request.model_name, request.model_version)
        check_datatype_case(t.datatype for t in request.inputs)
        return await super().ModelInfer(request, context)


class ForecastGRPCServer(grpc_server.GRPCServer):
    """kserve's gRPC server (its `start`, as of KSERVE_VERSION) with our interceptors: the token,
    one-line rejections, and no per-call INFO line when quiet."""

    async def start(self, max_workers):
        settings = served_settings(list(self._data_plane.model_registry.get_models().values()))
        interceptors = [QuietStatusInterceptor()]
        if settings.api_token:
            interceptors.insert(0, TokenInterceptor(settings.api_token.get_secret_value()))
        if not settings.quiet:
            interceptors.insert(0, grpc_server.LoggingInterceptor())
        self._server = grpc.aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=interceptors,
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        servicer = ForecastServicer(self._data_plane, self._model_repository_extension)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"[::]:{self._port}")
        await self._server.start()
        await self._server.wait_for_termination()


def strict_forecast_request(body: bytes) -> ForecastRequest:
    """KServe's time-series request without pydantic's coercions: "1" or true is not a price."""
    try:
        return ForecastRequest.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise Rejected("malformed", body_error(exc.errors()), _param(exc.errors())) from exc


def forecast_models(models: list) -> list:
    """This process's forecast models (kserve's registry may hold others)."""
    from predictor.model import ForecastModel  # the model imports this module: resolve at run time

    return [m for m in models if isinstance(m, ForecastModel)]


def served_settings(models: list) -> PredictorSettings:
    """The one settings object of this process's forecast models (they share one command line)."""
    ours = forecast_models(models)
    if not ours:
        raise RuntimeError("no forecast model is registered with the kserve model server")
    return ours[0].settings


def guard(app, settings) -> None:
    """The guard every server of ours puts in front of kserve's app (predictor and transformer):
    token and body limit before parsing, request metrics, and refusals as quiet 4xx/503 answers."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app.add_middleware(Gatekeeper, max_body_bytes=settings.max_body_bytes, api_token=token)
    init_route_series()
    app.add_exception_handler(RequestValidationError, invalid_body)
    for kind, _status in QUIET_STATUS:
        app.add_exception_handler(kind, rejected_request)


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
        super().create_application()
        app = model_server.app
        dataplane = self.dataplane
        models = list(dataplane.model_registry.get_models().values())
        settings = served_settings(models)
        if settings.fast_path:  # behind the guard (added next, so outermost), in front of kserve's app
            from predictor.batching import Batcher
            from predictor.fastpath import FastPath

            batcher = Batcher(settings.max_batch) if settings.batching else None
            app.add_middleware(FastPath, lookup=dataplane.model_registry.get_model, batcher=batcher)
        guard(app, settings)
        app.add_exception_handler(HTTPException, http_error)
        app.add_exception_handler(Exception, server_error)

        async def forecast(request: ForecastRequest, raw: Request) -> ForecastResponse:
            request = strict_forecast_request(await raw.body())  # FastAPI's parse takes "1" and true
            model = dataplane.get_model_from_registry(request.model)
            if not forecast_models([model]):
                raise NotImplementedError(f"model {request.model} has no time-series forecast")
            return timeseries.forecast(model, request, settings.max_horizon, settings.max_batch)

        async def forecast_model_names() -> list[str]:
            """kserve's time-series API lists its models by name."""
            return [m.name for m in forecast_models(list(dataplane.model_registry.get_models().values()))]

        app.add_api_route("/v1/timeseries/forecast", forecast, methods=["POST"],
                          response_model=ForecastResponse, response_model_exclude_none=True)  # fmt: skip
        app.add_api_route(
            "/v1/timeseries/models", forecast_model_names, methods=["GET"], response_model=list[str]
        )
        for model in forecast_models(models):
            model.start_loading()  # this worker's own session and loader


async def server_ready(dataplane: ForecastDataPlane) -> Response:
    """kserve's `{"ready": true}`, plus the models not serving and why (`missing`); 503 naming
    them while the server is not ready."""
    ready, missing = await dataplane.readiness()
    if ready:
        body = {"ready": True, **({"missing": missing} if missing else {})}
        return Response(orjson.dumps(body), media_type="application/json")
    names = "; ".join(f"{name}: {reason}" for name, reason in missing.items()) or "no model registered"
    body = {"error": f"Server is not ready. Not serving: {names}", "ready": False, "missing": missing}
    return Response(orjson.dumps(body), status_code=503, media_type="application/json")


class ForecastV2Endpoints(V2Endpoints):
    """kserve's v2 endpoints; its infer handler (as of KSERVE_VERSION) writes a JSON answer once.

    kserve validates the encoded answer into a pydantic `InferenceResponse` for FastAPI to dump
    again, and the predictor then dumped it a third time to drop null fields: the same bytes come
    from the encoded dict itself (`json_answer`), without the two model round trips.
    """

    async def model_ready(self, model_name: str, model_version: str | None = None):
        """kserve's answer; a forecast model not ready says why (its last load failure)."""
        if not await self.dataplane.model_ready(model_name):  # ModelNotFound
            raise self.not_ready(model_name)
        return await super().model_ready(model_name, model_version)

    def not_ready(self, model_name: str) -> ModelNotReady:
        model = self.dataplane.get_model_from_registry(model_name)
        reason = model.not_ready_reason() if forecast_models([model]) else None
        return NotReadyError(model_name, reason) if reason else ModelNotReady(model_name)

    async def infer(
        self,
        raw_request: Request,
        raw_response: Response,
        model_name: str,
        request_body: InferenceRequest | bytes,
        model_version: str | None = None,
    ) -> Response:
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
        return Response(json_answer(response), media_type="application/json")


def json_answer(response: dict) -> bytes:
    """A v2 REST answer as kserve's `InferenceResponse` writes it without null fields: its field
    order, `parameters` only when set, output data as encoded (already JSON-native lists)."""
    outputs = [
        {k: o[k] for k in ("name", "shape", "datatype", "parameters", "data") if o.get(k) is not None}
        for o in response["outputs"]
    ]
    fields = {k: response.get(k) for k in ("model_name", "model_version", "id", "parameters")}
    return orjson.dumps({**{k: v for k, v in fields.items() if v is not None}, "outputs": outputs})


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


def build_parser() -> argparse.ArgumentParser:
    """kserve's parser as parent (its --model_name, --http_port, --workers, ...) plus ours."""
    return argparse.ArgumentParser(parents=[model_server.parser], prog="python -m predictor")


def parse_with(settings_class, parser: argparse.ArgumentParser, argv: list[str]):
    """kserve's arguments and a settings class of ours on one parser (flags, then the class's
    environment variables), in the one CLI convention."""
    cli = CliSettingsSource(settings_class, root_parser=parser, **CLI_CONVENTION)
    settings = settings_class(_cli_settings_source=cli(args=argv))
    args, _ = parser.parse_known_args(argv)
    return args, settings


def parse(argv: list[str]) -> tuple[argparse.Namespace, PredictorSettings]:
    """kserve's arguments and our settings (flags, then FORECASTER_PREDICTOR_* variables)."""
    return parse_with(PredictorSettings, build_parser(), argv)


def quiet_log_config(directory: str) -> str:
    """kserve's logging config with per-request lines (access, trace) at WARNING."""
    config = copy.deepcopy(KSERVE_LOG_CONFIG)
    config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    config["loggers"]["kserve.trace"]["level"] = "WARNING"
    config["loggers"]["predictor"] = {"handlers": ["kserve"], "level": "INFO", "propagate": False}
    config["loggers"]["predictor.rejected"] = {"handlers": ["kserve"], "level": "WARNING", "propagate": False}
    path = Path(directory) / "forecaster-logging.json"
    path.write_text(json.dumps(config))
    return str(path)


def serve(argv: list[str]) -> None:
    """Check the kserve version, parse, assemble kserve's ModelServer around its models, run."""
    check_version()
    args, settings = parse(argv)
    if settings.quiet:  # ModelServer reads these module-level args when it configures logging
        model_server.args.log_config_file = quiet_log_config(tempfile.mkdtemp(prefix="forecaster-"))
        model_server.args.enable_latency_logging = False
    from predictor.model import ForecastModel
    from predictor.sources import SourceListError, model_sources

    model_server.RESTServer = ForecastRESTServer
    multiprocess_server.RESTServer = ForecastRESTServer
    model_server.GRPCServer = ForecastGRPCServer
    try:
        sources = model_sources(settings, args.model_name)
    except SourceListError as exc:
        raise SystemExit(f"python -m predictor: {exc}") from None
    models = [ForecastModel(m.name, settings, m.source) for m in sources]
    server = ModelServer(enable_latency_logging=model_server.args.enable_latency_logging)
    server.dataplane = ForecastDataPlane(model_registry=server.registered_models)
    server.model_repository_extension = LockedRepository(server.registered_models)
    for model in models:  # kserve's repository routes by name; each is ready after its self-test
        server.register_model(model)
    for model in models:
        model.start_loading()  # this process's loader (gRPC, and REST with one worker)
    server.start([])
