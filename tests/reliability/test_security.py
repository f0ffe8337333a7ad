"""Security promises of the serving path."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys

import numpy as np
import pytest

from bundle import OnnxForecaster, load_bundle
from tests.conftest import REPO
from tests.integration.servers import Predictor

SERVING = ("bundle", "serving", "predictor", "transformer")
FORBIDDEN = {
    "pickle",
    "cPickle",
    "joblib",
    "dill",
    "cloudpickle",
    "torch",
    "training",
    "lightning",
    "shelve",
    "marshal",
}


def imported_modules(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (REPO / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


@pytest.mark.parametrize("package", SERVING)
def test_serving_code_imports_no_pickle_no_torch_no_training(package):
    offenders = {f: sorted(n & FORBIDDEN) for f, n in imported_modules(package).items() if n & FORBIDDEN}
    assert offenders == {}


def test_loading_and_serving_a_bundle_never_unpickles(trained, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used on the serving path")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(np, "load", refuse)
    forecaster = OnnxForecaster(load_bundle(trained[1].bundle_path))
    forecaster.self_test()
    assert forecaster.forecast(np.full((1, 60), 100.0), horizon=3).mean.shape == (1, 3)


def test_the_predictor_process_never_imports_torch_or_training():
    code = "\n".join(
        [
            "import sys",
            "sys.argv = ['predictor']",
            "import predictor.__main__, predictor.model, predictor.kserve_seam, bundle.source",
            "bad = sorted(m for m in ('torch', 'lightning', 'training', 'joblib') if m in sys.modules)",
            "print(bad)",
            "sys.exit(1 if bad else 0)",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_optional_bearer_token_guards_inference_only(trained, windows, tmp_path):
    server = Predictor(tmp_path, "aapl", str(trained[1].bundle_path),
                       env={"FORECASTER_PREDICTOR_API_TOKEN": "s3cret-token"})  # fmt: skip
    try:
        server.wait_ready()
        assert server.infer(windows[:1]).status_code == 401
        body = {
            "inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": windows[0].tolist()}]
        }
        wrong = server.post("/v2/models/aapl/infer", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
        right = server.post(
            "/v2/models/aapl/infer", json=body, headers={"Authorization": "Bearer s3cret-token"}
        )
        assert right.status_code == 200
        assert (
            server.post("/v1/models/aapl:predict", json={"instances": [windows[0].tolist()]}).status_code
            == 401
        )
        # Probes and metrics stay open for the kubelet and Prometheus.
        assert server.get("/v2/health/ready").status_code == 200 and server.get("/metrics").status_code == 200
        grpc_infer_needs_the_same_token(server, windows)
    finally:
        server.stop()
    assert "s3cret-token" not in server.output()  # never logged


def grpc_infer_needs_the_same_token(server, windows):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    tensor = pb.ModelInferRequest.InferInputTensor(
        name="closes", datatype="FP64", shape=[1, 60],
        contents=pb.InferTensorContents(fp64_contents=windows[0].tolist()),
    )  # fmt: skip
    request = pb.ModelInferRequest(model_name="aapl", inputs=[tensor])
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer nope"),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(request, metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "bearer token" in refused.value.details()
        answer = stub.ModelInfer(request, metadata=(("authorization", "Bearer s3cret-token"),), timeout=10)
        assert answer.outputs[0].name == "forecast"
        assert stub.ModelReady(pb.ModelReadyRequest(name="aapl"), timeout=10).ready  # health stays open


# -- issue 23: what a predictor whose registry is down says, and to whom -------------------------------
SECRET = "s3cr3t-pw"
INFER = {"inputs": [{"name": "closes", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]}


@pytest.mark.slow
@pytest.mark.parametrize("token", [None, "the-token"], ids=["no-token", "token"])
def test_a_password_in_the_tracking_uri_reaches_no_answer_and_no_log_line(tmp_path, token):
    """A tracking URI with `user:password@` whose MLflow is down (a refused port). Without the token
    every answer holds model names and states only; with it, the reason names the URI, masked; no
    answer and no log line holds the password. Before: readiness quoted MLflow's error, URI and
    password included, to anyone, and the log line too."""
    from tests.integration.servers import refused_port

    with refused_port() as port:
        uri = f"http://forecaster:{SECRET}@127.0.0.1:{port}"
        log = _predictor_behind_a_dead_registry(tmp_path, uri, token)
    assert "127.0.0.1" in log and "http://***@127.0.0.1" in log  # the log says why, masked
    assert SECRET not in log


def _predictor_behind_a_dead_registry(tmp_path, uri: str, token: str | None) -> str:
    """Every answer of a predictor whose registry is down, checked; returns its log."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    from tests.integration.servers import grpc_stub, wait_for

    env = {"FORECASTER_PREDICTOR_API_TOKEN": token} if token else {}
    server = Predictor(tmp_path, "m", "models:/m@champion", "--tracking-uri", uri,
                       "--mlflow-retries", "0", "--load-retry-max-s", "1", env=env)  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        server.wait_live()
        wait_for(
            lambda: "unavailable" in server.get("/v2/health/ready").text, 60, "a failed load", server.proc
        )
        open_answers = [
            server.get("/v2/health/ready"), server.get("/v2/models/m/ready"), server.get("/v2/models/m"),
            server.get("/v2/models/m/versions/1/ready"), server.get("/v1/models/m"),
            server.post("/v2/models/m/infer", json=INFER),  # 401 with a token, else 503
        ]  # fmt: skip
        for answer in open_answers:
            assert SECRET not in answer.text and "127.0.0.1" not in answer.text, (answer.url, answer.text)
        state = "unavailable: the model registry or its storage did not answer; retrying"
        assert open_answers[0].status_code == 503 and open_answers[0].json()["missing"] == {"m": state}
        if token:
            detailed = [server.get("/v2/health/ready", headers=auth),
                        server.post("/v2/models/m/infer", json=INFER, headers=auth)]  # fmt: skip
            for answer in detailed:
                assert answer.status_code == 503 and "http://***@127.0.0.1" in answer.text, answer.text
                assert SECRET not in answer.text
        with grpc_stub(server.grpc) as stub:
            assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
            assert not stub.ModelReady(pb.ModelReadyRequest(name="m"), timeout=10).ready
            tensor = pb.ModelInferRequest.InferInputTensor(name="closes", datatype="FP64", shape=[1, 3],
                contents=pb.InferTensorContents(fp64_contents=[1.0, 2.0, 3.0]))  # fmt: skip
            metadata = (("authorization", f"Bearer {token}"),) if token else ()
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(
                    pb.ModelInferRequest(model_name="m", inputs=[tensor]), metadata=metadata, timeout=10
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert SECRET not in refused.value.details() and "127.0.0.1" not in refused.value.details()
    finally:
        server.stop()
    return server.output()
