"""MLflow: experiment, the bundle as a LoggedModel, model versions, tags and the champion alias."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata as pkg
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

import bundle as bundle_package
from bundle import BundleError, LoadedBundle, load_bundle
from bundle.io import METADATA_ARTIFACT, VARIANT_PARAM, find_bundle
from bundle.outputs import INPUT_NAME, outputs
from bundle.schema import METADATA_FILE
from training.settings import TrainSettings

log = logging.getLogger(__name__)
#: Where versions registered before the LoggedModel kept their bundle (`runs:/<run>/bundle`);
#: they still load (bundle.io.find_bundle reads both layouts).
BUNDLE_ARTIFACT_PATH = "bundle"
PACKAGE_DIR = Path(bundle_package.__file__).parent
PYFUNC_MODEL_FILE = PACKAGE_DIR / "pyfunc_model.py"
# What the pyfunc imports (bundle/pyfunc_model.py and the bundle package it ships): pinned to what
# trained it. `mlflow models serve --env-manager local` never installs them.
PYFUNC_PACKAGES = ("mlflow", "numpy", "pandas", "onnxruntime", "pydantic", "pydantic-settings", "pyyaml")


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
        return str(version.version), load_bundle(find_bundle(Path(path)))
    except (MlflowException, BundleError, OSError) as exc:
        log.warning("champion %s@%s (version %s) cannot be evaluated: %s", name, alias, version.version, exc)
        raise ChampionUnavailableError(str(version.version), f"cannot fetch its bundle: {exc}") from exc


def signature(bundle: LoadedBundle) -> mlflow.models.ModelSignature:
    """`closes` `[batch, window]` float64 in; one float64 column per declared output
    (bundle/outputs.py: `forecast`, `lower_80`, `upper_80`, ...) out; the ONNX variant as a param."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    window = bundle.metadata.features.window
    declared = outputs(i.coverage for i in bundle.metadata.intervals)
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float64), (-1, window), INPUT_NAME)]),
        outputs=Schema([ColSpec("double", out.name) for out in declared]),
        params=ParamSchema([ParamSpec(VARIANT_PARAM, "string", "fp32")]),
    )


def _requirements() -> list[str]:
    pins = []
    for name in PYFUNC_PACKAGES:
        try:
            pins.append(f"{name}=={pkg.version(name)}")
        except pkg.PackageNotFoundError:
            continue
    return pins


def pyfunc_arguments(bundle: LoadedBundle, input_example: np.ndarray) -> dict:
    """What makes the bundle an MLflow pyfunc model (for `log_model` and `save_model` alike).

    A model from code (bundle/pyfunc_model.py: no pickle) whose artifacts are the bundle's files,
    `metadata.json` as `metadata` and each ONNX variant under its variant's name, copied byte for
    byte (their sha256 still match the metadata); the torch-free `bundle` package rides along as
    code, so loading it needs no checkout of this repository. `input_example`: one window of closes.
    """
    variants = bundle.metadata.variants
    artifacts = {METADATA_ARTIFACT: str(bundle.path / METADATA_FILE)}
    artifacts |= {variant: str(bundle.path / entry.file) for variant, entry in variants.items()}
    return {
        "python_model": str(PYFUNC_MODEL_FILE),
        "artifacts": artifacts,
        "code_paths": [str(PACKAGE_DIR)],
        "signature": signature(bundle),
        "input_example": np.asarray(input_example, dtype=np.float64).reshape(1, -1),
        "pip_requirements": _requirements(),
    }


def log_bundle_model(bundle: LoadedBundle, name: str, input_example: np.ndarray, params: dict) -> str:
    """Log the bundle to the active run as an MLflow LoggedModel named `name` (the registered
    model's name), with the hyperparameters as its params; returns its model id."""
    info = mlflow.pyfunc.log_model(
        name=name,
        params={k: str(v) for k, v in params.items()},
        tags={"ticker": bundle.metadata.ticker, "bundle.format": str(bundle.metadata.format_version)},
        **pyfunc_arguments(bundle, input_example),
    )
    return info.model_id


def register(client: MlflowClient, name: str, model_id: str, run_id: str, tags: dict[str, str]) -> str:
    """New version of `name` from the logged model `models:/<model_id>`, tagged; returns the version.

    The version's source is `models:/<model_id>` (MLflow's SQL registry keeps the model id there:
    its stored version has no column of its own for it) and the run; the logged model lists its
    versions in its `mlflow.modelVersions` tag, as `mlflow.register_model` and the tracking
    server record it, so the UI links both ways.
    """
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="D+1 closing-price forecaster bundles")
    version = str(
        client.create_model_version(
            name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
        ).version
    )
    listed = json.loads(client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
    if not any(v.get("name") == name and str(v.get("version")) == version for v in listed):
        # a tracking server has already listed it; a direct (SQLite) store has not
        listed.append({"name": name, "version": int(version)})  # as MLflow writes it
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(listed)})
    return version


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
