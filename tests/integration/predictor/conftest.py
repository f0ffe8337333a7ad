from __future__ import annotations

import pytest

from tests.integration.servers import Predictor


@pytest.fixture(scope="session")
def served(trained, tmp_path_factory):
    """The real predictor (kserve ModelServer, 1 worker) on the session's bundle directory."""
    _, result = trained
    server = Predictor(tmp_path_factory.mktemp("predictor"), "aapl", str(result.bundle_path))
    try:
        yield server.wait_ready()
    finally:
        server.stop()
