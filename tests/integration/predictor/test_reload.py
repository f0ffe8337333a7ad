"""Readiness, retries and hot reload against a real `mlflow server` on loopback.

The predictor starts before MLflow exists: live but not ready. MLflow comes up, training registers
a champion, the predictor loads it. The alias moves: it swaps. The alias moves to a corrupt bundle:
it keeps serving the old version and counts the failure.
"""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import pytest
from mlflow import MlflowClient

from tests.conftest import fast_settings
from tests.integration.servers import MlflowServer, Predictor, free_port, wait_for
from training import pipeline

pytestmark = pytest.mark.slow
NAME = "aapl-forecaster"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reload")
    port = free_port()
    predictor = Predictor(
        tmp, "aapl", f"models:/{NAME}@champion", "--tracking-uri", f"http://127.0.0.1:{port}",
        "--reload-interval-s", "1", "--load-retry-max-s", "1", "--cache-dir", str(tmp / "cache"),
    )  # fmt: skip
    mlflow_server = None
    try:
        predictor.wait_live()
        yield tmp, port, predictor, lambda: mlflow_server
    finally:
        predictor.stop()
        if mlflow_server is not None:
            mlflow_server.stop()


class Load:
    """Requests in a loop on another thread, every status recorded."""

    def __init__(self, predictor: Predictor, windows) -> None:
        self.predictor, self.windows, self.statuses = predictor, windows, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.statuses.append(self.predictor.infer(self.windows[:1]).status_code)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)


def grpc_infer_status(predictor: Predictor, windows) -> grpc.StatusCode:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    tensor = pb.ModelInferRequest.InferInputTensor(
        name="closes", datatype="FP64", shape=[1, 60],
        contents=pb.InferTensorContents(fp64_contents=windows[0].tolist()),
    )  # fmt: skip
    with grpc.insecure_channel(f"127.0.0.1:{predictor.grpc}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        try:
            stub.ModelInfer(pb.ModelInferRequest(model_name="aapl", inputs=[tensor]), timeout=10)
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def versions(predictor: Predictor) -> list[str]:
    return predictor.get("/v2/models/aapl").json()["versions"]


def test_hot_reload_lifecycle(stack, windows):
    tmp, port, predictor, _ = stack
    # 1. No registry yet: live, not ready, inference refused with 503 (not 500).
    assert predictor.get("/v2/health/live").status_code == 200
    assert predictor.get("/v2/health/ready").status_code == 503
    assert predictor.get("/v2/models/aapl/ready").status_code == 503
    assert predictor.infer(windows[:1]).status_code == 503
    assert grpc_infer_status(predictor, windows) == grpc.StatusCode.UNAVAILABLE
    # 2. MLflow comes up; training registers version 1 as champion; the predictor loads it.
    mlflow_server = MlflowServer(tmp / "mlflow", port).wait_up()
    try:
        url = mlflow_server.url
        settings = fast_settings(tmp, tracking_uri=url, max_epochs=1)
        first = pipeline.run(settings)
        assert first.decision.promote
        predictor.wait_ready(60)
        assert versions(predictor) == ["1"]
        assert predictor.metric("forecaster_model_info", version="1") == 1
        answer = predictor.infer(windows[:1]).json()["outputs"][0]["data"][0]
        assert answer == pytest.approx(first.test_forecasts["forecast"][0], rel=1e-6)

        # 3. The alias moves to version 2 while requests keep coming: swapped without a restart,
        #    and not one request fails during the swap.
        client = MlflowClient(url, url)
        v1 = client.get_model_version(NAME, "1")
        model_id = v1.source.removeprefix("models:/")  # training registers its logged model
        v2 = client.create_model_version(NAME, source=v1.source, run_id=v1.run_id, model_id=model_id)
        with Load(predictor, windows) as load:
            client.set_registered_model_alias(NAME, "champion", v2.version)
            wait_for(lambda: versions(predictor) == ["2"], 30, "reload to version 2")
            time.sleep(0.5)
        assert load.statuses and set(load.statuses) == {200}, sorted(set(load.statuses))
        assert len(load.statuses) > 50
        assert predictor.metric("forecaster_reloads_total", result="success") == 2
        assert predictor.metric("forecaster_model_info", version="2") == 1
        assert predictor.metric("forecaster_model_info", version="1") == 0

        # 4. The alias moves to a corrupt bundle: still serving version 2, failure counted.
        corrupt = tmp / "corrupt"
        shutil.copytree(first.bundle_path, corrupt)
        (corrupt / "model.onnx").write_bytes(b"not an onnx model")
        import mlflow

        mlflow.set_tracking_uri(url)
        with mlflow.start_run(
            experiment_id=client.get_experiment_by_name(settings.experiment).experiment_id
        ) as run:
            mlflow.log_artifacts(str(corrupt), "bundle")
        v3 = client.create_model_version(
            NAME, source=f"runs:/{run.info.run_id}/bundle", run_id=run.info.run_id
        )
        failed_before = predictor.metric("forecaster_reloads_total", result="failure")
        client.set_registered_model_alias(NAME, "champion", v3.version)
        wait_for(
            lambda: predictor.metric("forecaster_reloads_total", result="failure") > failed_before,
            30,
            "failure",
        )
        assert versions(predictor) == ["2"]
        assert predictor.get("/v2/health/ready").status_code == 200
        assert predictor.infer(windows[:1]).status_code == 200
        assert "cannot load version 3" in predictor.output()

        # 5. The alias moves back to a good version: served again.
        client.set_registered_model_alias(NAME, "champion", "1")
        wait_for(lambda: versions(predictor) == ["1"], 30, "reload back to version 1")

        # 6. The version the alias points at is deleted (the alias goes with it): keep serving.
        failures = predictor.output().count("cannot resolve")
        client.delete_model_version(NAME, "1")
        wait_for(lambda: predictor.output().count("cannot resolve") > failures, 30, "a resolve failure")
        time.sleep(2)
        assert versions(predictor) == ["1"] and predictor.infer(windows[:1]).status_code == 200
        assert predictor.get("/v2/health/ready").status_code == 200
    finally:
        mlflow_server.stop()
