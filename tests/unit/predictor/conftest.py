"""In-process fixtures: a tiny bundle on disk and a loaded ForecastModel over it (no server)."""

from __future__ import annotations

import pytest

from predictor.model import ForecastModel
from predictor.settings import PredictorSettings
from tests.tiny_bundle import write_tiny_bundle


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "bundle"
    write_tiny_bundle(path, int8=True)
    return path


def make_model(source, **settings) -> ForecastModel:
    return ForecastModel("tiny", PredictorSettings(model_source=str(source), **settings))


@pytest.fixture
def model(tiny_dir) -> ForecastModel:
    """Loaded synchronously (the server does this in a background thread)."""
    m = make_model(tiny_dir)
    assert m.try_reload()
    return m


@pytest.fixture
def serve_app(monkeypatch):
    """`serve_app(model)`: kserve's REST app as the predictor assembles it (routes, handlers, the
    guard), in-process on a fresh FastAPI app, without uvicorn or sockets."""
    import warnings

    from fastapi import FastAPI
    from fastapi.responses import ORJSONResponse

    with warnings.catch_warnings():  # starlette's advice to install httpx2: not ours to act on
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from kserve import model_server
    from kserve.model_repository import ModelRepository

    from predictor.kserve_seam import ForecastDataPlane, ForecastRESTServer
    from serving.kserve_seam import LockedRepository

    def build(model: ForecastModel) -> TestClient:
        app = FastAPI(default_response_class=ORJSONResponse)  # as kserve.model_server.app
        monkeypatch.setattr(model_server, "app", app)
        repository = ModelRepository()
        repository.update(model)
        dataplane = ForecastDataPlane(model_registry=repository)
        server = ForecastRESTServer(
            "kserve.model_server:app", dataplane, LockedRepository(repository), http_port=0
        )
        server.create_application()
        return TestClient(app)

    return build
