"""Real servers on loopback for integration tests: the predictor, an MLflow tracking server, the
read-only port's nginx (as the chart configures it) and PostgreSQL."""

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
    """`mlflow server` with served artifacts, on loopback: SQLite in `tmp`, or `backend_uri` (e.g. a
    PostgreSQL URI, passed in MLFLOW_BACKEND_STORE_URI as the chart does, never as an argument)."""

    def __init__(self, tmp: Path, port: int | None = None, backend_uri: str | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        tmp.mkdir(parents=True, exist_ok=True)
        store = [] if backend_uri else ["--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}"]
        args = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                "--port", str(self.port), *store,
                "--artifacts-destination", str(tmp / "artifacts"), "--workers", "1"]  # fmt: skip
        # No job-runner fleet (8 processes, ~2 GB): the registry and artifacts are all tests need.
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        if backend_uri:
            env["MLFLOW_BACKEND_STORE_URI"] = backend_uri
        super().__init__(args, tmp / f"mlflow-{self.port}.log", env)

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


class ReadOnlyGuard(Process):
    """Debian's nginx running the MLflow read-only port's configuration exactly as the chart renders
    it (the <fullname>-mlflow-readonly ConfigMap), with only its listen address (loopback, a free
    port) and its upstream (`upstream`, MLflow's host:port) substituted; pid and temp files under
    `tmp` (the chart's prefix is the sidecar's emptyDir). `values` are chart values for the render."""

    def __init__(self, tmp: Path, upstream: str, values: dict | None = None) -> None:
        import re
        import shutil

        import yaml

        from tests.deploy.conftest import render

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rendered = render(values or {})["petr4-forecaster/templates/mlflow/readonly-configmap.yaml"]
        self.config = yaml.safe_load(rendered)["data"]["nginx.conf"]
        listen = rf"\1listen 127.0.0.1:{self.port};"
        text, listens = re.subn(r"(?m)^(\s*)listen \d+;$", listen, self.config)
        proxy = f"proxy_pass http://{upstream};"
        text, upstreams = re.subn(r"proxy_pass http://127\.0\.0\.1:\d+;", proxy, text)
        assert (listens, upstreams) == (1, 1), "the chart's nginx.conf lost its one listen or proxy_pass"
        prefix = tmp / f"nginx-{self.port}"
        prefix.mkdir(parents=True)
        (prefix / "nginx.conf").write_text(text)
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert Path(binary).exists(), "Debian's nginx is missing: scripts/system-deps.sh installs it"
        # The sidecar's command, with this prefix: nginx -p <prefix>/ -c <conf> -e stderr.
        args = [binary, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", "stderr"]
        super().__init__(args, tmp / f"nginx-{self.port}.log")

    def wait_up(self, timeout: float = 30) -> ReadOnlyGuard:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, timeout, "nginx (read-only port)", self.proc)
        return self

    def access_log(self) -> list[dict]:
        """The JSON access-log lines (the sidecar writes them to stdout), complete lines only."""
        import json

        lines = self.output().split("\n")[:-1]  # the text after the last newline may be half written
        return [json.loads(line) for line in lines if line.startswith("{")]


class Postgres:
    """Debian's PostgreSQL on 127.0.0.1 and a free port, in a fresh data directory, stopped (fast
    shutdown) and removed at the end. PostgreSQL refuses to run as root: as root (CI) initdb and the
    server run as the `postgres` user (`runuser`), the data directory owned by it. Password auth
    over TCP; `uri(db)` is the SQLAlchemy URI MLflow gets (psycopg 3, SQLAlchemy 2.1's default)."""

    def __init__(self, log: Path) -> None:
        import tempfile

        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        assert bins, "Debian's postgresql is missing: scripts/system-deps.sh installs it"
        self.bin = bins[-1]
        self.port = free_port()
        self.log = log
        self.password = "test-" + os.urandom(6).hex()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # Outside pytest's temp root (mode 0700, root's): the postgres user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="pg-forecaster-"))
        self.data = self.root / "data"
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_user:
            import shutil

            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-instructions",
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}")  # fmt: skip
        pwfile.unlink()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True,
                                text=True, timeout=120, check=False)  # fmt: skip
        with self.log.open("a") as log:
            log.write(f"$ {tool} {' '.join(args)}\n{result.stdout}{result.stderr}")
        assert result.returncode == 0, f"{tool} failed: {result.stderr}"

    def uri(self, db: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        return f"postgresql://{user}:{password or self.password}@127.0.0.1:{self.port}/{db}"

    def create_database(self, db: str, owner: str, password: str) -> str:
        """A role and a database it owns (what a DBA hands MLflow); its URI."""
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD '{password}'")
            conn.execute(f'CREATE DATABASE "{db}" OWNER "{owner}"')
        return self.uri(db, owner, password)

    def stop(self) -> None:
        import shutil

        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            server_log = self.root / "server.log"
            if server_log.exists():
                with self.log.open("a") as log:
                    log.write(server_log.read_text(errors="replace"))
            shutil.rmtree(self.root, ignore_errors=True)
