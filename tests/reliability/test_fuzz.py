"""Fuzzing the live predictor and the live transformer in front of it: schemathesis from the
predictor's own OpenAPI document, and hypothesis-generated tensors, JSON, content types and truncated
bodies on every inference route of both. Every generated string (keys, ids, names, parameters,
tickers, dates) may hold non-BMP characters and lone UTF-16 surrogates (`"\\ud800"`: valid JSON that
Python's json accepts, issue 23). No 5xx, no crash, the servers stay ready and memory stays bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration import servers
from tests.reliability.conftest import rss_mib, size

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
ROUTES = ("/v2/models/aapl/infer", "/v1/models/aapl:predict", "/v1/timeseries/forecast")
EXAMPLES = size(120, 3000)

# Text as JSON may carry it: any code point, lone surrogates (escaped by json.dumps) included.
texts = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=12),
    st.sampled_from(
        ["\ud800", "\udfff", "a\ud83d", "\ude00b", "\U0001f600", "\U0010ffff", "𝔁", "2024-06-03"]
    ),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, -0.0, 1e-320, 1e308, 5e-324, 37.5]),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(texts, inner, max_size=6),
    max_leaves=40,
)
parameters = st.dictionaries(texts, st.one_of(texts, st.booleans(), st.integers(), st.floats()), max_size=3)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["closes", "x", "", "closes ", "\ud800", "😀"]),
        "datatype": st.sampled_from(["FP64", "FP32", "FP16", "INT64", "BYTES", "BOOL", "fp64", "X"]),
        "shape": st.lists(st.integers(-3, 300), max_size=4),
        "data": st.one_of(
            st.lists(numbers, max_size=130), st.lists(st.lists(numbers, max_size=61), max_size=3), json_values
        ),
    },
    optional={"parameters": parameters},
)
VALID = {
    "name": "closes",
    "shape": [1, 60],
    "datatype": "FP64",
    "data": [100.0 * 1.001**t for t in range(60)],
}
bodies = st.one_of(
    st.builds(lambda t: {"inputs": [t]}, tensors),
    st.builds(  # a valid request whose texts are generated: an id is echoed only in a 200
        lambda rid, params: {"id": rid, "inputs": [VALID], "parameters": params}, texts, parameters
    ),
    st.builds(
        lambda t, rid, params, outs: {"id": rid, "inputs": [t], "parameters": params, "outputs": outs},
        tensors,
        texts,
        parameters,
        st.lists(st.fixed_dictionaries({"name": texts}), max_size=2),
    ),
    st.builds(lambda ts: {"inputs": ts}, st.lists(tensors, max_size=3)),
    st.builds(
        lambda rows: {"instances": rows}, st.lists(st.lists(numbers, min_size=58, max_size=61), max_size=4)
    ),
    st.builds(
        lambda series, horizon, q: {
            "model": "aapl",
            "options": {"horizon": horizon, "quantiles": q},
            "inputs": [{"type": "univariate_time_series", "name": "s", "series": series, "frequency": "D"}],
        },
        st.lists(numbers, max_size=80),
        st.integers(-5, 50),
        st.none() | st.lists(st.floats(0, 1), max_size=4),
    ),
    json_values,
)


def test_schemathesis_finds_no_server_error(served):
    before = rss_mib(served.proc.pid)
    config = ["--config-file", str(HERE / "schemathesis.toml")]
    run = [
        "run",
        f"{served.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "-n",
        str(size(40, 1000)),
        "--workers",
        "1",
        "--seed",
        "20261129",
        "--request-timeout",
        "10",
    ]
    args = [str(Path(sys.executable).parent / "schemathesis"), *config, *run]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "passed" in done.stdout and "Server error" not in done.stdout
    assert served.get("/v2/health/ready").status_code == 200
    assert rss_mib(served.proc.pid) < before + 100


def test_a_lone_surrogate_anywhere_is_a_400_naming_its_field(served, windows):
    """The targeted cases of issue 23 on the live predictor (both paths: the fast path reads the body,
    orjson refuses it, kserve's route answers)."""
    valid = {"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": windows[0].tolist()}
    for body, field in (
        ({"id": "\ud800", "inputs": [valid]}, "id"),
        ({"inputs": [valid], "parameters": {"x": "\udc00"}}, "parameters.x"),
        ({"inputs": [{**valid, "name": "\ud800"}]}, "inputs.0.name"),
    ):
        for headers in ({"content-type": "application/json"}, {}):  # FastAPI's parser, and ours
            answer = requests.post(served.url + ROUTES[0], data=json.dumps(body), headers=headers, timeout=10)
            assert answer.status_code == 400, (headers, answer.text)
            assert answer.json()["error"].startswith(f"{field} holds a lone UTF-16"), answer.text
    ok = requests.post(
        served.url + ROUTES[0], data=json.dumps({"id": "\U0001f600", "inputs": [valid]}), timeout=10
    )
    assert ok.status_code == 200 and ok.json()["id"] == "\U0001f600"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_generated_json_never_gives_a_5xx(served, route, body):
    response = requests.post(
        served.url + route, data=json.dumps(body), timeout=10, headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, (route, body, response.text[:300])
    if response.status_code >= 400:
        assert response.json()  # every refusal carries a message


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    route=st.sampled_from(ROUTES),
    raw=st.binary(max_size=2000),
    content_type=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/octet-stream",
            "",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ]
    ),
    cut=st.integers(0, 200),
)
def test_raw_truncated_and_mistyped_bodies_never_give_a_5xx(served, windows, route, raw, content_type, cut):
    valid = json.dumps(
        {"inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": windows[0].tolist()}]}
    ).encode()
    for data in (raw, valid[: len(valid) - cut - 1]):
        response = requests.post(
            served.url + route, data=data, headers={"content-type": content_type}, timeout=10
        )
        assert response.status_code < 500, (route, content_type, data[:80], response.text[:300])


def test_deeply_nested_json_is_refused_not_crashing(served):
    body = "[" * 5000 + "]" * 5000
    for route in ROUTES:
        response = requests.post(
            served.url + route, data=body, headers={"content-type": "application/json"}, timeout=10
        )
        assert 400 <= response.status_code < 500


# -- the binary tensor extension: random headers, binary_data_size and splits of the body -------------
DATATYPES = ["FP64", "FP32", "FP16", "INT64", "INT8", "BYTES", "BOOL", "fp64", "X", ""]
sizes = st.one_of(
    st.integers(-100, 2000), st.sampled_from([0, 480, 960, 2**63]), st.text(max_size=5), st.none()
)
binary_tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["closes", "x"]),
        "datatype": st.sampled_from(DATATYPES),
        "shape": st.lists(st.integers(-3, 130), max_size=3),
        "parameters": st.fixed_dictionaries({"binary_data_size": sizes}) | st.just({}),
    }
)
headers_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=8)  # a header value


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    tensors_=st.lists(binary_tensors, min_size=0, max_size=2),
    extra=st.fixed_dictionaries(
        {}, optional={"outputs": st.lists(json_values, max_size=2), "parameters": json_values}
    ),
    payload=st.one_of(st.binary(max_size=1100), st.just(b"")),
    split=st.one_of(st.none(), st.integers(-5, 3000), headers_text),
    cut=st.integers(0, 50),
)
def test_binary_extension_requests_never_give_a_5xx(served, windows, tensors_, extra, payload, split, cut):
    head = json.dumps({"inputs": tensors_, **extra}).encode()
    body = head + (payload or windows[:2].tobytes())
    body = body[: max(0, len(body) - cut)]
    declared = str(len(head)) if split is None else str(split)  # the header's length, or anything else
    response = requests.post(
        served.url + "/v2/models/aapl/infer", data=body, timeout=10,
        headers={"inference-header-content-length": declared, "content-type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code < 500, (head[:200], declared, response.text[:300])
    if response.status_code >= 400:
        assert isinstance(response.json()["error"], str)


# -- gRPC raw_input_contents: random bytes, shapes, datatypes, counts ---------------------------------
@pytest.fixture(scope="module")
def grpc_stub(served):
    with servers.grpc_stub(served.grpc) as stub:
        yield stub


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from(["closes", "x", ""]),
            st.sampled_from(DATATYPES),
            st.lists(st.integers(-3, 2**40), max_size=3),
        ),
        max_size=2,
    ),
    raw=st.lists(st.one_of(st.binary(max_size=1000), st.sampled_from([b"", b"\0" * 480])), max_size=3),
    version=st.sampled_from(["", "1", "999", "x" * 300]),
)
def test_grpc_raw_contents_never_give_internal_or_unknown(grpc_stub, specs, raw, version):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    inputs = [pb.ModelInferRequest.InferInputTensor(name=n, datatype=d, shape=s) for n, d, s in specs]
    request = pb.ModelInferRequest(
        model_name="aapl", model_version=version, inputs=inputs, raw_input_contents=raw
    )
    try:
        grpc_stub.ModelInfer(request, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), exc.details()
        assert exc.details()


# -- KServe's time-series API: any options, timestamps, frequencies; its own error model ---------------
timeseries_items = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["univariate_time_series", "multivariate_time_series", "x"]),
        "name": texts,
        "series": st.lists(numbers, max_size=80) | st.lists(st.lists(numbers, max_size=3), max_size=70),
        "frequency": st.sampled_from(["D", "day", "H", "W", "M", "Y", "S", "x", ""]),
    },
    optional={"start_timestamp": st.one_of(headers_text, texts, st.sampled_from(
        ["2024-01-02", "9999-12-31", "0001-01-01T00:00:00", "2024-13-01", "2024-01-02T10:00:00+03:00"]))},
)  # fmt: skip
timeseries_bodies = st.fixed_dictionaries(
    {
        "model": st.one_of(st.sampled_from(["aapl", "other", ""]), texts),
        "inputs": st.lists(timeseries_items, max_size=3),
        "options": st.fixed_dictionaries(
            {"horizon": st.one_of(st.integers(-5, 10**6), st.floats(), st.text(max_size=3))},
            optional={
                "quantiles": st.one_of(st.none(), st.lists(st.one_of(st.floats(), numbers), max_size=4))
            },
        ),
    }
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=timeseries_bodies)
def test_time_series_requests_never_give_a_5xx_and_errors_keep_kserves_model(served, body):
    from kserve.protocol.rest.timeseries.types import ErrorResponse

    response = requests.post(served.url + "/v1/timeseries/forecast", data=json.dumps(body), timeout=10,
                             headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code < 500, (body, response.text[:300])
    if response.status_code >= 400:
        error = ErrorResponse.model_validate(response.json()).error
        assert error.code == str(response.status_code) and error.message


def test_server_survived_the_fuzzing(served, windows, grpc_stub):
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    assert served.get("/v2/health/ready").status_code == 200
    assert served.infer(windows[:1]).status_code == 200
    assert grpc_stub.ModelReady(pb.ModelReadyRequest(name="aapl")).ready
    assert 'code="500"' not in served.get("/metrics").text


# -- gRPC: raw bytes as any message (a string field that is not UTF-8 is a lone surrogate encoded) -------
GRPC_METHODS = {
    "ModelInfer": "ModelInferResponse", "ModelReady": "ModelReadyResponse",
    "ModelMetadata": "ModelMetadataResponse", "ServerReady": "ServerReadyResponse",
}  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    method=st.sampled_from(sorted(GRPC_METHODS)),
    raw=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda text: b"\n" + bytes([len(text)]) + text, st.sampled_from(
            [b"\xed\xa0\x80", b"aapl\xed\xbf\xbf", b"\xf0\x9f\x98\x80", b"\xff\xfe", b"aapl"])),
    ),
)  # fmt: skip
def test_grpc_bytes_that_are_no_message_never_give_internal_or_unknown(served, method, raw):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    with grpc.insecure_channel(f"127.0.0.1:{served.grpc}") as channel:
        parse = getattr(pb, GRPC_METHODS[method]).FromString
        call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}", response_deserializer=parse)
        try:
            call(raw, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), exc.details()


# -- the transformer in front of the predictor: its one-call routes, v1 and v2 ---------------------------
@pytest.fixture(scope="module")
def transformer(served, tmp_path_factory):
    """The transformer on the packaged sample (AAPL closes; old data stays servable: the bound is
    the fuzz's least concern), in front of the fuzzed predictor."""
    server = servers.Transformer(tmp_path_factory.mktemp("transformer"), "aapl", served.http,
                                 "--ticker", "AAPL", "--source", "sample", "--calendar", "XNYS",
                                 "--max-age-s", "1e12")  # fmt: skip
    try:
        yield server.wait_ready()
    finally:
        server.stop()


one_call_fields = st.fixed_dictionaries(
    {}, optional={"ticker": st.one_of(st.just("AAPL"), texts, json_values), "as_of": st.one_of(
        st.sampled_from(["2024-06-03", "2024-12-27", "1999-01-01", "2024-02-30"]), texts, json_values)}
)  # fmt: skip
transformer_bodies = st.one_of(
    st.builds(lambda f: {"instances": [f]}, one_call_fields),
    st.builds(  # a valid one call whose id is generated: echoed only in a 200
        lambda rid: {"id": rid, "inputs": [{"name": "as_of", "datatype": "BYTES", "shape": [1],
                                            "data": ["2024-06-03"]}]}, texts,
    ),
    one_call_fields,
    st.builds(
        lambda f, rid: {"id": rid, "inputs": [{"name": k, "datatype": "BYTES", "shape": [1], "data": [v]}
                                               for k, v in f.items()]},
        one_call_fields, texts,
    ),
    st.builds(lambda t, rid: {"id": rid, "inputs": [t]}, tensors, texts),  # relayed calls (closes)
    json_values,
)  # fmt: skip
TRANSFORMER_ROUTES = ("/v1/models/aapl:predict", "/v2/models/aapl/infer")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(route=st.sampled_from(TRANSFORMER_ROUTES), body=transformer_bodies)
def test_transformer_generated_json_never_gives_a_5xx(transformer, route, body):
    response = requests.post(
        transformer.url + route,
        data=json.dumps(body),
        timeout=30,
        headers={"content-type": "application/json"},
    )
    assert response.status_code < 500, (route, body, response.text[:300])
    if response.status_code >= 400:
        assert response.json()["error"]


def test_transformer_names_a_lone_surrogate_and_answers_non_bmp(transformer):
    v2 = "/v2/models/aapl/infer"

    def field(name: str, value: str) -> dict:
        return {"name": name, "datatype": "BYTES", "shape": [1], "data": [value]}

    for body, place in (
        ({"id": "\ud800", "inputs": [field("as_of", "2024-06-03")]}, "id"),
        ({"inputs": [field("ticker", "AAPL\udfff")]}, "inputs.0.data.0"),
        ({"instances": [{"as_of": "\ud800"}]}, "instances.0.as_of"),
    ):
        route = v2 if "inputs" in body else TRANSFORMER_ROUTES[0]
        for headers in ({"content-type": "application/json"}, {}):
            answer = requests.post(
                transformer.url + route, data=json.dumps(body), headers=headers, timeout=30
            )
            assert answer.status_code == 400, (headers, answer.text)
            assert answer.json()["error"].startswith(f"{place} holds a lone"), answer.text
    ok = {"id": "\U0001f600", "inputs": [field("as_of", "2024-06-03")]}
    answer = requests.post(transformer.url + v2, data=json.dumps(ok), timeout=30)
    assert answer.status_code == 200 and answer.json()["id"] == "\U0001f600", answer.text


def test_transformer_survived_the_fuzzing(transformer):
    assert transformer.get("/v2/health/ready").status_code == 200
    answer = requests.post(transformer.url + TRANSFORMER_ROUTES[0], json={"as_of": "2024-06-03"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert 'code="500"' not in transformer.get("/metrics").text
    assert "Traceback" not in transformer.output()
