"""Open Inference Protocol conformance with the clients users really run: NVIDIA's tritonclient (HTTP
JSON, HTTP binary tensor extension, gRPC raw contents) and kserve's own REST and gRPC clients, against
a live predictor on loopback serving a tiny bundle whose answers are known by hand."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from tests.conftest import REPO
from tests.integration.servers import Predictor
from tests.tiny_bundle import WINDOW, expected_forecast, windows, write_tiny_bundle

pytestmark = pytest.mark.slow
ALL = ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]
ROWS = windows(3)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conformance")
    write_tiny_bundle(tmp / "bundle")
    predictor = Predictor(tmp, "m", str(tmp / "bundle"))
    try:
        yield predictor.wait_ready()
    finally:
        predictor.stop()


@pytest.fixture(scope="module")
def triton(server) -> dict:
    """tritonclient's answers, from a process of its own (see triton_probe)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.predictor.triton_probe", str(server.http), str(server.grpc),
         str(WINDOW)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_tritonclient_http_infer_with_requested_outputs(triton, binary_in, binary_out):
    case = triton[f"http in={binary_in} out={binary_out}"]
    np.testing.assert_allclose(case["forecast"], expected_forecast(np.array(triton["rows"])), rtol=1e-9)
    assert len(case["upper_95"]) == 3 and case["lower_80"] is None
    assert case["sent as bytes"] == {"forecast": binary_out, "upper_95": binary_out}  # binary_data honoured


def test_tritonclient_http_binary_data_output_and_versions(triton):
    assert triton["http fp32 all outputs as bytes"] == [True] * len(ALL)  # tritonclient's default ask
    np.testing.assert_allclose(
        triton["http fp32 forecast"], expected_forecast(np.array(triton["rows"])), rtol=1e-6
    )
    assert triton["http versioned"]["answered"] == triton["http versioned"]["asked"]
    assert "has no version '999'" in triton["http unknown version"]["error"]
    assert triton["http unknown version ready"] is False


def test_tritonclient_http_metadata_fp32_and_errors(triton):
    assert triton["http ready"] and triton["http fp32 all outputs"] == ALL
    assert triton["http server metadata"]["extensions"] == ["binary_tensor_data"]
    meta = triton["http metadata"]
    assert [o["name"] for o in meta["outputs"]] == ALL and meta["inputs"][0]["shape"] == [-1, WINDOW]
    assert f"window length is 3; this model needs {WINDOW}" in triton["http short window"]["error"]
    assert "unknown output 'median'" in triton["http unknown output"]["error"]


def test_tritonclient_grpc_raw_contents(triton):
    np.testing.assert_allclose(triton["grpc raw"]["forecast"], expected_forecast(np.array(triton["rows"])),
                               rtol=1e-9)  # fmt: skip
    assert triton["grpc output names"] == ["forecast"] and triton["grpc metadata outputs"] == ALL
    assert "INVALID_ARGUMENT" in triton["grpc negative"]["error"]
    assert "prices must be > 0" in triton["grpc negative"]["error"] and triton["grpc ready"]
    assert [triton["grpc versioned"]] == triton["grpc metadata versions"]
    assert "NOT_FOUND" in triton["grpc unknown version"]["error"]


def kserve_request(rows: np.ndarray, binary: bool, outputs=None) -> InferRequest:
    tensor = InferInput("closes", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    wanted = [RequestedOutput(n) for n in outputs] if outputs else None
    return InferRequest(model_name="m", infer_inputs=[tensor], request_outputs=wanted)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_rest_client(server, binary):
    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        try:
            return await client.infer(server.url, kserve_request(ROWS, binary), model_name="m")
        finally:
            await client.close()

    response = asyncio.run(call())
    by_name = {o.name: o.as_numpy() for o in response.outputs}
    assert list(by_name) == ALL
    np.testing.assert_allclose(by_name["forecast"], expected_forecast(ROWS), rtol=1e-9)


def test_kserve_grpc_client(server):
    async def call(request):
        client = InferenceGRPCClient(f"127.0.0.1:{server.grpc}", retries=0)
        try:
            return await client.infer(request)
        finally:
            await client.close()

    response = asyncio.run(call(kserve_request(ROWS, True, ["lower_95", "forecast"])))
    assert [o.name for o in response.outputs] == ["forecast", "lower_95"]
    np.testing.assert_allclose(response.outputs[0].as_numpy(), expected_forecast(ROWS), rtol=1e-9)
