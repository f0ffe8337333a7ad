"""`python -m bundle.fetch <models:/name@alias | models:/name/version> <dest>`: KServe's storage initializer.

KServe runs this as the init container of every predictor pod (the chart's ClusterStorageContainer
for the `models:/` prefix) with the InferenceService's storageUri and /mnt/models. It resolves the
URI against MLflow, downloads that version's bundle next to the destination and verifies every file
against the sha256 its metadata records (bundle.io, the same check the predictor makes) before
anything lands in the destination. Any failure exits non-zero with one line naming the problem, so
the pod never starts on a partial, wrong or corrupt bundle. Torch-free: mlflow's client and bundle/.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from bundle.conventions import settings_config
from bundle.io import BundleError, LoadedBundle, load_bundle

EXIT_USAGE = 2  # bad arguments or URI: fix the InferenceService
EXIT_NOT_FOUND = 3  # no such model, alias or version in the registry
EXIT_INVALID = 4  # the bundle is incomplete, of an unknown format, or fails its sha256
EXIT_UNAVAILABLE = 5  # MLflow or its artifact store did not answer

# MLflow registered-model names are free text; these URIs are what the chart and training write.
URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>[1-9][0-9]*))$"
)


class FetchSettings(BaseSettings):
    """Environment only (FORECASTER_FETCH_*): KServe passes nothing but the URI and destination."""

    model_config = settings_config("bundle.fetch", "FETCH")

    tracking_uri: str | None = Field(None, description="MLflow tracking server (http://...)")


class FetchError(RuntimeError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ModelUri:
    name: str
    alias: str | None
    version: str | None

    @classmethod
    def parse(cls, text: str) -> ModelUri:
        match = URI.match(text)
        if not match:
            raise FetchError(
                EXIT_USAGE,
                f"bad model URI {text!r}: expected models:/<name>@<alias> or models:/<name>/<version>",
            )
        return cls(match["name"], match["alias"], match["version"])


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def resolve(client, uri: ModelUri) -> str:
    """The registry version the URI points at now."""
    from mlflow.exceptions import MlflowException

    try:
        if uri.alias:
            return str(client.get_model_version_by_alias(uri.name, uri.alias).version)
        return str(client.get_model_version(uri.name, uri.version).version)
    except MlflowException as exc:
        what = f"alias {uri.alias!r}" if uri.alias else f"version {uri.version}"
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise FetchError(EXIT_NOT_FOUND, f"model {uri.name!r} has no {what} in the registry") from exc
        raise FetchError(EXIT_UNAVAILABLE, f"cannot resolve {what} of {uri.name!r}: {exc}") from exc


def _place(verified: Path, dest: Path) -> None:
    """Move a verified bundle's files into dest (same filesystem: renames), replacing namesakes."""
    for entry in verified.iterdir():
        target = dest / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entry.rename(target)


def fetch(source: str, dest: Path, tracking_uri: str | None) -> tuple[str, LoadedBundle]:
    """Resolve, download, verify, then place into dest; returns (version, the bundle in dest)."""
    uri = ModelUri.parse(source)
    if not tracking_uri:
        raise FetchError(EXIT_USAGE, "no tracking URI: set FORECASTER_FETCH_TRACKING_URI")
    dest.mkdir(parents=True, exist_ok=True)
    # Staged inside dest (the one writable volume of a read-only init container); mlflow's own
    # temporary files go there too.
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest))
    tempfile.tempdir = str(staging)
    os.environ["HOME"] = str(staging)
    try:
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        client = _client(tracking_uri)
        version = resolve(client, uri)
        try:
            artifact_uri = client.get_model_version_download_uri(uri.name, version)
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(staging / "download"), tracking_uri=tracking_uri
            )
        except (MlflowException, OSError) as exc:
            raise FetchError(
                EXIT_UNAVAILABLE, f"cannot download version {version} of {uri.name!r}: {exc}"
            ) from exc
        try:
            load_bundle(Path(path))  # every file against its sha256, before dest is touched
        except BundleError as exc:
            raise FetchError(EXIT_INVALID, f"version {version} of {uri.name!r} is refused: {exc}") from exc
        _place(Path(path), dest)
    finally:
        tempfile.tempdir = None
        shutil.rmtree(staging, ignore_errors=True)
    return version, load_bundle(dest)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        usage = "usage: python -m bundle.fetch <models:/name@alias|models:/name/version> <dest>"
        print(usage, file=sys.stderr)
        return EXIT_USAGE
    source, dest = args
    try:
        version, bundle = fetch(source, Path(dest), FetchSettings().tracking_uri)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    meta = bundle.metadata
    print(
        f"fetched {source} = version {version} ({meta.model_name}, {meta.ticker}, trained "
        f"{meta.trained_at:%Y-%m-%d %H:%M}) into {dest}; sha256 verified: "
        + ", ".join(sorted(v.file for v in meta.variants.values()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
