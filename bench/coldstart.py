"""Predictor cold start (process start -> live -> ready -> first answer) and the installed size of
the serving dependencies (no torch), measured from the installed distributions' file lists.

    .venv/bin/python -m bench.coldstart [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from importlib import metadata
from pathlib import Path

from bench.common import free_port, predictor_args, save, start, stop, train_bundle, wait_http

SERVE_ROOTS = (
    "kserve",
    "onnxruntime",
    "numpy",
    "prometheus-client",
    "mlflow-skinny",
    "pydantic",
    "pydantic-settings",
)


def closure(roots: tuple[str, ...]) -> set[str]:
    """Distributions the roots need (extras excluded), as the installer would pull them."""
    seen, todo = set(), list(roots)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def size_mib(names: set[str]) -> float:
    total = 0
    for name in names:
        for f in metadata.distribution(name).files or []:
            path = Path(f.locate())
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    result, _ = train_bundle(work, epochs=2)
    from training.data import sample_test_windows

    window = sample_test_windows(result.metadata)[0].tolist()
    body = json.dumps(
        {"inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": window}]}
    ).encode()
    runs = []
    for _ in range(args.runs):
        port = free_port()
        t0 = time.monotonic()
        proc = start(predictor_args(result.bundle_path, port))
        try:
            url = f"http://127.0.0.1:{port}"
            live = wait_http(url + "/v2/health/live", 120)
            ready = wait_http(url + "/v2/health/ready", 120) + live
            first = time.monotonic()
            wait_http(url + "/v2/models/m/infer", 10, method="POST", body=body)
            runs.append(
                {
                    "live_s": live,
                    "ready_s": ready,
                    "first_answer_s": time.monotonic() - t0,
                    "first_request_s": time.monotonic() - first,
                }
            )
        finally:
            stop(proc)
    serve, train = closure(SERVE_ROOTS), closure(("torch", "lightning", "mlflow"))
    sizes = {
        "serve_deps_mib": size_mib(serve),
        "serve_distributions": len(serve),
        "torch_lightning_mlflow_mib": size_mib(train),
        "torch_in_serving_closure": "torch" in serve,
    }
    for r in runs:
        print(
            f"live {r['live_s']:.2f} s, ready {r['ready_s']:.2f} s, first answer {r['first_answer_s']:.2f} s"
        )
    print(json.dumps(sizes, indent=2))
    print("wrote", save("coldstart", {"runs": runs, "sizes": sizes}))


if __name__ == "__main__":
    main()
