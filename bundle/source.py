"""Where the bundle comes from: a directory, or an MLflow alias/version over http."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bundle.io import LoadedBundle, find_bundle, load_bundle, read_metadata


@dataclass(frozen=True)
class ModelRef:
    """A resolved source: a stable version label and how to fetch it."""

    version: str
    location: str  # directory path, or models:/name/version


#: MLflow's registry numbers versions 1, 2, ...; its stores keep them as 64-bit integers.
MAX_VERSION = 2**63 - 1


def bound_mlflow_requests(timeout_s: int, retries: int) -> None:
    """Bound every MLflow HTTP call of this process: `timeout_s` to connect or for the next bytes,
    `retries` more attempts 0, 2, 4, ... s apart (+ up to 1 s of jitter). MLflow's client reads these
    from MLFLOW_HTTP_REQUEST_* only (no per-client argument), 120 s and 7 doubling retries by
    default: minutes per call to an unreachable registry. So a serving process's entry point (the
    predictor, the storage initializer) sets them from its own settings for itself (its workers
    inherit them); a library import never does, and nothing else reads them."""
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "1.0"


def is_mlflow(source: str) -> bool:
    return source.startswith("models:/")


def check_version(version: str) -> str:
    """A registry version as MLflow numbers them: digits without a leading zero, 1 to 2^63 - 1.
    Anything else is refused at once (ValueError naming the rule): MLflow's server answers a 500 to
    an out-of-range version, which its client retries for minutes."""
    digits = version.isascii() and version.isdigit() and version[0] != "0" and len(version) <= 19
    if not (digits and int(version) <= MAX_VERSION):
        raise ValueError(
            f"version {version!r} is not a registry version: MLflow versions are whole numbers "
            f"from 1 to {MAX_VERSION} (2^63 - 1), written without sign or leading zeros"
        )
    return version


class BundleSource:
    """Resolve what the source points at now, and fetch and verify that bundle."""

    def __init__(self, source: str, tracking_uri: str | None, cache_dir: str | None) -> None:
        self.source = source
        self.tracking_uri = tracking_uri
        self.cache = Path(cache_dir or tempfile.gettempdir()) / "forecaster-bundles"

    def _client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def resolve(self) -> ModelRef:
        if not is_mlflow(self.source):
            path = Path(self.source)
            meta = read_metadata(path)  # the version label; fetch() verifies every file
            return ModelRef(version=f"{meta.model_name}:{meta.trained_at:%Y%m%dT%H%M%S}", location=str(path))
        name, _, ref = self.source.removeprefix("models:/").partition("@")
        client = self._client()
        if ref:  # alias
            version = str(client.get_model_version_by_alias(name, ref).version)
        else:
            name, _, version = name.partition("/")
        return ModelRef(version=version, location=f"models:/{name}/{version}")

    def fetch(self, ref: ModelRef) -> LoadedBundle:
        if not is_mlflow(ref.location):
            return load_bundle(Path(ref.location))
        import mlflow.artifacts

        name = ref.location.removeprefix("models:/").split("/")[0]
        target = self.cache / name / ref.version
        if not target.is_dir():
            self.cache.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".download-", dir=self.cache))
            try:
                # Explicit URIs all the way: no MLflow globals or MLFLOW_* variables decide the source.
                source = self._client().get_model_version_download_uri(name, ref.version)
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=str(staging), tracking_uri=self.tracking_uri
                )
                # A logged model or an old-style version: only its bundle directory is kept.
                found = find_bundle(Path(path))
                load_bundle(found)  # never cache an unverified download
                target.parent.mkdir(parents=True, exist_ok=True)
                found.rename(target)
            except OSError:
                if not target.is_dir():  # else another worker won the race with the same bytes
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return load_bundle(target)
