"""Shared by the benchmark scripts: a trained bundle, process measurements, result files."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = Path(os.environ.get("FORECASTER_SHARED", REPO.parent / "shared"))
PETR4_CSV = SHARED / "data" / "petr4_daily.csv"
PY = sys.executable


def machine() -> dict:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=str))
    return path


def train_bundle(out: Path, epochs: int = 5):
    """A real bundle (and its torch weights, for the torch-eager baselines) on the packaged sample."""
    import torch

    from training import pipeline
    from training.settings import TrainSettings

    settings = TrainSettings(
        source="sample",
        max_epochs=epochs,
        registry=False,
        output_dir=out,
        validation_sessions=120,
        test_sessions=120,
    )
    captured = {}
    original = pipeline.export

    def keep(module, features, **kwargs):
        captured["module"] = module
        return original(module, features, **kwargs)

    pipeline.export = keep
    try:
        result = pipeline.run(settings)
    finally:
        pipeline.export = original
    torch.save(captured["module"].net.state_dict(), out / "weights.pt")
    return result, captured["module"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def predictor_args(bundle: Path, port: int, *extra: str) -> list[str]:
    """`python -m predictor` serving `bundle` as model `m` on `port` (gRPC on a free port)."""
    model = ["--model_name", "m", "--model-source", str(bundle)]
    ports = ["--http_port", str(port), "--grpc_port", str(free_port())]
    return [PY, "-m", "predictor", *model, *ports, *extra]


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for proc in tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def start(
    args: list[str], env: dict | None = None, log: Path | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """`args` in its own session, from `cwd` (default: this checkout), importing from that checkout."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = log.open("wb") if log else subprocess.DEVNULL
    return subprocess.Popen(
        args,
        cwd=cwd or REPO,
        env={**clean, "PYTHONPATH": str(cwd or REPO), **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_http(url: str, timeout: float = 90, method: str = "GET", body: bytes | None = None) -> float:
    import urllib.request

    start_t = time.monotonic()
    while time.monotonic() - start_t < timeout:
        try:
            req = urllib.request.Request(
                url, data=body, method=method, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - start_t
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
