"""Many models in one predictor process, on loopback: a real kserve server and a real MLflow.

Three sources, one of them corrupt: the two good ones are ready and answer v2, v1 and gRPC by name;
the corrupt one is reported not ready with the reason its load failed, by its own readiness route
and by the server's; metrics carry each model's label; an alias move reloads one model and leaves
the other untouched; a registry tag query serves every tagged model. A shard directory (KServe's
storage initializer layout) serves one model per subdirectory, in each of kserve's workers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from tests.integration.servers import MlflowServer, Predictor, grpc_stub, wait_for
from tests.integration.storage.test_fetch import log_version
from tests.tiny_bundle import expected_forecast, windows, write_tiny_bundle

pytestmark = pytest.mark.slow
CLOSES = windows(2)


def register(url: str, name: str, bundle_dir: Path, alias: str | None = "champion") -> str:
    """Log and register `bundle_dir` as a version of registered model `name`."""
    from mlflow import MlflowClient

    version = log_version(url, bundle_dir, name)
    if alias:
        MlflowClient(url, url).set_registered_model_alias(name, alias, version)
    return version


def v2(predictor: Predictor, model: str, closes=CLOSES) -> requests.Response:
    body = {"inputs": [{"name": "closes", "shape": list(closes.shape), "datatype": "FP64",
                        "data": closes.tolist()}]}  # fmt: skip
    return predictor.post(f"/v2/models/{model}/infer", json=body)


def forecast(predictor: Predictor, model: str) -> list[float]:
    response = v2(predictor, model)
    assert response.status_code == 200, response.text
    assert response.json()["model_name"] == model
    return response.json()["outputs"][0]["data"]


def versions(predictor: Predictor, model: str) -> list[str]:
    return predictor.get(f"/v2/models/{model}").json()["versions"]


@pytest.fixture(scope="module")
def universe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multimodel")
    mlflow_server = MlflowServer(tmp / "mlflow").wait_up()
    predictor = None
    try:
        for name in ("alpha", "beta"):
            write_tiny_bundle(tmp / name)
            assert register(mlflow_server.url, name, tmp / name) == "1"
        gamma = tmp / "gamma"
        shutil.copytree(tmp / "alpha", gamma)
        (gamma / "model.onnx").write_bytes(b"not an onnx model")
        sources = f"models:/alpha@champion,models:/beta@champion,{gamma}"
        predictor = Predictor(
            tmp, "unused", None, "--model-sources", sources, "--tracking-uri", mlflow_server.url,
            "--reload-interval-s", "1", "--load-retry-max-s", "1", "--cache-dir", str(tmp / "cache"),
        )  # fmt: skip
        yield tmp, mlflow_server, predictor.wait_ready(90)
    finally:
        if predictor is not None:
            predictor.stop()
        mlflow_server.stop()


def test_good_models_answer_by_name_and_the_corrupt_one_is_reported_with_its_reason(universe):
    _, _, predictor = universe
    ready = predictor.get("/v2/health/ready")
    assert ready.status_code == 200
    assert set(ready.json()) == {"ready", "missing"} and list(ready.json()["missing"]) == ["gamma"]
    assert ready.json()["missing"]["gamma"].startswith("refused: ")  # its state: no token, no details
    assert predictor.get("/v2/models/alpha/ready").json() == {"name": "alpha", "ready": True}
    assert predictor.get("/v2/models/beta/ready").status_code == 200
    gamma = predictor.get("/v2/models/gamma/ready")
    assert gamma.status_code == 503 and "refused: " in gamma.json()["error"], gamma.text
    assert predictor.get("/v1/models").json() == {"models": ["alpha", "beta", "gamma"]}

    expected = pytest.approx(expected_forecast(CLOSES).tolist(), rel=1e-5)
    assert forecast(predictor, "alpha") == expected and forecast(predictor, "beta") == expected
    v1 = predictor.post("/v1/models/beta:predict", json={"instances": CLOSES.tolist()})
    assert v1.status_code == 200 and [p["forecast"] for p in v1.json()["predictions"]] == expected
    refused = v2(predictor, "gamma")
    assert refused.status_code == 503 and "refused: " in refused.json()["error"]
    assert "sha256" in predictor.output()  # the log says why
    assert v2(predictor, "delta").status_code == 404

    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    with grpc_stub(predictor.grpc) as stub:
        assert stub.ServerReady(pb.ServerReadyRequest()).ready
        assert stub.ModelReady(pb.ModelReadyRequest(name="alpha")).ready
        assert not stub.ModelReady(pb.ModelReadyRequest(name="gamma")).ready

    assert predictor.metric("forecaster_model_ready", model="alpha") == 1
    assert predictor.metric("forecaster_model_ready", model="beta") == 1
    assert predictor.metric("forecaster_model_ready", model="gamma") == 0
    assert predictor.metric("forecaster_reloads_total", model="gamma", result="failure") >= 1
    assert predictor.metric("forecaster_reloads_total", model="alpha", result="failure") == 0
    assert predictor.metric("forecaster_predictions_total", model="alpha") >= 2
    assert predictor.metric("forecaster_model_info", model="beta", version="1") == 1
    assert "Traceback" not in predictor.output()


def test_an_alias_move_reloads_one_model_and_leaves_the_others_untouched(universe):
    tmp, mlflow_server, predictor = universe
    beta_before = forecast(predictor, "beta")
    beta_reloads = predictor.metric("forecaster_reloads_total", model="beta", result="success")
    assert beta_reloads == 1
    write_tiny_bundle(tmp / "alpha-v2", bias=0.3)
    assert register(mlflow_server.url, "alpha", tmp / "alpha-v2") == "2"
    wait_for(lambda: versions(predictor, "alpha") == ["2"], 30, "alpha reloaded to version 2")
    assert forecast(predictor, "alpha") != pytest.approx(beta_before, rel=1e-6)
    assert versions(predictor, "beta") == ["1"] and forecast(predictor, "beta") == beta_before
    assert predictor.metric("forecaster_reloads_total", model="alpha", result="success") == 2
    assert predictor.metric("forecaster_reloads_total", model="beta", result="success") == beta_reloads
    assert predictor.metric("forecaster_model_info", model="alpha", version="2") == 1
    assert predictor.metric("forecaster_model_info", model="alpha", version="1") == 0
    assert predictor.metric("forecaster_model_info", model="beta", version="1") == 1
    assert predictor.get("/v2/models/gamma/ready").status_code == 503


def test_a_tag_query_serves_every_tagged_model_at_its_alias(universe):
    import subprocess
    import sys

    from mlflow import MlflowClient

    from tests.conftest import REPO

    tmp, mlflow_server, _ = universe
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    for name in ("alpha", "beta"):
        client.set_registered_model_tag(name, "universe", "test")
    client.create_registered_model("untagged")
    url = mlflow_server.url
    predictor = Predictor(tmp, "unused", None, "--model-tag", "universe=test", "--tracking-uri", url,
                          "--cache-dir", str(tmp / "cache-tag"))  # fmt: skip
    try:
        predictor.wait_ready(90)
        assert predictor.get("/v1/models").json() == {"models": ["alpha", "beta"]}
        assert predictor.get("/v2/health/ready").json() == {"ready": True}
        assert versions(predictor, "alpha") == ["2"] and versions(predictor, "beta") == ["1"]
    finally:
        predictor.stop()
    refused = subprocess.run(
        [sys.executable, "-m", "predictor", "--model-tag", "universe=nobody", "--tracking-uri", url],
        cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "no registered model carries the tag universe=nobody" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_shard_directory_serves_one_model_per_subdirectory_in_every_worker(tmp_path):
    shard = tmp_path / "mnt-models"
    for name in ("petr4", "vale3"):
        write_tiny_bundle(shard / name)
    (shard / "itub4").mkdir()
    (shard / "itub4" / "metadata.json").write_text("{not json")
    predictor = Predictor(tmp_path, "ignored", str(shard), "--workers", "2")  # models pickled into each
    try:
        predictor.wait_ready(90)
        expected = pytest.approx(expected_forecast(CLOSES).tolist(), rel=1e-5)
        for _ in range(6):  # fresh connections (requests opens one per call): both workers answer
            assert forecast(predictor, "petr4") == expected and forecast(predictor, "vale3") == expected
            missing = predictor.get("/v2/health/ready").json()["missing"]
            assert list(missing) == ["itub4"] and missing["itub4"].startswith("refused: ")
        assert predictor.get("/v1/timeseries/models").json() == ["itub4", "petr4", "vale3"]
        assert predictor.get("/v2/models/ignored/ready").status_code == 404
        assert predictor.get("/v2/models/itub4/ready").status_code == 503
    finally:
        predictor.stop()
    assert "Traceback" not in predictor.output()
