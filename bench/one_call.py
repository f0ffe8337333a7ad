"""The one-call forecast's cost: p50/p99 of a cached one-call request through the transformer beside
a direct v2 request (60 closes) to the predictor, same model, sequential keep-alive clients.

    .venv/bin/python -m bench.one_call [--requests 2000] [--baseline DIR]

`--baseline DIR` adds a predictor and a transformer as checked out in DIR (e.g. `git archive main |
tar -x -C DIR`), measured in the same interleaved run: their paths are prefixed `baseline_`.

Target (issue 15): the cached one call adds <= 2 ms p50 over the direct v2 call. The model is a
window-60 bundle built with onnx.helper (tests/tiny_bundle.py): its inference cost is the same on
both paths, so the difference is the transformer's (one more HTTP hop, decode, window, answer).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from bench.common import PY, cpu_seconds, free_port, predictor_args, save, start, stop, wait_http
from marketdata.frames import read_sample

AS_OF = "2024-12-27"


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 3)}


def timed(session: requests.Session, url: str, body: dict) -> float:
    start_t = time.perf_counter()
    response = session.post(url, json=body, timeout=10)
    elapsed = time.perf_counter() - start_t
    response.raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--baseline", type=Path, help="a checkout whose servers run beside this one's")
    args = parser.parse_args()
    from tests.tiny_bundle import tiny_bundle

    tmp = Path(tempfile.mkdtemp(prefix="bench-one-call-"))
    tiny_bundle(tmp / "bundle", weight=0.5, bias=0.1, window=60, center=0.0005, scale=0.02)
    stacks = {"": None, **({"baseline_": args.baseline.resolve()} if args.baseline else {})}
    ports, procs = {}, {}
    try:
        for prefix, cwd in stacks.items():
            http, front = free_port(), free_port()
            ports[prefix] = (http, front)
            procs[prefix + "predictor"] = start(predictor_args(tmp / "bundle", http),
                                                log=tmp / f"{prefix}predictor.log", cwd=cwd)  # fmt: skip
            procs[prefix + "transformer"] = start(
                [PY, "-m", "transformer", "--model_name", "m", "--http_port", str(front),
                 "--predictor_host", f"127.0.0.1:{http}", "--source", "sample", "--calendar", "XNYS",
                 "--ticker", "AAPL"], log=tmp / f"{prefix}transformer.log", cwd=cwd,
            )  # fmt: skip
        for http, front in ports.values():
            wait_http(f"http://127.0.0.1:{http}/v2/health/ready")
            wait_http(f"http://127.0.0.1:{front}/v2/health/ready")
        frame = read_sample()
        closes = frame.loc[frame["date"] <= AS_OF, "close"].to_numpy(dtype=np.float64)[-60:]
        direct = {
            "inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": closes.tolist()}]
        }
        one_call = {"instances": [{"as_of": AS_OF}]}
        as_of = {"name": "as_of", "datatype": "BYTES", "shape": [1], "data": [AS_OF]}
        paths = {}
        for prefix, (http, front) in ports.items():
            paths |= {
                f"{prefix}direct_v2": (f"http://127.0.0.1:{http}/v2/models/m/infer", direct),
                f"{prefix}one_call_v1": (f"http://127.0.0.1:{front}/v1/models/m:predict", one_call),
                f"{prefix}one_call_v2": (f"http://127.0.0.1:{front}/v2/models/m/infer", {"inputs": [as_of]}),
                f"{prefix}relayed_v2": (f"http://127.0.0.1:{front}/v2/models/m/infer", direct),
            }  # fmt: skip
        sessions = {name: requests.Session() for name in paths}
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for i in range(args.warmup + args.requests):
            for name, (url, body) in paths.items():  # interleaved: drift hits every path alike
                elapsed = timed(sessions[name], url, body)
                if i >= args.warmup:
                    samples[name].append(elapsed)
        # CPU per request of each server process, path by path: wall time on a loaded machine
        # measures the queue for the cores; CPU time measures the work each path adds.
        cpu = {}
        for name, (url, body) in paths.items():
            prefix = "baseline_" if name.startswith("baseline_") else ""
            pair = {p: procs[prefix + p] for p in ("predictor", "transformer")}
            before = {p: cpu_seconds(proc.pid) for p, proc in pair.items()}
            for _ in range(args.requests // 2):
                timed(sessions[name], url, body)
            cpu[name] = {
                f"{p}_cpu_ms": round((cpu_seconds(proc.pid) - before[p]) / (args.requests // 2) * 1000, 3)
                for p, proc in pair.items()
            }
        answer = sessions["one_call_v1"].post(paths["one_call_v1"][0], json=one_call, timeout=10).json()
        fetches = requests.get(f"http://127.0.0.1:{ports[''][1]}/metrics", timeout=10).text
    finally:
        for proc in procs.values():
            stop(proc)
    results = {name: percentiles(s) for name, s in samples.items()}
    for prefix in stacks:
        base = results[f"{prefix}direct_v2"]["p50_ms"]
        for name in ("one_call_v1", "one_call_v2", "relayed_v2"):
            results[prefix + name]["added_p50_ms"] = round(results[prefix + name]["p50_ms"] - base, 3)
    for name, result in results.items():
        result.update(cpu[name])
    fetch_lines = [
        line for line in fetches.splitlines() if line.startswith("forecaster_marketdata_fetches_total")
    ]
    payload = {"requests": args.requests, "as_of": AS_OF, "results": results, "answer": answer,
               "fetches": fetch_lines, "target_added_p50_ms": 2.0}  # fmt: skip
    print(save("one_call", payload))
    for name, r in results.items():
        print(f"{name:12s} {r}")


if __name__ == "__main__":
    main()
