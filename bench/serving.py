"""Serving throughput, latency and CPU per request, measured side by side in one run with wrk.

Servers (batch 1, one 60-close window per request, 127.0.0.1 only, each run bounded in time):
our predictor with its quiet default (fast path and batching), with batching off, with its fast path
off (kserve's route), with kserve's default logging, and with 2 workers; bare kserve + onnxruntime
(kserve's custom-model path on its defaults, nothing of ours: what kserve costs); a seed-style
FastAPI server (torch eager in the route); a bare Starlette + onnxruntime floor.
`--baseline DIR` adds the predictor as checked out in DIR (e.g. `git archive main | tar -x -C DIR`), so a
change to the request path is measured before and after in the same interleaved run.

    .venv/bin/python -m bench.serving [--duration 8] [--concurrency 1 8 32] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import (
    PY,
    cpu_seconds,
    free_port,
    predictor_args,
    rss_bytes,
    save,
    start,
    stop,
    train_bundle,
    wait_http,
)

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
BARE_KSERVE = "bare kserve + onnxruntime (defaults)"
BASELINE = "predictor (baseline checkout)"
FAST_OFF = "predictor (fast path off)"
NO_BATCHING = "predictor (batching off)"


def servers(
    bundle: Path, weights: Path, window: list[float], baseline: Path | None = None
) -> dict[str, dict]:
    v2 = json.dumps({"inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": window}]})
    plain = json.dumps({"closes": [window]})

    def predictor(*extra: str, cwd: Path | None = None) -> dict:
        port = free_port()
        args = predictor_args(bundle, port, "--enable_grpc", "false", *extra)
        return {
            "args": args,
            "port": port,
            "path": "/v2/models/m/infer",
            "body": v2,
            "ready": "/v2/health/ready",
            "cwd": cwd,
        }

    def bare_kserve() -> dict:
        port = free_port()
        ports = ["--http_port", str(port), "--grpc_port", str(free_port())]
        return {
            "args": [PY, "-m", "bench.servers.bare_kserve", "--model_name", "m", *ports],
            "port": port,
            "path": "/v2/models/m/infer",
            "body": v2,
            "ready": "/v2/health/ready",
            "env": {"BENCH_BUNDLE": str(bundle)},
        }

    def uvicorn(app: str, *extra: str) -> dict:
        port = free_port()
        args = [PY, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), *extra]
        return {
            "args": args,
            "port": port,
            "path": "/predict",
            "body": plain,
            "ready": None,
            "env": {"BENCH_BUNDLE": str(bundle), "BENCH_WEIGHTS": str(weights)},
        }

    baseline_server = {BASELINE: predictor(cwd=baseline.resolve())} if baseline else {}
    return {
        "predictor (quiet default)": predictor(),
        **baseline_server,
        FAST_OFF: predictor("--no-fast-path"),
        NO_BATCHING: predictor("--no-batching"),
        "predictor (kserve default logging)": predictor("--no-quiet"),
        "predictor (2 workers)": predictor("--workers", "2"),
        BARE_KSERVE: bare_kserve(),
        "seed-style FastAPI + torch eager": uvicorn("bench.servers.seed:app"),
        "floor: Starlette + onnxruntime": uvicorn("bench.servers.floor:app", "--no-access-log"),
    }


def parse_wrk(text: str) -> dict:
    def seconds(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
        return float(number) * UNITS[unit]

    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", text, re.M))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)$", text, re.M)
    return {
        "requests": total,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": seconds(latency["50"]) * 1e3,
        "p99_ms": seconds(latency["99"]) * 1e3,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def run_wrk(port: int, path: str, body: str, connections: int, duration: float, workdir: Path) -> str:
    script = workdir / "post.lua"
    lua = [
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        f"wrk.body = {json.dumps(body)}",
    ]
    script.write_text("\n".join(lua) + "\n")
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{round(duration)}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=duration + 30).stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--only", nargs="*", help="substring filter on server names")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--baseline", type=Path, help="a checkout whose predictor runs beside this one")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    result, _ = train_bundle(work / "train", epochs=3)
    bundle, weights = result.bundle_path, work / "train" / "weights.pt"
    from training.data import sample_test_windows

    window = sample_test_windows(result.metadata)[0].tolist()
    specs = {
        n: s
        for n, s in servers(bundle, weights, window, args.baseline).items()
        if not args.only or any(o in n for o in args.only)
    }
    procs = {}
    try:
        for name, spec in specs.items():  # all up at once, so every round hits every server alike
            procs[name] = start(spec["args"], spec.get("env"), work / f"{spec['port']}.log", spec.get("cwd"))
        for spec in specs.values():
            url = f"http://127.0.0.1:{spec['port']}"
            if spec["ready"]:
                wait_http(url + spec["ready"])
            wait_http(url + spec["path"], method="POST", body=spec["body"].encode())
            run_wrk(spec["port"], spec["path"], spec["body"], 8, 2, work)  # warm-up
        samples: dict[tuple[str, int], list[dict]] = {}
        for _ in range(args.rounds):  # interleaved rounds; the median round is reported
            for c in args.concurrency:
                for name, spec in specs.items():
                    cpu0 = cpu_seconds(procs[name].pid)
                    stats = parse_wrk(
                        run_wrk(spec["port"], spec["path"], spec["body"], c, args.duration, work)
                    )
                    stats["cpu_us_per_request"] = (
                        (cpu_seconds(procs[name].pid) - cpu0) / max(stats["requests"], 1) * 1e6
                    )
                    stats.update(server=name, concurrency=c, rss_mib=rss_bytes(procs[name].pid) / 2**20)
                    samples.setdefault((name, c), []).append(stats)
    finally:
        for proc in procs.values():
            stop(proc)
    rows = []
    for (name, c), runs in samples.items():
        median = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
        median["rps_all_rounds"] = [round(r["rps"]) for r in runs]
        rows.append(median)
        print(
            f"{name:38s} c={c:<3d} {median['rps']:8.0f} req/s (rounds {median['rps_all_rounds']})  "
            f"p50 {median['p50_ms']:6.2f} ms  p99 {median['p99_ms']:6.2f} ms  "
            f"cpu {median['cpu_us_per_request']:6.0f} us/req  rss {median['rss_mib']:5.0f} MiB  "
            f"non-2xx {median['non_2xx']}"
        )
    ratios = ratios_of(rows)
    print(json.dumps(ratios, indent=2))
    print(
        "wrote",
        save("serving", {"duration_s": args.duration, "rounds": args.rounds, "rows": rows, "ratios": ratios}),
    )


def ratios_of(rows: list[dict]) -> dict:
    def get(server: str, c: int, key: str) -> float | None:
        for r in rows:
            if r["server"] == server and r["concurrency"] == c:
                return r[key]
        return None

    out = {}
    ours, seed = "predictor (quiet default)", "seed-style FastAPI + torch eager"
    logging_on, floor = "predictor (kserve default logging)", "floor: Starlette + onnxruntime"
    for c in sorted({r["concurrency"] for r in rows}):
        pairs = {
            f"c{c}_rps_predictor_over_seed": (get(ours, c, "rps"), get(seed, c, "rps")),
            f"c{c}_rps_quiet_over_kserve_logging": (get(ours, c, "rps"), get(logging_on, c, "rps")),
            f"c{c}_cpu_predictor_over_floor": (
                get(ours, c, "cpu_us_per_request"),
                get(floor, c, "cpu_us_per_request"),
            ),
        }
        for key, server in (
            ("kserve_logging", logging_on),
            ("bare_kserve", BARE_KSERVE),
            ("baseline", BASELINE),
            ("fast_path_off", FAST_OFF),
        ):
            pairs[f"c{c}_cpu_predictor_over_{key}"] = (
                get(ours, c, "cpu_us_per_request"),
                get(server, c, "cpu_us_per_request"),
            )
        pairs[f"c{c}_rps_predictor_over_batching_off"] = (get(ours, c, "rps"), get(NO_BATCHING, c, "rps"))
        pairs[f"c{c}_cpu_predictor_over_batching_off"] = (
            get(ours, c, "cpu_us_per_request"),
            get(NO_BATCHING, c, "cpu_us_per_request"),
        )
        pairs[f"c{c}_cpu_batching_off_over_floor"] = (
            get(NO_BATCHING, c, "cpu_us_per_request"),
            get(floor, c, "cpu_us_per_request"),
        )
        pairs[f"c{c}_cpu_bare_kserve_over_floor"] = (
            get(BARE_KSERVE, c, "cpu_us_per_request"),
            get(floor, c, "cpu_us_per_request"),
        )
        pairs[f"c{c}_cpu_kserve_logging_over_bare_kserve"] = (
            get(logging_on, c, "cpu_us_per_request"),
            get(BARE_KSERVE, c, "cpu_us_per_request"),
        )
        pairs[f"c{c}_rps_predictor_over_bare_kserve"] = (get(ours, c, "rps"), get(BARE_KSERVE, c, "rps"))
        out.update({k: round(a / b, 3) for k, (a, b) in pairs.items() if a and b})
    return out


if __name__ == "__main__":
    main()
