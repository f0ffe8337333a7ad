"""Write, find and read bundle directories; every file is checked against its recorded sha256."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from bundle.schema import METADATA_FILE, SUPPORTED_FORMATS, BundleMetadata, Variant, check_file_name

#: A logged model (MLflow 3 LoggedModel, pyfunc flavor) names its bundle files as pyfunc artifacts:
#: `metadata.json` under this name, each ONNX variant under its variant's name ("fp32", "int8").
METADATA_ARTIFACT = "metadata"
#: The pyfunc's one inference param: which ONNX variant answers (default fp32, as the predictor).
VARIANT_PARAM = "variant"
MLMODEL_FILE = "MLmodel"


class BundleError(RuntimeError):
    """A bundle is missing, incomplete, corrupt or of an unknown format."""


class BundleMissingError(BundleError):
    """No bundle there (yet): no metadata.json (KServe's storage initializer may still be writing)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _contained(directory: Path, name: str) -> Path:
    """`directory/name` resolved (symlinks followed), refused unless it stays inside the folder. The
    folder itself may be a link (a Kubernetes volume), and so may a file that points within it."""
    root = Path(directory).resolve()
    path = (root / name).resolve()
    if path == root or not path.is_relative_to(root):
        raise BundleError(f"bundle {directory}: {name} resolves outside the bundle's folder (to {path})")
    return path


def _named(directory: Path, name: str) -> str:
    try:
        return check_file_name(name)
    except ValueError as exc:
        raise BundleError(f"bundle {directory}: {exc}") from None


def inside(directory: Path, name: str) -> Path:
    """The path of a file the bundle names: a plain file name (bundle.schema.check_file_name) that
    resolves inside the bundle's folder. Every reader and the writer go through it."""
    return _contained(directory, _named(directory, name))


def metadata_sha256(directory: Path) -> str:
    """sha256 of a bundle's `metadata.json`: it records every ONNX file's sha256 and the training
    time, so it names one bundle whatever registry version or directory it is served from."""
    return sha256_bytes(_contained(directory, METADATA_FILE).read_bytes())


@dataclass(frozen=True)
class LoadedBundle:
    path: Path
    metadata: BundleMetadata

    def model_path(self, variant: Variant) -> Path:
        if variant not in self.metadata.variants:
            have = ", ".join(sorted(self.metadata.variants))
            raise BundleError(f"bundle {self.path} has no {variant!r} variant (has: {have})")
        return inside(self.path, self.metadata.variants[variant].file)  # checked again when opened


def write_bundle(directory: Path, metadata: BundleMetadata, files: dict[str, bytes]) -> LoadedBundle:
    """Write model files and `metadata.json`; refuse files that do not match the metadata, and any
    name that is not a plain file name in `directory` (nothing is written then)."""
    directory = Path(directory)
    for variant, entry in metadata.variants.items():
        data = files.get(entry.file)
        if data is None or sha256_bytes(data) != entry.sha256:
            raise BundleError(f"{variant} file {entry.file} is missing or does not match its sha256")
    for name in files:
        _named(directory, name)  # before anything is created
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: inside(directory, name) for name in files}  # a link leaving the folder: refused
    meta_path = _contained(directory, METADATA_FILE)
    for name, data in files.items():
        paths[name].write_bytes(data)
    # pragma: no mutate start (equivalent: the JSON's indentation; readers parse it, no checksum covers it)
    meta_path.write_text(metadata.model_dump_json(indent=2) + "\n")
    # pragma: no mutate end
    return load_bundle(directory)


def read_metadata(directory: Path) -> BundleMetadata:
    """Parse `metadata.json` only (no file hashing). Raises BundleError naming what is wrong."""
    meta_path = Path(directory) / METADATA_FILE
    if not meta_path.is_file():
        raise BundleMissingError(f"no {METADATA_FILE} in {directory}")
    meta_path = _contained(directory, METADATA_FILE)
    try:
        raw = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"invalid {meta_path}: {exc}") from exc
    version = raw.get("format_version", 1) if isinstance(raw, dict) else None
    if version not in SUPPORTED_FORMATS:
        raise BundleError(
            f"invalid {meta_path}: bundle format version {version!r} is not supported "
            f"(this build reads {', '.join(map(str, SUPPORTED_FORMATS))})"
        )
    try:
        return BundleMetadata.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"invalid {meta_path}: {_one_line(exc)}") from exc


def _one_line(exc: ValidationError) -> str:
    """Pydantic's errors as one line: `place: message; ...` (its own text spans several lines)."""
    return "; ".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in exc.errors())


def load_bundle(directory: Path) -> LoadedBundle:
    """Parse and verify a bundle. Raises BundleError naming what is wrong."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    for variant, entry in metadata.variants.items():
        path = inside(directory, entry.file)  # the schema refused other names; a link may still leave
        if not path.is_file():
            raise BundleError(f"{variant} model file {path} is missing")
        if sha256_bytes(path.read_bytes()) != entry.sha256:
            raise BundleError(f"{variant} model file {path} does not match its sha256 (corrupt)")
    return LoadedBundle(path=directory, metadata=metadata)


def find_bundle(download: Path) -> Path:
    """The bundle directory inside a download of a registered version, whatever its layout.

    A version registered from a logged model (`models:/<model_id>`) downloads as an MLflow model:
    `MLmodel`, the pyfunc's code and environment, and the bundle files as its artifacts, wherever
    `MLmodel` says they are. A version registered the old way (`runs:/<run>/bundle`) downloads as
    the bundle directory itself. Nothing here imports or runs the model's code: the caller reads
    the files (load_bundle, sha256 checked). Raises BundleError naming what is missing.
    """
    root = Path(download)
    if (root / METADATA_FILE).is_file():
        return root
    mlmodel = root / MLMODEL_FILE
    if not mlmodel.is_file():
        raise BundleError(f"no bundle in {root}: neither {METADATA_FILE} nor an MLflow {MLMODEL_FILE}")
    import yaml  # pyyaml comes with mlflow(-skinny), which made the download

    try:
        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}
        entry = flavors["python_function"]["artifacts"][METADATA_ARTIFACT]["path"]
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise BundleError(
            f"{mlmodel} names no {METADATA_ARTIFACT!r} pyfunc artifact: not a forecaster bundle model"
        ) from exc
    metadata = (root / str(entry)).resolve()
    if not metadata.is_relative_to(root.resolve()) or metadata.name != METADATA_FILE:
        raise BundleError(f"{mlmodel}: artifact {entry!r} is not a {METADATA_FILE} inside the model")
    if not metadata.is_file():
        raise BundleError(f"{mlmodel}: artifact {entry!r} is missing")
    return metadata.parent
