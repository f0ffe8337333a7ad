"""The champion history: every move of a model's serving alias, kept in MLflow where its users look.

One MLflow run per move in the tracking experiment `champion-history` (EXPERIMENT), named like
`petr4-sa-forecaster: v3 -> v4 promoted`, its start time the moment of the move, every field a tag
(`model`, `alias`, `from_version`, `to_version`, `decision`, `reason`, `candidate_version`,
`training_run_id`, `job`, `host`, `command`, `operator`), the reason as the run's description and the
writer as its user: the MLflow UI lists, sorts and filters it like any run, and
`search_runs(filter_string="tags.model = '<name>'")` reads it. The registered model's tag
`champion.last_move` names the latest move and where the rest is.

Why runs, not tags on the registered model: a run is a row written by one request (the record is
whole or absent), nothing rewrites an older one (append-only in practice: no read-modify-write of a
growing tag that two concurrent trainings could race), and the UI already searches them. Bounded:
after each write the moves of that model beyond `keep` (KEEP) are deleted, oldest first (MLflow's
soft delete; `mlflow gc` purges them).

Writers only: the training Job (the gate's decision, moved or not) and `python -m rollout
promote|rollback`, both through MLflow's write port; nothing on the serving side writes. A move is
recorded after it happened, never before, and a failure to record never undoes or blocks it
(`record_or_warn`). Torch-free: training (torch image) and rollout (serving image, mlflow-skinny over
HTTP) import this one module.
"""

from __future__ import annotations

import getpass
import logging
import socket
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime

from pydantic import Field
from pydantic_settings import BaseSettings

from bundle.conventions import settings_config
from bundle.fetch import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE

log = logging.getLogger(__name__)
EXPERIMENT = "champion-history"
KEEP = 1000  # moves kept per model (the oldest beyond are deleted)
MODEL_TAG = "champion.last_move"  # on the registered model: the latest move, and where the rest is
UNKNOWN = "unknown"  # the alias could not be read before a move (the move still happens)
_MAX_TAG = 8000  # MLflow's limit on a run tag's value
_NONE = "none"  # a version that does not exist (no champion yet), as stored and shown


class HistoryError(RuntimeError):
    """The history cannot be read: `code` is rollout's exit code (3 no such model, 5 unreachable)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Workload(BaseSettings):
    """Where a writer runs (environment only): in a cluster the chart sets both from the Downward API."""

    model_config = settings_config("rollout", "WORKLOAD", extra="ignore")

    job: str | None = Field(None, description="the Kubernetes Job this process runs in (its job-name label)")
    host: str | None = Field(
        None, description="the pod's name (Downward API metadata.name); default: the host name (a pod's name)"
    )

    def who(self) -> dict[str, str | None]:
        return {"job": self.job or None, "host": self.host or socket.gethostname() or None}


def operator(explicit: str | None = None) -> str | None:
    """Who runs a rollout command: `explicit`, else MLflow's own identity (basic auth's
    MLFLOW_TRACKING_USERNAME), else the login name; None if none is known."""
    from mlflow.environment_variables import MLFLOW_TRACKING_USERNAME

    if explicit or MLFLOW_TRACKING_USERNAME.get():
        return explicit or MLFLOW_TRACKING_USERNAME.get()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry
        return None


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Move:
    """One decision about the alias: `from_version` -> `to_version` (equal when it did not move;
    None: no champion), and the version decided on (`candidate`). `decision`: the gate's outcome
    (`promoted`, `rejected`, `champion_unevaluable`: training/gate.py) or the rollout command
    (`promote`, `rollback`)."""

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    decision: str
    reason: str
    candidate: str | None = None
    training_run_id: str | None = None
    job: str | None = None
    host: str | None = None  # the pod's name in a cluster
    command: str | None = None
    operator: str | None = None
    at: datetime = field(default_factory=_now)
    record_id: str | None = None  # the history run's id, once recorded

    @property
    def moved(self) -> bool:
        return self.from_version != self.to_version

    @property
    def title(self) -> str:
        """`v3 -> v4 promoted`, `none -> v1 promoted`, `v4 -> v4 rejected v5`."""
        text = f"{_v(self.from_version)} -> {_v(self.to_version)} {self.decision}"
        refused = not self.moved and self.candidate not in (None, self.to_version)
        return f"{text} {_v(self.candidate)}" if refused else text

    @property
    def who(self) -> str:
        parts = [f"run {self.training_run_id}" if self.training_run_id else "", self.operator or "",
                 f"job {self.job}" if self.job else "", f"on {self.host}" if self.host else ""]  # fmt: skip
        return ", ".join(p for p in parts if p) or "unknown"

    def tags(self) -> dict[str, str]:
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE, MLFLOW_SOURCE_NAME, MLFLOW_USER

        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("at", "record_id")}
        values["candidate_version"] = values.pop("candidate")
        tags = {k: _NONE if v is None else str(v)[:_MAX_TAG] for k, v in values.items()}
        tags |= {"moved": str(self.moved).lower(), MLFLOW_RUN_NOTE: self.reason[:_MAX_TAG]}
        tags[MLFLOW_USER] = self.operator or self.job or self.host or "unknown"
        tags[MLFLOW_SOURCE_NAME] = self.command or "python -m training"
        return tags

    @classmethod
    def from_run(cls, run) -> Move:
        tags = run.data.tags

        def get(key: str) -> str | None:
            value = tags.get(key)
            return None if value in (None, _NONE) else value

        return cls(
            model=tags["model"], alias=tags["alias"], from_version=get("from_version"),
            to_version=get("to_version"), decision=tags["decision"], reason=tags.get("reason", ""),
            candidate=get("candidate_version"), training_run_id=get("training_run_id"), job=get("job"),
            host=get("host"), command=get("command"), operator=get("operator"),
            at=datetime.fromtimestamp(run.info.start_time / 1000, UTC), record_id=run.info.run_id,
        )  # fmt: skip

    def as_json(self) -> dict:
        out = asdict(self)
        out["at"] = self.at.isoformat().replace("+00:00", "Z")
        out["moved"] = self.moved
        return out


def _v(version: str | None) -> str:
    return _NONE if version is None else version if version == UNKNOWN else f"v{version}"


def current(client, model: str, alias: str) -> str | None:
    """The version `model@alias` points at now, None when the alias (or the model) does not exist,
    UNKNOWN when MLflow did not answer: recording must never stop the move it comes with."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except Exception as exc:  # MLflow's errors, or anything under them: never in the move's way
        missing = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")
        if isinstance(exc, MlflowException) and exc.error_code in missing:
            return None
        log.warning("cannot read %s@%s before moving it: %s", model, alias, exc)
        return UNKNOWN


def _experiment_id(client, create: bool) -> str | None:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None and create:
        note = "Every move of the serving alias of every model (python -m rollout history --model M)."
        try:
            return client.create_experiment(EXPERIMENT, tags={"mlflow.note.content": note})
        except MlflowException as exc:  # another writer created it meanwhile
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(EXPERIMENT)
    return None if experiment is None else experiment.experiment_id


def _filter(model: str, alias: str | None = None) -> str:
    if "'" in model or (alias and "'" in alias):
        raise HistoryError(EXIT_USAGE, f"model or alias name with a quote: {model!r} {alias!r}")
    return f"tags.model = '{model}'" + (f" AND tags.alias = '{alias}'" if alias else "")


def record(client, move: Move, keep: int = KEEP) -> str:
    """Write `move` (after it happened) as one run; returns its id. Then, best effort, point the
    registered model's tag at it and delete the model's moves beyond `keep`. Raises on failure to
    write the record itself."""
    from mlflow.entities import RunStatus

    experiment = _experiment_id(client, create=True)
    started = int(move.at.timestamp() * 1000)
    run = client.create_run(experiment, start_time=started, tags=move.tags(),
                            run_name=f"{move.model}: {move.title}")  # fmt: skip
    run_id = run.info.run_id
    try:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=started)
        when = move.at.strftime("%Y-%m-%d %H:%M:%S UTC")
        client.set_registered_model_tag(
            move.model, MODEL_TAG, f"{when}: {move.title} (run {run_id} of experiment '{EXPERIMENT}'; "
            f"every move: python -m rollout history --model {move.model})",
        )  # fmt: skip
        _prune(client, experiment, move.model, keep)
    except Exception as exc:  # the record is written; the rest is bookkeeping
        log.warning("champion history of %s: move recorded (run %s), bookkeeping failed: %s",
                    move.model, run_id, exc)  # fmt: skip
    return run_id


def _prune(client, experiment: str, model: str, keep: int) -> None:
    """Delete the model's moves beyond the newest `keep` (listed first, then deleted: deleting while
    paging would shift the pages)."""
    beyond: list[str] = []
    page = client.search_runs([experiment], _filter(model), max_results=keep,
                              order_by=["attributes.start_time DESC"])  # fmt: skip
    while page.token:
        page = client.search_runs([experiment], _filter(model), max_results=keep,
                                  order_by=["attributes.start_time DESC"], page_token=page.token)  # fmt: skip
        beyond += [run.info.run_id for run in page]
    for run_id in beyond:
        client.delete_run(run_id)
    if beyond:
        log.info("champion history of %s: deleted %d moves beyond the newest %d", model, len(beyond), keep)


def record_or_warn(client, move: Move, keep: int = KEEP) -> bool:
    """`record`, but a failure is logged loudly and returned, never raised: the move it describes
    has already happened and stands."""
    try:
        run_id = record(client, move, keep)
    except Exception as exc:  # any failure of the write: MLflow down, deleted experiment, a bug
        log.error(
            "NOT RECORDED in the champion history: %s %s (%s) happened and stands, but writing it to "
            "MLflow's experiment '%s' failed: %s: %s", move.model, move.title, move.who, EXPERIMENT,
            type(exc).__name__, exc,
        )  # fmt: skip
        return False
    log.info("champion history of %s: %s recorded (run %s)", move.model, move.title, run_id)
    return True


def read(client, model: str, alias: str | None = "champion", limit: int | None = None) -> list[Move]:
    """The model's recorded moves of `alias` (every alias: None), newest first."""
    from mlflow.exceptions import MlflowException

    where = _filter(model, alias)
    try:
        client.get_registered_model(model)
        experiment = _experiment_id(client, create=False)
        if experiment is None:
            return []
        moves: list[Move] = []
        token = None
        while limit is None or len(moves) < limit:
            size = 1000 if limit is None else min(1000, limit - len(moves))
            page = client.search_runs([experiment], where, max_results=size,
                                      order_by=["attributes.start_time DESC"], page_token=token)  # fmt: skip
            moves += [Move.from_run(run) for run in page if "decision" in run.data.tags]
            token = page.token
            if not token:
                break
        return moves
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise HistoryError(EXIT_NOT_FOUND, f"no registered model {model!r}") from exc
        raise HistoryError(EXIT_UNAVAILABLE, f"cannot read the champion history of {model!r}: {exc}") from exc
    except OSError as exc:
        raise HistoryError(EXIT_UNAVAILABLE, f"cannot read the champion history of {model!r}: {exc}") from exc
