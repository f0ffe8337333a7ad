"""`--workers 2`: the model survives kserve's spawning and /metrics aggregates every worker."""

from __future__ import annotations

import pytest
import requests

from tests.integration.servers import Predictor

pytestmark = pytest.mark.slow


def test_two_workers_serve_and_scrapes_are_monotonic_and_complete(trained, windows, tmp_path):
    server = Predictor(tmp_path, "aapl", str(trained[1].bundle_path), "--workers", "2")
    try:
        server.wait_ready(90)
        body = {
            "inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": windows[0].tolist()}]
        }
        seen, sent = [], 0
        for _ in range(8):
            for _ in range(5):  # fresh connections, so the kernel spreads them over both workers
                with requests.Session() as session:
                    response = session.post(f"{server.url}/v2/models/aapl/infer", json=body, timeout=10)
                assert response.status_code == 200
                sent += 1
            seen.append(server.metric("forecaster_predictions_total"))
        assert seen == sorted(seen), f"counter went backwards between scrapes: {seen}"
        assert seen[-1] == sent, f"scrape shows {seen[-1]} of {sent}: workers not aggregated"
        finals = {server.metric("forecaster_predictions_total") for _ in range(10)}
        assert finals == {float(sent)}, f"successive scrapes disagree: {finals}"
        assert server.metric("forecaster_requests_total", route="v2_infer", code="200") == sent
        assert server.metric("forecaster_model_ready") >= 1
    finally:
        server.stop()
    assert "Traceback" not in server.output()
