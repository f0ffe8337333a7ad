"""The same request gets the same bytes whatever else is in flight (issue 23), on real servers: a
predictor as deployed (fast path, defaults) under 24 concurrent clients answers every request byte
for byte as kserve's route (`--no-fast-path`) answers it alone. Both variants; int8 is the one whose
answers moved with their neighbours when batching was on by default."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from tests.integration.servers import Predictor
from tests.tiny_bundle import windows, write_tiny_bundle

pytestmark = pytest.mark.slow
CLIENTS, REQUESTS = 24, 240


def mixed(count: int) -> list[tuple[str, dict]]:
    rng = np.random.default_rng(23)
    out = []
    for i in range(count):
        rows = windows(int(rng.integers(1, 5)), start=float(rng.uniform(5, 500)))
        rows = rows * np.exp(rng.normal(0, 0.02, rows.shape))
        if i % 5 == 0:
            out.append(("/v1/models/tiny:predict", {"instances": rows.tolist()}))
        else:
            tensor = {"name": "closes", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}
            out.append(("/v2/models/tiny/infer", {"id": f"r{i}", "inputs": [tensor]}))
    return out


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_concurrent_answers_are_kserves_answers_alone(tmp_path, variant):
    write_tiny_bundle(tmp_path / "bundle", int8=True)
    source = str(tmp_path / "bundle")
    fast = Predictor(tmp_path, "tiny", source, "--variant", variant)
    kserve = Predictor(tmp_path, "tiny", source, "--variant", variant, "--no-fast-path")
    try:
        fast.wait_ready()
        kserve.wait_ready()
        calls = mixed(REQUESTS)
        local, lock, now, peak = threading.local(), threading.Lock(), [0], [0]

        def send(call: tuple[str, dict]) -> requests.Response:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            try:
                return session.post(fast.url + call[0], json=call[1], timeout=30)
            finally:
                with lock:
                    now[0] -= 1

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(send, calls))
        assert peak[0] >= 8, f"only {peak[0]} requests were in flight together"
        for (path, body), answer in zip(calls, answers, strict=True):
            alone = kserve.post(path, json=body)
            assert answer.status_code == alone.status_code == 200, answer.text
            assert answer.content == alone.content, body
    finally:
        fast.stop()
        kserve.stop()
