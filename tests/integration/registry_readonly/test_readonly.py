"""MLflow's read-only port (`python -m registry_readonly`, the chart's MLflow sidecar) in front of a
real `mlflow server` on loopback: every reader the chart points at it (the storage initializer's
`bundle.fetch`, the predictor with `--model-source models:/...@champion`, the monitor's model
resolution) works through it, and MLflow's own client cannot write through it (405): the champion
alias, the registered models and the versions are unchanged in MLflow."""

from __future__ import annotations

import http.client
import json
import sys

import numpy as np
import pytest
import requests

from tests.integration.servers import MlflowServer, Predictor, Process, free_port, wait_for
from tests.integration.storage.test_fetch import log_version, run_fetch
from tests.tiny_bundle import WINDOW, expected_forecast, windows, write_tiny_bundle

pytestmark = pytest.mark.slow
NAME = "tiny-forecaster"


class ReadOnlyProxy(Process):
    def __init__(self, tmp, upstream: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "registry_readonly", "--upstream", upstream, "--host", "127.0.0.1",
                "--port", str(self.port), *extra]  # fmt: skip
        super().__init__(args, tmp / f"readonly-{self.port}.log")

    def wait_up(self) -> ReadOnlyProxy:
        wait_for(lambda: requests.get(self.url + "/health", timeout=5).status_code == 200, 60,
                 "read-only proxy", self.proc)  # fmt: skip
        return self


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """MLflow with version 1 (alias champion) and 2 of NAME, and the proxy in front of it."""
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("readonly")
    server = MlflowServer(tmp / "mlflow").wait_up()
    proxy = None
    try:
        bundle = tmp / "bundle"
        write_tiny_bundle(bundle)
        assert log_version(server.url, bundle) == "1"
        assert log_version(server.url, bundle) == "2"
        MlflowClient(server.url, server.url).set_registered_model_alias(NAME, "champion", "1")
        proxy = ReadOnlyProxy(tmp, server.url).wait_up()
        yield server, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()


def test_storage_initializer_fetches_and_verifies_through_the_proxy(registry, tmp_path):
    _, proxy = registry
    dest = tmp_path / "mnt-models"
    dest.mkdir()
    result = run_fetch(proxy.url, f"models:/{NAME}@champion", dest)
    assert result.returncode == 0, result.stderr
    assert "version 1" in result.stdout and "sha256 verified: model.onnx" in result.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx"]
    assert '"GET /api/2.0/mlflow/registered-models/alias?' in proxy.output()


def test_predictor_loads_the_champion_through_the_proxy(registry, tmp_path):
    _, proxy = registry
    predictor = Predictor(
        tmp_path, "tiny", f"models:/{NAME}@champion", "--tracking-uri", proxy.url,
        "--reload-interval-s", "0", env={"FORECASTER_PREDICTOR_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    try:
        predictor.wait_ready(timeout=90)
        closes = windows(rows=2, window=WINDOW)
        answer = predictor.infer(closes)
        assert answer.status_code == 200, answer.text
        forecast = next(o for o in answer.json()["outputs"] if o["name"] == "forecast")
        assert np.allclose(forecast["data"], expected_forecast(closes), rtol=1e-5)
    finally:
        predictor.stop()


def test_monitor_resolves_and_loads_the_champion_through_the_proxy(registry, tmp_path):
    from monitor.__main__ import Monitor
    from monitor.settings import MonitorSettings

    _, proxy = registry
    monitor = Monitor(MonitorSettings(
        model_source=f"models:/{NAME}@champion", tracking_uri=proxy.url, model_name=NAME, source="csv",
        csv=tmp_path / "unused.csv",
    ))  # fmt: skip
    version, forecaster = monitor.forecaster()
    assert version == "1"
    assert monitor.source.resolve().version == "1"
    assert "GET /api/2.0/mlflow-artifacts/artifacts/" in proxy.output()  # the bundle came through it
    assert type(forecaster).__name__ == "OnnxForecaster"


def test_mlflow_client_cannot_write_through_the_proxy(registry):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    server, proxy = registry
    reader = MlflowClient(proxy.url, proxy.url)
    assert reader.get_model_version_by_alias(NAME, "champion").version == "1"  # reads do pass
    writes = {
        "move the champion alias": lambda: reader.set_registered_model_alias(NAME, "champion", "2"),
        "delete the champion alias": lambda: reader.delete_registered_model_alias(NAME, "champion"),
        "create a registered model": lambda: reader.create_registered_model("intruder-forecaster"),
        "delete a model version": lambda: reader.delete_model_version(NAME, "1"),
        "create an experiment": lambda: reader.create_experiment("intruder"),
    }
    for what, write in writes.items():
        with pytest.raises(MlflowException) as refused:
            write()
        assert "405" in str(refused.value) or "not allowed" in str(refused.value), (what, refused.value)
    truth = MlflowClient(server.url, server.url)
    assert truth.get_model_version_by_alias(NAME, "champion").version == "1"
    assert [m.name for m in truth.search_registered_models()] == [NAME]
    assert sorted(v.version for v in truth.search_model_versions(f"name='{NAME}'")) == ["1", "2"]
    assert truth.get_experiment_by_name("intruder") is None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"])
def test_every_other_method_is_refused_without_reaching_mlflow(registry, method):
    server, proxy = registry
    before = server.output().count("alias")
    answer = requests.request(
        method, proxy.url + "/api/2.0/mlflow/registered-models/alias", timeout=10,
        json={"name": NAME, "alias": "champion", "version": "2"},
    )  # fmt: skip
    assert answer.status_code == 405, answer.text
    assert answer.headers["Allow"] == "GET, HEAD"
    error = answer.json()["error"]
    assert method in error and "training-only port" in error
    assert server.output().count("alias") == before


def test_head_and_query_and_status_pass_through(registry):
    server, proxy = registry
    path = "/api/2.0/mlflow/registered-models/alias"
    missing = requests.get(proxy.url + path, params={"name": NAME, "alias": "nope"}, timeout=10)
    direct = requests.get(server.url + path, params={"name": NAME, "alias": "nope"}, timeout=10)
    assert missing.status_code == direct.status_code and 400 <= missing.status_code < 500
    assert missing.json() == direct.json()
    head = requests.head(proxy.url + "/health", timeout=10)
    assert head.status_code == 200 and head.content == b""
    body = requests.get(proxy.url + "/health", timeout=10)
    assert body.status_code == 200 and body.text.strip() == "OK"
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", "http://example.org/health")  # absolute-form: it is not a forward proxy
    absolute = conn.getresponse()
    assert absolute.status == 400 and "must be a path" in json.loads(absolute.read())["error"]
    conn.close()


def test_unreachable_upstream_is_a_502_naming_it(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = ReadOnlyProxy(tmp_path, dead, "--connect-timeout-s", "2")
    try:
        wait_for(lambda: requests.get(proxy.url + "/health", timeout=5).status_code == 502, 60,
                 "read-only proxy", proxy.proc)  # fmt: skip
        answer = requests.get(proxy.url + "/api/2.0/mlflow/registered-models/get?name=x", timeout=10)
        assert answer.status_code == 502
        assert dead in answer.json()["error"] and "unreachable" in answer.json()["error"]
        assert (
            requests.post(proxy.url + "/api/2.0/mlflow/registered-models/create", timeout=10).status_code
            == 405
        )
    finally:
        proxy.stop()


def test_a_silent_client_is_closed_after_the_client_timeout(tmp_path):
    """A connection that sends nothing (or half a request) cannot hold one of the proxy's threads."""
    import socket
    import time

    proxy = ReadOnlyProxy(tmp_path, f"http://127.0.0.1:{free_port()}", "--client-timeout-s", "1")
    try:
        wait_for(lambda: requests.get(proxy.url + "/health", timeout=5).status_code == 502, 60,
                 "read-only proxy", proxy.proc)  # fmt: skip
        for partial in (b"", b"GET /health HTTP/1.1\r\nhost: x\r\n"):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
                sock.sendall(partial)
                started = time.monotonic()
                assert sock.recv(1024) == b""  # closed by the proxy, nothing answered
                assert 0.5 < time.monotonic() - started < 8
    finally:
        proxy.stop()
