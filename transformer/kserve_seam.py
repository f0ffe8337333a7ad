"""The transformer's subclass of kserve's internals (for the kserve of serving.cli): its REST server
with the guard, the fast path, and the answers to stale data and an unreachable predictor."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from kserve import model_server
from kserve.protocol.rest.server import RESTServer

from marketdata.cache import StaleDataError
from serving.guard import guard
from transformer.answer import refusal
from transformer.fastpath import OneCallFastPath
from transformer.model import OneCallTransformer
from transformer.upstream import UpstreamError


async def refused(_request, exc: Exception) -> JSONResponse:
    status, body = refusal(exc)
    return JSONResponse(body, status_code=status)


def transformer_of(server: RESTServer) -> OneCallTransformer:
    for model in server.dataplane.model_registry.get_models().values():
        if isinstance(model, OneCallTransformer):
            return model
    raise RuntimeError("no transformer is registered with the kserve model server")


class TransformerRESTServer(RESTServer):
    def create_application(self):
        super().create_application()
        app = model_server.app
        settings = transformer_of(self).settings
        if settings.fast_path:  # behind the guard (added next, so outermost), in front of kserve's app
            app.add_middleware(OneCallFastPath, lookup=self.dataplane.model_registry.get_model)
        guard(app, settings)
        app.add_exception_handler(StaleDataError, refused)
        app.add_exception_handler(UpstreamError, refused)
