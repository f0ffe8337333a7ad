"""The same model over KServe's gRPC v2 service (port --grpc_port)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from tests.integration.servers import grpc_stub

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stub(served):
    with grpc_stub(served.grpc) as stub:
        yield stub


def infer_request(closes: np.ndarray, name: str = "closes", datatype: str = "FP64", shape=None):
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=name, datatype=datatype, shape=list(shape or closes.shape),
        contents=pb.InferTensorContents(fp64_contents=closes.reshape(-1).tolist()),
    )  # fmt: skip
    return pb.ModelInferRequest(model_name="aapl", id="g1", inputs=[tensor])


def test_health_and_metadata(stub):
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="aapl")).ready
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="aapl"))
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("closes", "FP64", [-1, 60])]
    assert [t.name for t in meta.outputs][:1] == ["forecast"]


def test_infer_matches_the_training_forecasts(stub, trained, windows):
    response = stub.ModelInfer(infer_request(windows[:4]))
    outputs = {o.name: i for i, o in enumerate(response.outputs)}
    raw = response.raw_output_contents[outputs["forecast"]]
    forecast = np.frombuffer(raw, dtype=np.float64)
    np.testing.assert_allclose(forecast, trained[1].test_forecasts["forecast"][:4], rtol=1e-6)
    assert set(outputs) == {"forecast", "lower_80", "upper_80", "lower_95", "upper_95"}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"name": "x"}, "unknown input 'x'"),
        ({"shape": [60]}, "must have rank 2"),
        ({"shape": [2, 60]}, "data has 60 values but shape [2, 60] needs 120"),
    ],
)
def test_bad_input_is_invalid_argument(stub, windows, kwargs, message):
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(infer_request(windows[:1], **kwargs))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()


def test_nan_is_invalid_argument(stub, windows):
    closes = windows[:1].copy()
    closes[0, 5] = np.nan
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(infer_request(closes))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be finite" in err.value.details()


def test_repository_unload_is_refused_and_the_model_keeps_serving(stub, windows):
    with pytest.raises(grpc.RpcError) as err:
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="aapl"))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED and "disabled" in err.value.details()
    assert stub.ModelReady(pb.ModelReadyRequest(name="aapl")).ready
    assert len(stub.ModelInfer(infer_request(windows[:1])).outputs) == 5


def test_raw_input_contents_are_read_as_typed_bytes(stub, trained, windows):
    """tritonclient's and kserve's clients send raw_input_contents by default."""
    for dtype, datatype in ((np.float64, "FP64"), (np.float32, "FP32")):
        rows = windows[:3].astype(dtype)
        tensor = pb.ModelInferRequest.InferInputTensor(name="closes", datatype=datatype, shape=[3, 60])
        request = pb.ModelInferRequest(
            model_name="aapl", inputs=[tensor], raw_input_contents=[rows.tobytes()]
        )
        response = stub.ModelInfer(request)
        forecast = np.frombuffer(response.raw_output_contents[0], dtype=np.float64)
        np.testing.assert_allclose(forecast, trained[1].test_forecasts["forecast"][:3], rtol=1e-5)


def test_raw_bytes_of_the_wrong_size_are_invalid_argument(stub, windows):
    tensor = pb.ModelInferRequest.InferInputTensor(name="closes", datatype="FP64", shape=[1, 60])
    request = pb.ModelInferRequest(model_name="aapl", inputs=[tensor], raw_input_contents=[b"\0" * 59 * 8])
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "cannot read input" in err.value.details()


def test_versions_and_datatypes_agree_with_rest(stub, served, windows):
    """The mapping of the in-process rules (tests/unit/predictor/test_protocol.py) to gRPC codes."""
    version = served.get("/v2/models/aapl").json()["versions"][0]
    assert list(stub.ModelMetadata(pb.ModelMetadataRequest(name="aapl")).versions) == [version]
    assert stub.ModelReady(pb.ModelReadyRequest(name="aapl", version=version)).ready
    request = infer_request(windows[:1])
    request.model_version = version
    assert stub.ModelInfer(request).model_version == version
    request.model_version = "999"
    unknown = pb.ModelReadyRequest(name="aapl", version="999")
    for call, message in ((stub.ModelInfer, request), (stub.ModelReady, unknown)):
        with pytest.raises(grpc.RpcError) as err:
            call(message)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "has no version '999'" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(infer_request(windows[:1], datatype="fp64"))
    assert (
        err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "'fp64' is not a protocol datatype" in err.value.details()
    )


def test_a_request_whose_strings_are_not_utf8_is_invalid_argument(served):
    """An encoded lone surrogate (`\\xed\\xa0\\x80`) in `id` or a model name: protobuf cannot parse
    the message; the answer is INVALID_ARGUMENT naming why (issue 23: grpc's deserializer raised
    outside any handler, and clients got UNKNOWN)."""
    good = pb.ModelInferRequest(model_name="aapl", id="AB").SerializeToString()
    ready = pb.ModelReadyRequest(name="aapl").SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc}") as channel:
        for method, raw, reply in (
            ("ModelInfer", good.replace(b"\x02AB", b"\x03\xed\xa0\x80"), pb.ModelInferResponse),
            ("ModelReady", ready.replace(b"\x04aapl", b"\x05aap\xed\xb0"), pb.ModelReadyResponse),
        ):
            call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}",
                                       response_deserializer=reply.FromString)  # fmt: skip
            with pytest.raises(grpc.RpcError) as refused:
                call(raw, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
            assert "valid UTF-8" in refused.value.details()
