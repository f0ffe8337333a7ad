"""Fuzzing the live predictor: schemathesis from its own OpenAPI document, and hypothesis-generated
tensors, JSON, content types and truncated bodies on every inference route. No 5xx, no crash, the
server stays ready and its memory stays bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import rss_mib, size

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
ROUTES = ("/v2/models/aapl/infer", "/v1/models/aapl:predict", "/v1/timeseries/forecast")
EXAMPLES = size(120, 3000)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, -0.0, 1e-320, 1e308, 5e-324, 37.5]),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=40,
)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["closes", "x", "", "closes "]),
        "datatype": st.sampled_from(["FP64", "FP32", "FP16", "INT64", "BYTES", "BOOL", "fp64", "X"]),
        "shape": st.lists(st.integers(-3, 300), max_size=4),
        "data": st.one_of(
            st.lists(numbers, max_size=130), st.lists(st.lists(numbers, max_size=61), max_size=3), json_values
        ),
    }
)
bodies = st.one_of(
    st.builds(lambda t: {"inputs": [t]}, tensors),
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


def test_server_survived_the_fuzzing(served, windows):
    assert served.get("/v2/health/ready").status_code == 200
    assert served.infer(windows[:1]).status_code == 200
    assert 'code="500"' not in served.get("/metrics").text
