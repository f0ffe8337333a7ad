"""Which models this predictor serves, and under which names, from its settings.

One source (`--model-source`) is one model named `--model_name`, as always; a directory whose
immediate subdirectories hold bundles (KServe's storage initializer lays a shard out as
`/mnt/models/<model-name>/`) is one model per subdirectory; `--model-sources` lists sources, each
named after its registered model (or directory). Names are decided here, once, before kserve sees
any model, so a typo or a clash stops the process at start instead of hiding a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bundle.schema import METADATA_FILE
from bundle.source import is_mlflow
from predictor.settings import PredictorSettings

# A name travels in URL paths (/v2/models/<name>/infer) and Prometheus labels: keep it plain.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SourceListError(ValueError):
    """The configured sources cannot be served as given (named in the message)."""


@dataclass(frozen=True)
class ModelSource:
    name: str
    source: str


def name_of(source: str) -> str:
    """The served name of one listed source: the registered model's name, or the directory's."""
    if is_mlflow(source):
        rest = source.removeprefix("models:/")
        name, at, alias = rest.partition("@")
        if not at:
            name, slash, version = rest.partition("/")
            if not (slash and version.isdigit()):
                shapes = "an alias (models:/<name>@<alias>) or a version (models:/<name>/<n>)"
                raise SourceListError(f"{source!r}: a models:/ source names {shapes}")
        elif not alias:
            raise SourceListError(f"{source!r}: empty alias after '@'")
        return name
    return Path(source.rstrip("/")).name


def shard_members(directory: Path) -> list[Path]:
    """The bundles of a shard directory (no metadata.json of its own, bundles one level down);
    empty for a bundle directory, a missing one or one with no bundle below. Once a directory is a
    shard, every visible subdirectory is a model: one whose bundle is broken is reported, not hidden."""
    if not directory.is_dir() or (directory / METADATA_FILE).exists():
        return []
    subdirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not any((p / METADATA_FILE).is_file() for p in subdirs):
        return []
    return subdirs


def listed(value: str) -> list[str]:
    """`--model-sources`: comma-separated, blanks ignored."""
    return [s.strip() for s in value.split(",") if s.strip()]


def model_sources(settings: PredictorSettings, model_name: str) -> list[ModelSource]:
    """Every model to serve, in order, each with its unique name."""
    if settings.model_sources is not None:
        if "model_source" in settings.model_fields_set:
            raise SourceListError("give --model-source or --model-sources, not both")
        sources = listed(settings.model_sources)
        if not sources:
            raise SourceListError("--model-sources lists no source")
        found = [ModelSource(name_of(s), s) for s in sources]
    elif not is_mlflow(settings.model_source) and (members := shard_members(Path(settings.model_source))):
        found = [ModelSource(p.name, str(p)) for p in members]
    else:
        return [ModelSource(model_name, settings.model_source)]  # one model: exactly as before
    return checked(found)


def checked(found: list[ModelSource]) -> list[ModelSource]:
    seen: dict[str, str] = {}
    for item in found:
        if not NAME.match(item.name):
            rule = "letters, digits, '.', '_' and '-', starting with a letter or digit"
            raise SourceListError(f"{item.source!r} gives the model name {item.name!r}: names are {rule}")
        if item.name in seen:
            raise SourceListError(f"{seen[item.name]!r} and {item.source!r} are both named {item.name!r}")
        seen[item.name] = item.source
    return found
