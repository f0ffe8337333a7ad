"""`python -m bundle.fetch <models:/name@alias | models:/name/version> <dest>`: KServe's storage initializer.

KServe runs this as the init container of every predictor pod (the chart's ClusterStorageContainer
for the `models:/` prefix) with the InferenceService's storageUri and /mnt/models. It resolves the
URI against MLflow, downloads that version next to the destination, finds the bundle in it (a logged
model's artifacts, or an old-style version's bundle directory: bundle.io.find_bundle), verifies every
file against the sha256 its metadata records (bundle.io, the same check the predictor makes) and
places only the bundle's files in the destination; the model's code is never run. Any failure exits
non-zero with one line naming the problem, so the pod never starts on a partial, wrong or corrupt
bundle. Torch-free: mlflow's client and bundle/.

A universe shard's URI lists several models, `models:/a@champion,b@champion,c/7` (each item
`<name>@<alias>` or `<name>/<version>`, optionally with its own `models:/`): each lands verified in
`<dest>/<name>/`. A model with no such alias or version, or whose bundle fails its check (a new
ticker whose training failed), is skipped with one `skipped:` line, so one model never keeps the
shard's others from being served; the run fails only when nothing was fetched, or when MLflow is
unavailable (a restart of the init container retries: a transient error must not drop a model).

Every wait is bounded: a version that is no registry version (not 1 to 2^63 - 1) exits 6 at once,
before MLflow is asked (its server answers 500 to one beyond int64, which its client retried for
minutes); each MLflow request waits at most FORECASTER_FETCH_MLFLOW_TIMEOUT_S (30) to connect or for
the next bytes, with FORECASTER_FETCH_MLFLOW_RETRIES (3) retries 0, 2, 4 s apart. The file names a
bundle gives are plain names inside its folder (bundle.io.inside), so nothing is read from, verified
at, or moved from anywhere else, and nothing is written outside dest. No line printed or logged
carries a credential of the tracking URI (bundle.redact).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, NonNegativeInt, PositiveInt
from pydantic_settings import BaseSettings

from bundle import redact
from bundle.conventions import settings_config
from bundle.io import BundleError, LoadedBundle, find_bundle, load_bundle
from bundle.schema import METADATA_FILE
from bundle.source import bound_mlflow_requests, check_version

EXIT_USAGE = 2  # bad arguments or URI: fix the InferenceService
EXIT_NOT_FOUND = 3  # no such model, alias or version in the registry
EXIT_INVALID = 4  # the bundle is incomplete, of an unknown format, or fails its sha256
EXIT_UNAVAILABLE = 5  # MLflow or its artifact store did not answer (within the bounds set below)
EXIT_BAD_VERSION = 6  # the URI's version is no registry version (not a positive int64): fix the URI

# MLflow registered-model names are free text; these URIs are what the chart and training write.
URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>[^/@,]+))$"
)


class FetchSettings(BaseSettings):
    """Environment only (FORECASTER_FETCH_*): KServe passes nothing but the URI and destination."""

    model_config = settings_config("bundle.fetch", "FETCH")

    tracking_uri: str | None = Field(None, description="MLflow tracking server (http://...)")
    mlflow_timeout_s: PositiveInt = Field(
        30, description="seconds MLflow's client waits to connect or for the next bytes (per request)"
    )
    mlflow_retries: NonNegativeInt = Field(
        3,
        description="retries of one failed MLflow request, 0, 2, 4 s apart (MLflow's own 7 take minutes); "
        "then exit 5 and Kubernetes restarts the init container with its own backoff",
    )


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
        if match["version"] is not None:
            try:
                check_version(match["version"])
            except ValueError as exc:  # MLflow's server answers 500 to it, which its client retries
                raise FetchError(EXIT_BAD_VERSION, f"bad model URI {text!r}: {exc}") from None
        return cls(match["name"], match["alias"], match["version"])

    def __str__(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"


def parse_sources(source: str) -> list[ModelUri]:
    """One URI, or a shard's list `models:/a@alias,b/version,...` (items without their own prefix)."""
    items = source.split(",")
    if len(items) == 1:
        return [ModelUri.parse(source)]
    if not items[0].startswith("models:/"):
        raise FetchError(EXIT_USAGE, f"bad model URI {source!r}: a list starts with models:/")
    uris = [ModelUri.parse(i if i.startswith("models:/") else f"models:/{i}") for i in items]
    names = [u.name for u in uris]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise FetchError(EXIT_USAGE, f"bad model URI {source!r}: {', '.join(twice)} listed twice")
    return uris


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


def _place(verified: LoadedBundle, dest: Path) -> None:
    """Move a verified bundle's files, and only those (metadata.json and each file it names, which
    load_bundle resolved inside the bundle's folder), into dest (same filesystem: renames),
    replacing namesakes."""
    variants = verified.metadata.variants
    moves = {METADATA_FILE: verified.path / METADATA_FILE}
    moves |= {entry.file: verified.model_path(variant) for variant, entry in variants.items()}
    for name, source in moves.items():
        target = dest / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        source.rename(target)


def _download_verified(client, uri: ModelUri, into: Path, tracking_uri: str) -> tuple[str, LoadedBundle]:
    """Resolve and download one model into `into`, every file checked against its sha256."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    version = resolve(client, uri)
    try:
        artifact_uri = client.get_model_version_download_uri(uri.name, version)
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=str(into), tracking_uri=tracking_uri
        )
    except (MlflowException, OSError) as exc:
        what = f"version {version} of {uri.name!r}"
        raise FetchError(EXIT_UNAVAILABLE, f"cannot download {what}: {exc}") from exc
    try:
        # A logged model (MLmodel + artifacts) or an old-style version (the bundle directory itself):
        # only the bundle's files go on, every one checked against its sha256 before dest is touched.
        verified = load_bundle(find_bundle(Path(path)))
    except BundleError as exc:
        raise FetchError(EXIT_INVALID, f"version {version} of {uri.name!r} is refused: {exc}") from exc
    return version, verified


class _Staging:
    """A scratch directory inside dest (the one writable volume of a read-only init container),
    where mlflow's own temporary files go too; removed on exit."""

    def __init__(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for stale in dest.glob(".fetch-*"):  # left by a killed run of this init container
            shutil.rmtree(stale, ignore_errors=True)
        self.path = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest))

    def __enter__(self) -> Path:
        tempfile.tempdir = str(self.path)
        os.environ["HOME"] = str(self.path)
        return self.path

    def __exit__(self, *_exc) -> None:
        tempfile.tempdir = None
        shutil.rmtree(self.path, ignore_errors=True)


def _require(tracking_uri: str | None) -> str:
    if not tracking_uri:
        raise FetchError(EXIT_USAGE, "no tracking URI: set FORECASTER_FETCH_TRACKING_URI")
    return tracking_uri


def fetch(source: str, dest: Path, tracking_uri: str | None) -> tuple[str, LoadedBundle]:
    """Resolve, download, verify, then place into dest; returns (version, the bundle in dest)."""
    uri = ModelUri.parse(source)
    tracking_uri = _require(tracking_uri)
    with _Staging(dest) as staging:
        version, verified = _download_verified(_client(tracking_uri), uri, staging / "download", tracking_uri)
        _place(verified, dest)
    return version, load_bundle(dest)


# A model that cannot be served as asked is skipped; an unavailable MLflow fails the whole run.
SKIPPABLE = (EXIT_NOT_FOUND, EXIT_INVALID)


def fetch_many(
    uris: list[ModelUri], dest: Path, tracking_uri: str | None
) -> tuple[dict[ModelUri, tuple[str, LoadedBundle]], dict[ModelUri, FetchError]]:
    """Each model verified into dest/<name>/; returns (fetched, skipped). Raises when MLflow is
    unavailable, or when every model was skipped (with the first model's reason)."""
    tracking_uri = _require(tracking_uri)
    fetched: dict[ModelUri, tuple[str, LoadedBundle]] = {}
    skipped: dict[ModelUri, FetchError] = {}
    with _Staging(dest) as staging:
        client = _client(tracking_uri)
        for index, uri in enumerate(uris):
            try:
                version, verified = _download_verified(client, uri, staging / str(index), tracking_uri)
            except FetchError as exc:
                if exc.code not in SKIPPABLE:
                    raise
                skipped[uri] = exc
                continue
            target = dest / uri.name
            target.mkdir(exist_ok=True)
            _place(verified, target)
            fetched[uri] = (version, load_bundle(target))
    if not fetched:
        first = skipped[uris[0]]
        raise FetchError(first.code, f"none of the {len(uris)} models could be fetched; {uris[0]}: {first}")
    return fetched, skipped


def _report(source: str, version: str, bundle: LoadedBundle, dest: Path) -> None:
    meta = bundle.metadata
    print(
        f"fetched {source} = version {version} ({meta.model_name}, {meta.ticker}, trained "
        f"{meta.trained_at:%Y-%m-%d %H:%M}) into {dest}; sha256 verified: "
        + ", ".join(sorted(v.file for v in meta.variants.values())),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        usage = (
            "usage: python -m bundle.fetch "
            "<models:/name@alias|models:/name/version|models:/a@alias,b/version,...> <dest>"
        )
        print(usage, file=sys.stderr)
        return EXIT_USAGE
    source, dest = args
    redact.install()  # a tracking URI's password never reaches a log line...
    settings = FetchSettings()
    bound_mlflow_requests(settings.mlflow_timeout_s, settings.mlflow_retries)
    tracking_uri = settings.tracking_uri
    try:
        uris = parse_sources(source)
        if len(uris) == 1:
            version, bundle = fetch(source, Path(dest), tracking_uri)
            _report(source, version, bundle, Path(dest))
            return 0
        fetched, skipped = fetch_many(uris, Path(dest), tracking_uri)
    except FetchError as exc:
        print(f"error: {redact.redact(str(exc))}", file=sys.stderr)  # ...nor an error line
        return exc.code
    for uri, (version, bundle) in fetched.items():
        _report(str(uri), version, bundle, Path(dest) / uri.name)
    for uri, exc in skipped.items():
        reason = redact.redact(str(exc))
        print(f"skipped: {uri}: {reason}; the other models are served without it", file=sys.stderr)
    print(f"{len(fetched)} of {len(uris)} models fetched into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
