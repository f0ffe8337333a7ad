"""The read-only proxy's pure parts: which headers cross it, and which upstreams its settings accept
(tests/integration/registry_readonly runs it against a real `mlflow server`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from registry_readonly.proxy import forwardable
from registry_readonly.settings import ReadOnlySettings


def test_end_to_end_headers_cross_hop_by_hop_ones_do_not():
    headers = [
        ("Authorization", "Basic dXNlcjpwdw=="),  # MLflow auth (mlflow.auth) must reach MLflow
        ("Accept", "application/json"), ("Accept-Encoding", "gzip"), ("User-Agent", "mlflow-python-client"),
        ("Host", "petr4-forecaster-mlflow:5001"), ("Connection", "keep-alive, X-Private"),
        ("X-Private", "1"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"),
        ("Content-Length", "12"), ("Upgrade", "h2c"), ("TE", "trailers"), ("Proxy-Authorization", "x"),
    ]  # fmt: skip
    assert forwardable(headers) == [
        ("Authorization", "Basic dXNlcjpwdw=="), ("Accept", "application/json"), ("Accept-Encoding", "gzip"),
        ("User-Agent", "mlflow-python-client"),
    ]  # fmt: skip


def test_settings_from_env_and_their_bounds(monkeypatch):
    monkeypatch.setenv("FORECASTER_READONLY_UPSTREAM", "http://127.0.0.1:5000")
    monkeypatch.setenv("FORECASTER_READONLY_PORT", "5001")
    settings = ReadOnlySettings()
    assert (settings.upstream, settings.port) == ("http://127.0.0.1:5000", 5001)
    for bad in ("https://mlflow:5000", "http://mlflow:5000/api", "mlflow:5000", "http://"):
        with pytest.raises(ValidationError, match="upstream"):
            ReadOnlySettings(upstream=bad)
    with pytest.raises(ValidationError, match="read_timeout_s"):
        ReadOnlySettings(read_timeout_s=0)
