"""MLflow on PostgreSQL, as the chart runs it (`mlflow.backend.type: postgresql`): Debian's PostgreSQL
on loopback, a role and database of MLflow's own, the chart's migration (`mlflow db upgrade`, the hook
Job's arguments as rendered) and its wait-for-schema init program, then a real `mlflow server`
reading the URI from MLFLOW_BACKEND_STORE_URI. On it: registering, moving aliases, and parallel
trainings (separate processes) registering at once, with nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.deploy.conftest import render_docs
from tests.integration.mlflow_backend.register_worker import SHARED, own_model
from tests.integration.servers import MlflowServer, Postgres
from tests.integration.storage.test_fetch import log_version, run_fetch
from tests.tiny_bundle import write_tiny_bundle

pytestmark = pytest.mark.slow
PARALLEL = 8  # trainings registering at once (a universe's parallel pods, and then some)
VERSIONS = 3  # versions each registers of its own model, and of the shared one
CHART_VALUES = {"mlflow": {"backend": {"type": "postgresql", "postgresql": {"existingSecret": "mlflow-db"}}}}
MLFLOW = str(Path(sys.executable).parent / "mlflow")
MLFLOW_DEPLOYMENT = "petr4-forecaster-mlflow"


def chart_commands() -> tuple[list[str], list[str]]:
    """The migration Job's command line and the wait-for-schema init container's, as rendered."""
    docs = render_docs(CHART_VALUES)
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("mlflow-db-upgrade"))
    (upgrade,) = job["spec"]["template"]["spec"]["containers"]
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == MLFLOW_DEPLOYMENT
    )
    (wait,) = deployment["spec"]["template"]["spec"]["initContainers"]
    return upgrade["command"] + upgrade["args"], wait["command"]


def run_as_kubelet(command: list[str], uri: str, *extra: str) -> subprocess.CompletedProcess:
    """A container's command as the kubelet runs it: $(MLFLOW_BACKEND_STORE_URI) expanded from its
    env (the Secret), `mlflow` and `python` those of this venv."""
    binaries = {"mlflow": MLFLOW, "python": sys.executable}
    argv = [binaries.get(command[0], command[0])]
    argv += [a.replace("$(MLFLOW_BACKEND_STORE_URI)", uri) for a in command[1:]]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [*argv, *extra], capture_output=True, text=True, timeout=300, check=False,
        env={**clean, "MLFLOW_BACKEND_STORE_URI": uri},
    )  # fmt: skip


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    server = Postgres(tmp_path_factory.mktemp("postgres") / "postgres.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlflow_on_postgres(postgres, tmp_path_factory):
    """The chart's order: the migration Job, then the server (URI in its environment)."""
    uri = postgres.create_database("mlflow", "mlflow", "mlflow-" + os.urandom(4).hex())
    upgrade, _ = chart_commands()
    migrated = run_as_kubelet(upgrade, uri)
    assert migrated.returncode == 0, migrated.stderr
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-pg"), backend_uri=uri).wait_up()
    try:
        yield server, uri
    finally:
        server.stop()


def test_the_chart_migrates_once_and_the_server_waits_for_it(postgres):
    """On an empty database the init program refuses (the server would create tables itself); after
    the Job's `mlflow db upgrade` it passes; a second upgrade (the next `helm upgrade`) is a no-op."""
    uri = postgres.create_database("fresh", "fresh", "fresh-" + os.urandom(4).hex())
    upgrade, wait = chart_commands()
    assert wait[:2] == ["python", "-c"] and upgrade[:3] == ["mlflow", "db", "upgrade"]
    before = run_as_kubelet(wait[:3], uri, "0")  # no waiting: one look
    assert before.returncode == 1, before.stdout + before.stderr
    assert "database schema None, this MLflow expects" in before.stderr
    assert "has not run" in before.stderr
    first = run_as_kubelet(upgrade, uri)
    assert first.returncode == 0, first.stderr
    after = run_as_kubelet(wait, uri)
    assert after.returncode == 0, after.stderr
    assert "the one this MLflow expects" in after.stdout
    again = run_as_kubelet(upgrade, uri)
    assert again.returncode == 0, again.stderr
    for result in (before, first, after, again):  # the password never reaches a log line
        assert uri.split(":")[2].split("@")[0] not in result.stdout + result.stderr


def test_register_fetch_and_move_aliases(mlflow_on_postgres, tmp_path):
    from mlflow import MlflowClient

    server, uri = mlflow_on_postgres
    bundle = tmp_path / "bundle"
    write_tiny_bundle(bundle)
    name = "pg-forecaster"
    assert log_version(server.url, bundle, name) == "1"
    assert log_version(server.url, bundle, name) == "2"
    client = MlflowClient(server.url, server.url)
    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    client.set_registered_model_alias(name, "champion", "2")  # a promotion
    client.set_registered_model_alias(name, "challenger", "1")
    model = client.get_registered_model(name)
    assert model.aliases == {"champion": "2", "challenger": "1"}
    client.delete_registered_model_alias(name, "challenger")
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    # The storage initializer fetches and verifies the champion's bundle (artifacts proxied).
    dest = tmp_path / "mnt-models"
    dest.mkdir()
    fetched = run_fetch(server.url, f"models:/{name}@champion", dest)
    assert fetched.returncode == 0, fetched.stderr
    assert "version 2" in fetched.stdout and "sha256 verified: model.onnx" in fetched.stdout
    # It is all in PostgreSQL: the registry's own tables hold it.
    import psycopg

    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = %s", (name,)
        ).fetchall()
    assert rows == [("champion", 2)]


def test_parallel_trainings_register_without_loss(mlflow_on_postgres, tmp_path):
    """PARALLEL processes at once, each a run with a bundle, VERSIONS versions of its own model and
    of one shared model, and aliases: every version is there, numbers unique and dense per model,
    each version's run is the process that registered it, every alias where it was set."""
    from mlflow import MlflowClient

    server, _ = mlflow_on_postgres
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env = {**clean, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    started = time.monotonic()
    worker = [sys.executable, "-m", "tests.integration.mlflow_backend.register_worker", server.url]
    workers = [
        subprocess.Popen(
            [*worker, str(i), str(VERSIONS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(PARALLEL)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.monotonic() - started
    print(f"\n{PARALLEL} parallel trainings x {2 * VERSIONS} versions registered in {elapsed:.1f} s")

    client = MlflowClient(server.url, server.url)
    reported: dict[str, set[tuple[str, str]]] = defaultdict(set)  # model -> {(version, run)}
    for r in results:
        for name, version in r["registered"]:
            reported[name].add((version, r["run_id"]))
    for name in [own_model(i) for i in range(PARALLEL)] + [SHARED]:
        stored = {(v.version, v.run_id) for v in client.search_model_versions(f"name='{name}'")}
        assert stored == reported[name], name  # nothing lost, nothing extra, each with its run
        numbers = sorted(int(v) for v, _ in stored)
        assert numbers == list(range(1, len(numbers) + 1)), (name, numbers)  # unique and dense
    assert len(reported[SHARED]) == PARALLEL * VERSIONS
    shared = client.get_registered_model(SHARED).aliases
    for r in results:
        i = r["index"]
        assert client.get_registered_model(own_model(i)).aliases == {"champion": str(VERSIONS)}
        last = max(int(v) for name, v in r["registered"] if name == SHARED)
        assert shared[f"p{i}"] == str(last)
    runs = client.search_runs([client.get_experiment_by_name("parallel-trainings").experiment_id])
    assert len(runs) == PARALLEL  # one experiment, created once, every run in it


def test_a_training_that_loses_the_create_race_registers_into_the_winners(mlflow_on_postgres, monkeypatch):
    """The project's own get-or-create (training.registry.connect and register), in the window a
    universe's pods starting together hit: the experiment and the registered model were created by
    another pod after this one looked them up and found nothing. It must reuse them and register
    its version, not fail on RESOURCE_ALREADY_EXISTS."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.registry import connect, register
    from training.settings import TrainSettings

    server, _ = mlflow_on_postgres
    settings = TrainSettings(tracking_uri=server.url, experiment="lost-the-race", registry=True)
    other_pod = MlflowClient(server.url, server.url)
    winner = other_pod.create_experiment("lost-the-race")
    other_pod.create_registered_model("race-forecaster")
    real_get_experiment = MlflowClient.get_experiment_by_name
    looked: set[str] = set()

    def looked_before_the_other_pod_created_it(self, name):
        if name not in looked:  # the first lookup happened before the other pod's create
            looked.add(name)
            return None
        return real_get_experiment(self, name)

    def model_not_found_yet(self, name):
        raise MlflowException(f"Registered Model with name={name} not found", "RESOURCE_DOES_NOT_EXIST")

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", looked_before_the_other_pod_created_it)
    monkeypatch.setattr(MlflowClient, "get_registered_model", model_not_found_yet)
    client, experiment_id = connect(settings)
    assert experiment_id == winner
    model_id = client.create_logged_model(experiment_id, name="race").model_id
    assert register(client, "race-forecaster", model_id, None, {}) == "1"
    monkeypatch.undo()
    assert [v.version for v in other_pod.search_model_versions("name='race-forecaster'")] == ["1"]
