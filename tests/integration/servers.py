"""Real servers on loopback for integration tests: the predictor and an MLflow tracking server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def refused_port():
    """A loopback port that refuses connections (bound, never listening) and that no other process
    can take while the test uses it: a free_port() may be another test's server a moment later."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@contextmanager
def grpc_stub(port: int, timeout: float = 30):
    """A stub of KServe's v2 gRPC service on 127.0.0.1:`port`, its channel ready, closed after."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=timeout)
    try:
        yield pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        channel.close()


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Process:
    """A subprocess with its output in a log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None) -> None:
        self.log = log
        self.handle = log.open("wb")
        # MLflow exports MLFLOW_* variables when a test sets a tracking URI: never leak them.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.proc = subprocess.Popen(
            args, cwd=REPO, stdout=self.handle, stderr=subprocess.STDOUT,
            env={**clean, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.handle.close()
        return self.proc.returncode


class Predictor(Process):
    def __init__(
        self, tmp: Path, name: str, source: str | None, *extra: str, env: dict | None = None
    ) -> None:
        """`source` None: no --model-source (the models come from `extra`, e.g. --model-sources)."""
        self.name, self.http, self.grpc = name, free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        sources = ["--model-source", source] if source is not None else []
        args = [sys.executable, "-m", "predictor", "--model_name", name, *sources,
                "--http_port", str(self.http), "--grpc_port", str(self.grpc), *extra]  # fmt: skip
        super().__init__(args, tmp / f"predictor-{self.http}.log", env)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, **{"timeout": 10, **kw})

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, **{"timeout": 10, **kw})

    def wait_live(self, timeout: float = 60) -> Predictor:
        wait_for(lambda: self.get("/v2/health/live").status_code == 200, timeout, "live", self.proc)
        return self

    def wait_ready(self, timeout: float = 60) -> Predictor:
        wait_for(lambda: self.get("/v2/health/ready").status_code == 200, timeout, "ready", self.proc)
        return self

    def infer(self, closes, name: str = "closes", datatype: str = "FP64") -> requests.Response:
        rows = [list(map(float, r)) for r in closes]
        body = {"inputs": [{"name": name, "shape": [len(rows), len(rows[0])], "datatype": datatype,
                            "data": rows}]}  # fmt: skip
        return self.post(f"/v2/models/{self.name}/infer", json=body)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


class MlflowServer(Process):
    """`mlflow server` with a SQLite backend and served artifacts, on loopback."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        tmp.mkdir(parents=True, exist_ok=True)
        args = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                "--port", str(self.port), "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                "--artifacts-destination", str(tmp / "artifacts"), "--workers", "1"]  # fmt: skip
        # No job-runner fleet (8 processes, ~2 GB): the registry and artifacts are all tests need.
        quiet = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        super().__init__(args, tmp / f"mlflow-{self.port}.log", quiet)

    def wait_up(self, timeout: float = 120) -> MlflowServer:
        wait_for(lambda: requests.get(self.url + "/health", timeout=5).status_code == 200, timeout,
                 "mlflow server", self.proc)  # fmt: skip
        return self


class ModelServe(Process):
    """`mlflow models serve -m <uri> --env-manager local` on loopback: MLflow's own scoring server,
    in this environment (nothing installed: pip is also told there is no index to install from)."""

    def __init__(self, tmp: Path, model_uri: str, tracking_uri: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
                "--env-manager", "local", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", "1"]  # fmt: skip
        # No checkout on the path: the model runs the `bundle` package it carries. The environment's
        # bin first, as in an activated venv: mlflow execs `uvicorn` from PATH.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {"MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": "", "PIP_NO_INDEX": "1", "PATH": path}
        super().__init__(args, tmp / f"mlflow-serve-{self.port}.log", env)

    def wait_up(self, timeout: float = 120) -> ModelServe:
        wait_for(lambda: requests.get(self.url + "/ping", timeout=5).status_code == 200, timeout,
                 "mlflow models serve", self.proc)  # fmt: skip
        return self

    def invocations(self, body: str) -> requests.Response:
        return requests.post(self.url + "/invocations", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})  # fmt: skip


def timeseries_body(model: str, series: list, horizon: int = 1, **options) -> dict:
    """A KServe time-series forecast request for one univariate daily series."""
    item = {"type": "univariate_time_series", "name": "s", "series": series, "frequency": "D"}
    return {"model": model, "inputs": [item], "options": {"horizon": horizon, **options}}


class Prometheus(Process):
    """Debian's `prometheus` on loopback: 1 s scrape and rule evaluation, the given rule files."""

    def __init__(
        self, tmp: Path, targets: dict[str, str], rule_files: list[Path], labels: dict | None = None
    ) -> None:
        import shutil

        import yaml

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target], "labels": labels or {}}]}
                for job, target in targets.items()
            ],
        }
        path = tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        binary = shutil.which("prometheus")
        assert binary, "Debian's prometheus is missing: scripts/system-deps.sh installs it"
        args = [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}"]  # fmt: skip
        super().__init__(args, tmp / "prometheus.log")

    def wait_up(self, timeout: float = 60) -> Prometheus:
        wait_for(lambda: requests.get(self.url + "/-/ready", timeout=2).ok, timeout, "prometheus", self.proc)
        return self

    def query(self, expr: str) -> list[dict]:
        return requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5).json()["data"][
            "result"
        ]

    def alerts(self, name: str) -> list[dict]:
        data = requests.get(self.url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in data if a["labels"].get("alertname") == name]


class Transformer(Process):
    """`python -m transformer` in front of a predictor on loopback (kserve's --predictor_host)."""

    def __init__(
        self, tmp: Path, name: str, predictor_http: int, *extra: str, env: dict | None = None
    ) -> None:
        self.name, self.http = name, free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        args = [sys.executable, "-m", "transformer", "--model_name", name, "--http_port", str(self.http),
                "--predictor_host", f"127.0.0.1:{predictor_http}", *extra]  # fmt: skip
        super().__init__(args, tmp / f"transformer-{self.http}.log", env)

    get, post, metric = Predictor.get, Predictor.post, Predictor.metric

    def wait_ready(self, timeout: float = 60) -> Transformer:
        wait_for(lambda: self.get("/v2/health/ready").status_code == 200, timeout, "transformer", self.proc)
        return self
