"""Model inference alone: torch eager vs onnxruntime fp32 vs int8, batch 1 and 64, one thread each,
interleaved in one run so machine noise hits all three alike.

    .venv/bin/python -m bench.inference [--repeats 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import save, train_bundle
from bundle import OnnxForecaster, load_bundle
from bundle.transform import model_inputs


def timings(fn, repeats: int) -> np.ndarray:
    for _ in range(50):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t
    return out / 1e3  # µs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    result, module = train_bundle(work, epochs=2)
    bundle = load_bundle(result.bundle_path)
    spec = bundle.metadata.features
    from training.data import sample_test_windows

    windows = sample_test_windows(result.metadata)
    engines = {
        "torch eager": lambda x: module.net(torch.from_numpy(x)),
        "onnxruntime fp32": OnnxForecaster(bundle, "fp32", threads=1).run_scaled,
        "onnxruntime int8": OnnxForecaster(bundle, "int8", threads=1).run_scaled,
    }
    rows = []
    with torch.no_grad():
        for batch in (1, 64):
            x = model_inputs(windows[:batch], spec)
            samples = {name: [] for name in engines}
            for _ in range(4):  # interleave rounds
                for name, engine in engines.items():
                    samples[name].append(timings(lambda e=engine, x=x: e(x), args.repeats // 4))
            for name, parts in samples.items():
                t = np.concatenate(parts)
                rows.append(
                    {
                        "engine": name,
                        "batch": batch,
                        "p50_us": float(np.percentile(t, 50)),
                        "p99_us": float(np.percentile(t, 99)),
                        "per_row_p50_us": float(np.percentile(t, 50)) / batch,
                    }
                )
    base = {r["batch"]: r["p50_us"] for r in rows if r["engine"] == "torch eager"}
    for r in rows:
        r["speedup_vs_torch"] = base[r["batch"]] / r["p50_us"]
        print(
            f"{r['engine']:18s} batch {r['batch']:3d}: p50 {r['p50_us']:8.1f} µs  p99 {r['p99_us']:8.1f} µs  "
            f"x{r['speedup_vs_torch']:.2f} vs torch"
        )
    print("wrote", save("inference", {"repeats": args.repeats, "rows": rows}))


if __name__ == "__main__":
    main()
