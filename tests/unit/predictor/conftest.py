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
