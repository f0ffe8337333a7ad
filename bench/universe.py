"""Many models in one predictor: RSS for 1, 10 and 50 models, time for 50 to load and become ready,
and per-model latency with 50 models loaded against one.

One trained bundle is copied N times under different model names (metadata rewritten through the
bundle API, so every copy is a sha256-checked bundle) into a shard directory laid out as KServe's
storage initializer lays one out (`<dir>/<model-name>/`); the predictor serves it with
`--model-source <dir>`. The one-model baseline is today's single-bundle predictor. Latency: v2 REST,
batch 1, sequential over one keep-alive connection; the 1-model and 50-model servers are up at once
and measured in alternating blocks (order rotating), so load from elsewhere hits both alike.

    .venv/bin/python -m bench.universe [--bundle DIR] [--requests 3000] [--mlflow]

`--mlflow` adds the other delivery: the 50 copies registered in a real `mlflow server` (loopback) and
served as `--model-sources models:/m00@champion,...`, each resolved and downloaded by the one loader.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import PY, free_port, rss_bytes, save, start, stop, train_bundle, wait_http
from bundle.io import LoadedBundle, load_bundle, write_bundle

COUNTS = (1, 10, 50)


def replicate(bundle: LoadedBundle, shard: Path, count: int) -> list[str]:
    """`count` copies of `bundle` as `<shard>/m00 ...`, each its own model name and ticker."""
    files = {v.file: (bundle.path / v.file).read_bytes() for v in bundle.metadata.variants.values()}
    names = [f"m{i:02d}" for i in range(count)]
    for i, name in enumerate(names):
        meta = bundle.metadata.model_copy(update={"model_name": name, "ticker": f"T{i:02d}"})
        write_bundle(shard / name, meta, files)
    return names


class Server:
    """A predictor on loopback; `models` names what it serves."""

    def __init__(self, models: list[str], log: Path, *sources: str) -> None:
        self.port, self.models = free_port(), models
        self.url = f"http://127.0.0.1:{self.port}"
        ports = ["--http_port", str(self.port), "--grpc_port", str(free_port())]
        args = [PY, "-m", "predictor", "--model_name", models[0], *sources, *ports]
        self.t0 = time.monotonic()
        self.proc = start(args, log=log)

    def wait(self) -> dict:
        live = wait_http(self.url + "/v2/health/live", 180)
        ready = wait_http(self.url + "/v2/health/ready", 180) + live
        for name in self.models:  # server ready is "every model tried, one serves": want all
            wait_http(f"{self.url}/v2/models/{name}/ready", 60)
        return {"live_s": live, "all_ready_s": time.monotonic() - self.t0, "server_ready_s": ready}

    def rss_mib(self) -> float:
        return rss_bytes(self.proc.pid) / 2**20


def register_all(shard: Path, names: list[str], work: Path) -> tuple[object, str]:
    """A real `mlflow server` holding every copy as a registered model at alias `champion`."""
    import mlflow
    from mlflow import MlflowClient

    from tests.integration.servers import MlflowServer

    server = MlflowServer(work / "mlflow").wait_up()
    client = MlflowClient(server.url, server.url)
    mlflow.set_tracking_uri(server.url)
    experiment = client.create_experiment("universe")
    for name in names:
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifacts(str(shard / name), "bundle")
        client.create_registered_model(name)
        version = client.create_model_version(name, f"runs:/{run.info.run_id}/bundle", run.info.run_id)
        client.set_registered_model_alias(name, "champion", version.version)
    return server, server.url


def from_registry(names: list[str], url: str, work: Path) -> dict:
    """Seconds until every `models:/<name>@champion` of one predictor is ready (download included)."""
    sources = ",".join(f"models:/{n}@champion" for n in names)
    server = Server(names, work / "predictor-mlflow.log", "--model-sources", sources,
                    "--tracking-uri", url, "--cache-dir", str(work / "cache"))  # fmt: skip
    try:
        return {**server.wait(), "rss_warm_mib": server.rss_mib()}
    finally:
        stop(server.proc)


def latencies(port: int, models: list[str], body: bytes, count: int) -> list[float]:
    """`count` sequential v2 requests over one connection, round-robin over `models` (seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    out = []
    try:
        for i in range(count):
            path = f"/v2/models/{models[i % len(models)]}/infer"
            t = time.perf_counter()
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            response.read()
            out.append(time.perf_counter() - t)
            assert response.status == 200, response.status
    finally:
        conn.close()
    return out


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "requests": len(samples),
        "p50_us": statistics.median(ordered) * 1e6,
        "mean_us": statistics.fmean(ordered) * 1e6,
        "p99_us": ordered[int(0.99 * (len(ordered) - 1))] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, help="a trained bundle (default: train one, 2 epochs)")
    parser.add_argument("--requests", type=int, default=3000, help="latency requests per server")
    parser.add_argument("--blocks", type=int, default=10, help="alternating latency blocks")
    parser.add_argument("--mlflow", action="store_true", help="also: 50 models:/ aliases from a real MLflow")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-universe-"))
    bundle = (
        load_bundle(args.bundle)
        if args.bundle
        else load_bundle(train_bundle(work / "train", 2)[0].bundle_path)
    )
    window = bundle.metadata.features.window
    closes = [100.0 * (1 + 0.001 * i) for i in range(window)]
    body = json.dumps({"inputs": [{"name": "closes", "shape": [1, window], "datatype": "FP64",
                                   "data": closes}]}).encode()  # fmt: skip
    sizes, servers = {}, {}
    try:
        for count in COUNTS:
            names = replicate(bundle, work / f"shard{count}", count)
            source = work / f"shard{count}" / names[0] if count == 1 else work / f"shard{count}"
            server = servers[count] = Server(
                names, work / f"predictor-{count}.log", "--model-source", str(source)
            )
            timing = server.wait()
            ready_rss = server.rss_mib()
            latencies(server.port, names, body, 20 * count)  # every model's session warmed up
            sizes[count] = {**timing, "rss_ready_mib": ready_rss, "rss_warm_mib": server.rss_mib()}
            if count == 10:  # the middle server is only for memory
                stop(servers.pop(10).proc)
        one, many = servers[1], servers[50]
        samples: dict[str, list[float]] = {"1 model": [], "50 models, one of them": [],
                                           "50 models, round-robin": []}  # fmt: skip
        per_block = max(1, args.requests // args.blocks)
        runs = [("1 model", one.port, one.models), ("50 models, one of them", many.port, many.models[:1]),
                ("50 models, round-robin", many.port, many.models)]  # fmt: skip
        for block in range(args.blocks):  # the order rotates: no server always goes first
            for key, port, models in runs[block % 3 :] + runs[: block % 3]:
                samples[key] += latencies(port, models, body, per_block)
    finally:
        for server in servers.values():
            stop(server.proc)
    registry = None
    if args.mlflow:
        mlflow_server, url = register_all(work / "shard50", [f"m{i:02d}" for i in range(50)], work)
        try:
            registry = from_registry([f"m{i:02d}" for i in range(50)], url, work)
        finally:
            mlflow_server.stop()
        print(f"50 models:/ aliases from MLflow: all ready {registry['all_ready_s']:.2f} s after start "
              f"(live {registry['live_s']:.2f} s), RSS {registry['rss_warm_mib']:.0f} MiB")  # fmt: skip
    base = sizes[1]["rss_warm_mib"]
    per_model = {n: (s["rss_warm_mib"] - base) / (n - 1) for n, s in sizes.items() if n > 1}
    latency = {k: summary(v) for k, v in samples.items()}
    for n, s in sizes.items():
        extra = f", {per_model[n]:.2f} MiB per additional model" if n in per_model else ""
        rss = f"RSS {s['rss_ready_mib']:.0f} MiB ready, {s['rss_warm_mib']:.0f} MiB warm{extra}"
        print(f"{n:>2} models: {rss}; "
              f"all ready {s['all_ready_s']:.2f} s after start (live {s['live_s']:.2f} s)")  # fmt: skip
    one_p50 = latency["1 model"]["p50_us"]
    for k, v in latency.items():
        print(f"{k:<24} p50 {v['p50_us']:.0f} µs  mean {v['mean_us']:.0f} µs  p99 {v['p99_us']:.0f} µs  "
              f"(p50 {100 * (v['p50_us'] / one_p50 - 1):+.1f}% vs 1 model)")  # fmt: skip
    payload = {"sizes": sizes, "per_model_mib": per_model, "latency": latency, "mlflow_50": registry}
    print("wrote", save("universe", payload))


if __name__ == "__main__":
    main()
