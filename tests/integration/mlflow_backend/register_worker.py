"""One "training" of the parallel-registration test, as a process of its own: a run logs a small
bundle through the server's artifact proxy, then registers versions of the process's own model and of
a model every process shares, and moves aliases; it prints what it registered as one JSON line.

    python -m tests.integration.mlflow_backend.register_worker URL INDEX VERSIONS

The registry calls are MLflow's client calls, as training makes them (a run's `bundle` artifacts,
`create_model_version` from `runs:/<run>/bundle`), with get-or-create made safe against the other
processes creating the same experiment or registered model at the same moment.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

EXPERIMENT = "parallel-trainings"
SHARED = "shared-forecaster"


def own_model(index: int) -> str:
    return f"ticker-{index}-forecaster"


def get_or_create(create, get):
    """`create()`, or `get()` when another process created it first (RESOURCE_ALREADY_EXISTS)."""
    try:
        return create()
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return get()


def main(url: str, index: int, versions: int) -> None:
    client = MlflowClient(url, url)
    mlflow.set_tracking_uri(url)
    experiment_id = get_or_create(
        lambda: client.create_experiment(EXPERIMENT),
        lambda: client.get_experiment_by_name(EXPERIMENT).experiment_id,
    )
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp)
        (bundle / "metadata.json").write_text(json.dumps({"process": index}))
        (bundle / "model.onnx").write_bytes(bytes([index]) * 1024)
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metric("mae", 0.4 + index / 100)
            mlflow.log_artifacts(str(bundle), "bundle")
    run_id = run.info.run_id
    registered: list[tuple[str, str]] = []
    for name in (own_model(index), SHARED):
        get_or_create(lambda n=name: client.create_registered_model(n), lambda n=name: n)
    for _ in range(versions):
        for name in (own_model(index), SHARED):
            version = client.create_model_version(
                name, source=f"runs:/{run_id}/bundle", run_id=run_id, tags={"process": str(index)}
            )
            registered.append((name, str(version.version)))
    own_last = max(int(v) for n, v in registered if n == own_model(index))
    shared_last = max(int(v) for n, v in registered if n == SHARED)
    client.set_registered_model_alias(own_model(index), "champion", str(own_last))
    client.set_registered_model_alias(SHARED, f"p{index}", str(shared_last))
    print(json.dumps({"index": index, "run_id": run_id, "registered": registered}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
