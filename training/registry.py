"""MLflow: experiment, run artifacts, model versions, tags and the champion alias."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from bundle import BundleError, LoadedBundle, load_bundle
from training.settings import TrainSettings

log = logging.getLogger(__name__)
BUNDLE_ARTIFACT_PATH = "bundle"


def connect(settings: TrainSettings) -> tuple[MlflowClient, str]:
    """Client and experiment id; a SQLite store gets its directory and an explicit artifact root."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return client, experiment.experiment_id
    location = None
    if not uri.startswith(("http://", "https://", "databricks")):
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        location = settings.artifact_root.resolve().as_uri()
    return client, client.create_experiment(settings.experiment, artifact_location=location)


class ChampionUnavailableError(RuntimeError):
    """The alias points at a version whose bundle cannot be downloaded or verified."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(reason)
        self.version = version


def alias_version(settings: TrainSettings) -> str | None:
    """The version `<model>@<alias>` points at, or None when the alias is not set."""
    client, _ = connect(settings)
    try:
        return str(client.get_model_version_by_alias(settings.registered_name, settings.alias).version)
    except MlflowException:
        return None


def champion(client: MlflowClient, name: str, alias: str, workdir: Path) -> tuple[str, LoadedBundle] | None:
    """Download and verify the current champion's bundle; None if the alias is not set.

    A champion that exists but cannot be fetched raises ChampionUnavailableError: the gate
    must know the difference between "no champion" and "a champion it could not look at".
    """
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    try:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}@{alias}", dst_path=str(workdir)
        )
        return str(version.version), load_bundle(Path(path))
    except (MlflowException, BundleError, OSError) as exc:
        log.warning("champion %s@%s (version %s) cannot be evaluated: %s", name, alias, version.version, exc)
        raise ChampionUnavailableError(str(version.version), f"cannot fetch its bundle: {exc}") from exc


def register(client: MlflowClient, name: str, run_id: str, tags: dict[str, str]) -> str:
    """New version of `name` from the run's bundle artifacts, tagged; returns the version."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="D+1 closing-price forecaster bundles")
    version = client.create_model_version(
        name, source=f"runs:/{run_id}/{BUNDLE_ARTIFACT_PATH}", run_id=run_id, tags=tags
    )
    return str(version.version)


@contextmanager
def tracked_run(settings: TrainSettings, params: dict) -> Iterator[tuple[MlflowClient | None, object]]:
    """An MLflow run with Lightning's MLFlowLogger attached; (None, None) with --no-registry.

    An exception inside marks the run FAILED and leaves the registry as it was.
    """
    if not settings.registry:
        yield None, None
        return
    from lightning.pytorch.loggers import MLFlowLogger

    client, experiment_id = connect(settings)
    with mlflow.start_run(experiment_id=experiment_id) as active:
        mlflow.log_params(params)
        logger = MLFlowLogger(
            experiment_name=settings.experiment,
            tracking_uri=settings.tracking_uri,
            run_id=active.info.run_id,
        )
        yield client, logger
