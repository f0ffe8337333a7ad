"""Shared fixtures: the real PETR4 file from ../shared and a fast, fully offline training config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FORECASTER_SHARED", REPO.parent / "shared"))
PETR4_CSV = SHARED / "data" / "petr4_daily.csv"

# No test may reach the internet: any library that tries goes to a dead proxy and fails fast.
for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
    os.environ[var] = "http://127.0.0.1:9"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def fast_settings(tmp: Path, **overrides):
    """Few epochs, small splits, a private SQLite MLflow: seconds per run."""
    from training.settings import TrainSettings

    values = {
        "source": "sample",
        "max_epochs": 2,
        "patience": 2,
        "validation_sessions": 120,
        "test_sessions": 120,
        "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "artifact_root": tmp / "artifacts-store",
        "output_dir": tmp / "out",
        "threads": 2,
    }
    values.update(overrides)
    return TrainSettings(**values)


@pytest.fixture(scope="session")
def petr4_csv() -> Path:
    assert PETR4_CSV.is_file(), f"{PETR4_CSV} is missing: tests read ../shared/data (see README)"
    return PETR4_CSV


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One real training run on the sample, registered in a temp MLflow: (settings, result)."""
    from training import pipeline

    tmp = tmp_path_factory.mktemp("trained")
    settings = fast_settings(tmp)
    return settings, pipeline.run(settings)


@pytest.fixture(scope="session")
def windows(trained):
    """Raw-close windows of the session's test part: `[sessions, window]`."""
    from training.data import sample_test_windows

    return sample_test_windows(trained[1].metadata)


@pytest.fixture(scope="session")
def served(trained, tmp_path_factory):
    """The real predictor (kserve ModelServer, 1 worker) on the session's bundle directory."""
    from tests.integration.servers import Predictor

    _, result = trained
    server = Predictor(tmp_path_factory.mktemp("predictor"), "aapl", str(result.bundle_path))
    try:
        yield server.wait_ready()
    finally:
        server.stop()
