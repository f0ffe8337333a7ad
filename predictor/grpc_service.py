"""The predictor's gRPC: kserve's servicer and server (for the kserve of serving.cli) doing what
REST does too: versions, the datatype-case rule, the token, refusals as one line (serving.errors)."""

from __future__ import annotations

import hmac
from concurrent import futures

import grpc
from google.protobuf.message import DecodeError
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc import server as grpc_server
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.servicer import InferenceServicer

from predictor.model import served_settings
from serving.errors import grpc_code, rejections
from serving.kserve_seam import check_datatype_case
from serving.metrics import REJECTED


class QuietStatusInterceptor(ExceptionToStatusInterceptor):
    """A refusal of ours (bad input, repository locked, model not ready yet) is its status code with
    one log line, not kserve's traceback; anything else goes to kserve's handling."""

    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        code = grpc_code(ex)
        if code is None:
            return await super().handle_exception(ex, request_or_iterator, context, method_name)
        rejections.info("rejected: %s (%s)", ex, method_name)
        return await context.abort(code, str(ex))


UTF8 = "strings must be valid UTF-8 (no encoded lone surrogate), fields well-formed"


class Undecodable:
    """What a request that is not its protobuf message decodes to (grpc's deserializer raised)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class DecodeInterceptor(grpc.aio.ServerInterceptor):
    """A request whose bytes are not its message (a string field that is not UTF-8, such as an
    encoded lone surrogate, or malformed bytes) is INVALID_ARGUMENT naming it: grpc's deserializer
    raised outside any handler, and clients got UNKNOWN, gRPC's 500."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        parse, behaviour = handler.request_deserializer, handler.unary_unary

        def tolerant(data: bytes):
            try:
                return parse(data)
            except DecodeError as exc:
                return Undecodable(exc)

        async def checked(request, context):
            if isinstance(request, Undecodable):
                REJECTED.labels("malformed").inc()
                message = f"the request is not a valid message of {details.method} ({request.error}): {UTF8}"
                rejections.info("rejected: %s", message)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            return await behaviour(request, context)

        return handler._replace(request_deserializer=tolerant, unary_unary=checked)  # grpc's namedtuple


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
                return grpc.unary_unary_rpc_method_handler(self._refuse)
        return await continuation(details)

    @staticmethod
    async def _refuse(_request, context) -> None:
        REJECTED.labels("unauthorized").inc()
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


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
    """kserve's gRPC server (its `start`, as of its version) with our interceptors: the token,
    one-line rejections, and no per-call INFO line when quiet."""

    async def start(self, max_workers):
        settings = served_settings(list(self._data_plane.model_registry.get_models().values()))
        interceptors = [DecodeInterceptor()]  # first: the outermost, around every other one
        interceptors += [] if settings.quiet else [grpc_server.LoggingInterceptor()]
        if settings.api_token:
            interceptors.append(TokenInterceptor(settings.api_token.get_secret_value()))
        interceptors.append(QuietStatusInterceptor())
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
