"""Which models this predictor serves, and under which names, from its settings.

One source (`--model-source`) is one model named `--model_name`, as always; a directory whose
immediate subdirectories hold bundles (KServe's storage initializer lays a shard out as
`/mnt/models/<model-name>/`) is one model per subdirectory; `--model-sources` lists sources, each
named after its registered model (or directory); `--model-tag KEY=VALUE` serves every registered
model carrying that tag, each at `--model-alias`. Names are decided here, once, before kserve sees
any model, so a typo or a clash stops the process at start instead of hiding a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bundle.schema import METADATA_FILE
from bundle.source import check_version, is_mlflow
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
            if not (slash and version):
                shapes = "an alias (models:/<name>@<alias>) or a version (models:/<name>/<n>)"
                raise SourceListError(f"{source!r}: a models:/ source names {shapes}")
            try:
                check_version(version)
            except ValueError as exc:  # refused at start: never retried against the registry
                raise SourceListError(f"{source!r}: {exc}") from None
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
    given = [f for f in ("model_source", "model_sources", "model_tag") if f in settings.model_fields_set]
    if len(given) > 1:
        raise SourceListError("give one of --model-source, --model-sources, --model-tag")
    if settings.model_tag is not None:
        found = [ModelSource(name_of(s), s) for s in tagged(settings)]
    elif settings.model_sources is not None:
        sources = listed(settings.model_sources)
        if not sources:
            raise SourceListError("--model-sources lists no source")
        found = [ModelSource(name_of(s), s) for s in sources]
    elif not is_mlflow(settings.model_source) and (members := shard_members(Path(settings.model_source))):
        found = [ModelSource(p.name, str(p)) for p in members]
    else:
        if is_mlflow(settings.model_source):
            name_of(settings.model_source)  # its shape and version checked at start, as a list's are
        return [ModelSource(model_name, settings.model_source)]  # one model: exactly as before
    return checked(found)


def tagged(settings: PredictorSettings) -> list[str]:
    """`models:/<name>@<alias>` for every registered model carrying `--model-tag KEY=VALUE`, by name.
    Read once: kserve's workers each get the model list at start, so the set is fixed per process."""
    key, eq, value = (settings.model_tag or "").partition("=")
    if not (eq and key):
        raise SourceListError(f"--model-tag takes KEY=VALUE, got {settings.model_tag!r}")
    if not settings.tracking_uri:
        raise SourceListError("--model-tag needs --tracking-uri (the MLflow registry to ask)")
    if "'" in value or "`" in key:
        raise SourceListError(f"--model-tag {settings.model_tag!r}: quotes are not allowed")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    names, token = [], None
    try:
        while True:
            page = client.search_registered_models(
                filter_string=f"tags.`{key}` = '{value}'", max_results=200, page_token=token
            )
            names += [m.name for m in page]
            token = page.token
            if not token:
                break
    except Exception as exc:  # registry down or refusing: the pod restarts (Kubernetes retries)
        raise SourceListError(f"cannot list models tagged {key}={value}: {exc}") from exc
    if not names:
        raise SourceListError(f"no registered model carries the tag {key}={value}")
    return [f"models:/{name}@{settings.model_alias}" for name in sorted(names)]


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
