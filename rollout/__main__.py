"""`python -m rollout pin|rollback|promote|history --help`: pin InferenceService predictors to
registry versions; list the champion history.

    pin      --model M --alias champion [--canary-alias challenger]   (the training Job's last step)
    pin      --model M --canary-alias challenger                      (start or move a canary)
    rollback --model M --version V [--alias champion] [--reason R]    (move the alias back, re-pin)
    promote  --model M --version V [--alias champion] [--reason R]    (the same move, forwards)
    history  --model M [--json] [--prometheus URL]                    (every move of the alias)

Exit codes: 0 pinned or already pinned (or the history printed); 2 bad arguments; 3 no such model
version/alias or InferenceService; 4 the API server refused the patch (RBAC, admission); 5 MLflow,
the API server or Prometheus unreachable, or the InferenceService changed under every try (409),
after retries. A failed pin never touches the registry: a promotion stands, and the log line says
which command converges the InferenceService once the cause is fixed. rollback and promote record
the move in the champion history (rollout/history.py) right after moving the alias; a failure to
record is logged and printed, and neither undoes the move nor changes the exit code.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import httpx
import tenacity
from lightkube import ApiError
from pydantic import ValidationError
from pydantic_settings import CliApp

from bundle.fetch import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE, FetchError, ModelUri, resolve
from retrainer.kube import KubeClient
from rollout import history
from rollout.plan import PlanError, Role, plan, storage_uri
from rollout.settings import HistorySettings, RolloutSettings
from rollout.tenure import Prometheus, Realized, Tenure, tenures

EXIT_REFUSED = 4
COMMANDS = ("pin", "rollback", "promote", "history")  # rollback and promote: move the alias, then pin
log = logging.getLogger("rollout")
T = TypeVar("T")


class RolloutError(RuntimeError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConflictError(RolloutError):
    """409 Conflict: the object changed since it was read (its resourceVersion moved on)."""


def _registry(settings: RolloutSettings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _version(client, name: str, alias: str | None, version: int | None) -> str:
    uri = f"models:/{name}/{version}" if version else f"models:/{name}@{alias}"
    return resolve(client, ModelUri.parse(uri))


def _api(settings: RolloutSettings, what: str, call: Callable[[], T]) -> T:
    """One API call, retried on 5xx and network errors with exponential backoff; 4xx are answers."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts), retry=tenacity.retry_if_exception(_transient),
        wait=tenacity.wait_exponential(multiplier=settings.retry_delay_s), reraise=True,
        before_sleep=lambda state: log.warning(
            "%s: %s; retrying in %.0fs", what, _failure(state.outcome.exception()), state.upcoming_sleep),
    )  # fmt: skip
    try:
        return retrying(call)
    except httpx.HTTPError as exc:
        status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
        if _transient(exc):
            error = f"failed {settings.attempts} times, last: {_failure(exc)}"
            raise RolloutError(EXIT_UNAVAILABLE, f"{what}: {error}") from exc
        if status == 409:  # the object moved on since it was read: pin() reads it again
            raise ConflictError(EXIT_UNAVAILABLE, f"{what}: {_failure(exc)}") from exc
        code, verb = (EXIT_NOT_FOUND, "not found,") if status == 404 else (EXIT_REFUSED, "refused with")
        raise RolloutError(code, f"{what}: {verb} {_failure(exc)}") from exc


def _transient(exc: BaseException) -> bool:
    status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else 0
    return isinstance(exc, httpx.TransportError) or status >= 500


def _failure(exc: BaseException | None) -> str:
    if not isinstance(exc, httpx.HTTPStatusError):
        return f"{type(exc).__name__}: {exc}"
    reason = exc.status.message if isinstance(exc, ApiError) else exc.response.reason_phrase
    return f"{exc.response.status_code} ({reason or exc.response.reason_phrase})"


def pin(settings: RolloutSettings, kube: KubeClient, targets: list[tuple[Role, str]]) -> list[str]:
    """Patch each (role, uri) that the InferenceService does not serve yet; one line per predictor.
    A patch carries the resourceVersion it was planned on: on a 409 it is planned again, freshly read."""
    name = settings.inference_service or settings.model
    where = f"InferenceService {settings.namespace}/{name}"

    def pin_one(role: Role, uri: str) -> str:
        isvc = _api(settings, f"get {where}", lambda: kube.get_inferenceservice(name))
        try:
            patch = plan(isvc, role, uri, settings.traffic_percent)
        except PlanError as exc:
            raise RolloutError(EXIT_USAGE, str(exc)) from exc
        if patch is None:
            return f"{where} {role} predictor already serves {uri}: nothing to roll out"
        after = _api(
            settings,
            f"patch {where} {role} storageUri to {uri}",
            lambda: kube.patch_inferenceservice(name, patch.body, patch.content_type),
        )
        if storage_uri(after, role) != uri:
            raise RolloutError(
                EXIT_REFUSED,
                f"{where} {role} storageUri is {storage_uri(after, role)!r} after the patch, not {uri!r}",
            )
        generation = after.get("metadata", {}).get("generation")
        return (
            f"{where} {role} predictor: {patch.before} -> {uri} (generation {generation}): "
            "KServe rolls out a new revision"
        )

    fresh_read = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts), reraise=True,
        retry=tenacity.retry_if_exception_type(ConflictError),
        before_sleep=lambda state: log.warning("%s; reading it again", state.outcome.exception()),
    )  # fmt: skip
    return [fresh_read(pin_one, role, uri) for role, uri in targets]


def run(command: str, settings: RolloutSettings) -> list[str]:
    moves = command in ("rollback", "promote")
    if moves and not (settings.version and not settings.canary_version and not settings.canary_alias):
        raise RolloutError(
            EXIT_USAGE, f"{command} needs --version V (the version --alias moves to) and no canary flags"
        )
    if settings.alias and settings.version and command == "pin":
        raise RolloutError(EXIT_USAGE, "pin takes --alias or --version for the stable predictor, not both")
    if settings.canary_alias and settings.canary_version:
        raise RolloutError(EXIT_USAGE, "pin takes --canary-alias or --canary-version, not both")
    if not (settings.alias or settings.version or settings.canary_alias or settings.canary_version):
        raise RolloutError(
            EXIT_USAGE, "nothing to pin: give --alias/--version and/or --canary-alias/--canary-version"
        )
    client = _registry(settings)
    name = settings.model
    if moves:
        alias = settings.alias or "champion"
        version = _version(client, name, None, settings.version)  # exists, before the alias moves
        before = history.current(client, name, alias)
        client.set_registered_model_alias(name, alias, version)
        log.info("moved %s@%s to version %s", name, alias, version)
        _record(client, command, settings, alias, before, version)
        settings = settings.model_copy(update={"alias": None})
    targets: list[tuple[Role, str]] = []
    if settings.alias or settings.version:
        targets.append(
            ("stable", f"models:/{name}/{_version(client, name, settings.alias, settings.version)}")
        )
    if settings.canary_alias or settings.canary_version:
        version = _version(client, name, settings.canary_alias, settings.canary_version)
        targets.append(("canary", f"models:/{name}/{version}"))
    return pin(settings, KubeClient(settings), targets)


def _record(client, command: str, settings: RolloutSettings, alias: str, before: str | None, version: str):
    """The move that just happened, into the champion history (a failure is logged, never raised)."""
    line = f"python -m rollout {command} --model {settings.model} --version {version} --alias {alias}"
    move = history.Move(
        model=settings.model, alias=alias, from_version=before, to_version=version, decision=command,
        reason=settings.reason or f"{command} by hand", candidate=version, command=line,
        operator=history.operator(settings.operator), **history.Workload().who(),
    )  # fmt: skip
    if not history.record_or_warn(client, move):
        print(f"error: rollout: {settings.model}@{alias} moved to version {version}, but the move is NOT "
              "in the champion history (see the log above)", file=sys.stderr)  # fmt: skip


def show_history(settings: HistorySettings) -> str:
    """The alias' moves, newest first: text, or one JSON document; with --prometheus each
    champion's realized accuracy over the period it held the alias."""
    client = _registry(settings)
    moves = history.read(client, settings.model, settings.alias, settings.limit)
    realized: dict[str | None, tuple[Tenure, Realized]] = {}
    if settings.prometheus:
        now = datetime.now(UTC)
        prometheus = Prometheus(settings.prometheus, settings.prometheus_matchers, settings.timeout_s)
        try:
            for tenure in tenures(moves):
                realized[tenure.move.record_id] = (tenure, prometheus.realized(settings.model, tenure, now))
        finally:
            prometheus.close()
    if settings.json_output:
        return json.dumps({"model": settings.model, "alias": settings.alias, "moves": [
            {**m.as_json(), **({"served": _served_json(*realized[m.record_id])} if m.record_id in realized
                               else {})}
            for m in moves
        ]}, indent=2)  # fmt: skip
    lines = [f"{settings.model}@{settings.alias}: {len(moves)} recorded moves, newest first (UTC)"]
    width = max((len(m.title) for m in moves), default=0)
    for m in moves:
        lines.append(f"{m.at:%Y-%m-%d %H:%M:%S}  {m.title:<{width}}  {m.who}")
        lines.append(f"    reason: {m.reason}")
        if m.record_id in realized:
            lines.append(f"    {_served_text(*realized[m.record_id])}")
    return "\n".join(lines)


def _served_json(tenure: Tenure, result: Realized) -> dict:
    end = tenure.end.isoformat().replace("+00:00", "Z") if tenure.end else None
    return {"version": tenure.version, "until": end, **result.as_json()}


def _served_text(tenure: Tenure, result: Realized) -> str:
    until = f"until {tenure.end:%Y-%m-%d %H:%M:%S}" if tenure.end else "still champion"
    if not result.samples:
        return f"v{tenure.version} served ({until}): no realized-accuracy samples in Prometheus"
    return (f"v{tenure.version} served ({until}): mean realized MAE {result.mae:.4f}, naive "
            f"{result.naive_mae:.4f}, ratio {result.ratio:.3f} ({result.samples} samples)")  # fmt: skip


def _parsed(cls: type[T], rest: list[str], what: str) -> T | None:
    """The command's settings, or None after saying why they are invalid (exit EXIT_USAGE)."""
    try:
        return CliApp.run(cls, cli_args=rest)
    except ValidationError as exc:
        print(f"error: {what}: invalid settings: {exc}", file=sys.stderr)
        return None


def _history_main(rest: list[str]) -> int:
    settings = _parsed(HistorySettings, rest, "rollout history")
    if settings is None:
        return EXIT_USAGE
    try:
        print(show_history(settings), flush=True)
    except history.HistoryError as exc:
        print(f"error: rollout history: {exc}", file=sys.stderr)
        return exc.code
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m rollout {{{'|'.join(COMMANDS)}}} --help", file=sys.stderr)
        return EXIT_USAGE
    command, rest = args[0], args[1:]
    if command == "history":
        return _history_main(rest)
    settings = _parsed(RolloutSettings, rest, "rollout")
    if settings is None:
        return EXIT_USAGE
    try:
        for line in run(command, settings):
            print(f"rollout: {line}", flush=True)
    except (RolloutError, FetchError) as exc:
        retry = " ".join(["python -m rollout", command, *rest])
        print(
            f"error: rollout: {exc}. The registry is unchanged by this failure (a promotion stands); "
            f"the InferenceService keeps its previous storageUri. Fix the cause, then re-run: {retry}",
            file=sys.stderr,
        )
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
