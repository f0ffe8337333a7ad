"""Which calibration a served model answers with: its online state, or its bundle's, and why.

The monitor writes one state per model (`bundle.online`), `<calibration-dir>/<model name>.json` (in a
cluster a ConfigMap mounted read-only, which the kubelet refreshes within about a minute). Each model
re-reads its file when it is loaded and on every poll of the process's loader (`--calibration-poll-s`),
parses it only when its bytes changed, and checks it with `bundle.online.usable` each time (its age
moves on while the file does not). Never per request: a request reads the distribution decided last,
from the same `Served` snapshot as the model (predictor.model), so it sees one consistent pair.

The bundle's calibration is served, and every answer and a gauge say why, when there is no state
(`no_state`), the file cannot be parsed or fails the state's sane limits (`invalid`), it belongs to
another model, version or bundle, is older than `--calibration-max-age-s` (`stale`), dated ahead of
the clock (`future`), has too few realized scores (`too_few_scores`), the bundle is format 1 (static
intervals: `format_1`), or no `--calibration-dir` is set (`disabled`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import Gauge
from pydantic import ValidationError

from bundle.distribution import PredictiveDistribution
from bundle.io import LoadedBundle, metadata_sha256
from bundle.online import ModelIdentity, OnlineState, serving, usable

log = logging.getLogger(__name__)

ONLINE, BUNDLE = "online", "bundle"
USABLE, NO_STATE, INVALID, DISABLED, FORMAT_1 = "usable", "no_state", "invalid", "disabled", "format_1"

CALIBRATION = Gauge(
    "forecaster_calibration",
    "1 for the calibration each model serves now (source online or bundle, and why: reason), 0 for "
    "the ones it served before",
    ["model", "source", "reason"],
    multiprocess_mode="livemax",
)
STATE_AS_OF = Gauge(
    "forecaster_calibration_state_as_of_timestamp_seconds",
    "As-of session (00:00 UTC) of the online state the model read last, served or not (0: none)",
    ["model"],
    multiprocess_mode="livemax",
)
STATE_UPDATED = Gauge(
    "forecaster_calibration_state_updated_timestamp_seconds",
    "When the monitor computed the online state the model read last, served or not (0: none)",
    ["model"],
    multiprocess_mode="livemax",
)


@dataclass(frozen=True)
class Calibration:
    """What a model serves: `distribution` None is the bundle's own. `parameters` go into every
    answer (v2 `parameters`; v1 and time-series beside their results)."""

    source: str
    reason: str
    distribution: PredictiveDistribution | None = None
    state: OnlineState | None = None  # the state read, served or ignored
    parameters: dict[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        params = {"calibration": self.source, "calibration_reason": self.reason}
        if self.state is not None:
            params["calibration_state_as_of"] = self.state.as_of.isoformat()
        object.__setattr__(self, "parameters", params)

    @property
    def labels(self) -> tuple[str, str]:
        return self.source, self.reason


def bundle_calibration(reason: str, state: OnlineState | None = None) -> Calibration:
    return Calibration(BUNDLE, reason, None, state)


class StateFile:
    """One model's state file, parsed only when its bytes change (a poll costs one small read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: bytes | None = None
        self._found: OnlineState | str = NO_STATE

    def read(self) -> OnlineState | str:
        """The state, or why there is none (`no_state`, `invalid`)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._raw, self._found = None, NO_STATE
            return NO_STATE
        except OSError as exc:  # a directory, no permission: nothing servable, said once per change
            if self._found != INVALID:
                log.warning("cannot read the calibration state %s: %s", self.path, exc)
            self._raw, self._found = None, INVALID
            return INVALID
        if raw != self._raw:
            self._raw = raw
            try:
                self._found = OnlineState.model_validate_json(raw)
            except ValidationError as exc:  # malformed JSON or outside the state's sane limits
                log.warning("calibration state %s is refused: %s", self.path, " ".join(str(exc).split()))
                self._found = INVALID
        return self._found


class Calibrator:
    """Decides one model's calibration from its state file (None: no --calibration-dir)."""

    def __init__(self, model: str, directory: Path | None, max_age_s: float) -> None:
        self.model = model
        self.file = StateFile(Path(directory) / f"{model}.json") if directory is not None else None
        self.max_age = timedelta(seconds=max_age_s)
        self._sha: tuple[LoadedBundle, str] | None = None  # the served bundle's, hashed once

    def bundle_sha256(self, bundle: LoadedBundle) -> str:
        if self._sha is None or self._sha[0] is not bundle:
            self._sha = (bundle, metadata_sha256(bundle.path))
        return self._sha[1]

    def decide(
        self, bundle: LoadedBundle, version: str | None, previous: Calibration | None = None,
        now: datetime | None = None,
    ) -> Calibration:  # fmt: skip
        """The calibration to serve with `bundle`. `version`: the registry version served, or None
        for a bundle directory (KServe's storage initializer puts no version there; the bundle's
        metadata sha256, which covers its ONNX files, is then what ties the state to it). `previous`
        is returned as it is while nothing changed, so a distribution is built once per state."""
        reason, state = self._check(bundle, version, now or datetime.now(UTC))
        source = ONLINE if reason == USABLE else BUNDLE
        if previous is not None and previous.labels == (source, reason) and previous.state is state:
            return previous  # the same file, the same verdict: nothing rebuilt, nothing swapped
        if source == BUNDLE:
            return bundle_calibration(reason, state)
        try:
            return Calibration(ONLINE, USABLE, serving(state), state)
        except ValueError as exc:  # the state's checks passed, its table did not: served is the bundle's
            log.warning("calibration state of %s cannot be served: %s", self.model, exc)
            return bundle_calibration(INVALID, state)

    def _check(
        self, bundle: LoadedBundle, version: str | None, now: datetime
    ) -> tuple[str, OnlineState | None]:
        """`usable`, or why the bundle's calibration is served; and the state read."""
        if self.file is None:
            return DISABLED, None
        found = self.file.read()
        if isinstance(found, str):
            return found, None
        if bundle.metadata.distribution is None:
            return FORMAT_1, found
        identity = ModelIdentity(
            model_name=self.model, model_version=version or found.identity.model_version,
            bundle_sha256=self.bundle_sha256(bundle),
        )  # fmt: skip
        return usable(found, identity, now, self.max_age) or USABLE, found


def report(model: str, old: Calibration | None, new: Calibration) -> None:
    """The gauges and one log line, when what is served changes."""
    if old is not None and old.labels != new.labels:
        CALIBRATION.labels(model, *old.labels).set(0)
    CALIBRATION.labels(model, *new.labels).set(1)
    state = new.state
    STATE_AS_OF.labels(model).set(
        datetime(state.as_of.year, state.as_of.month, state.as_of.day, tzinfo=UTC).timestamp() if state else 0
    )
    STATE_UPDATED.labels(model).set(state.updated_at.timestamp() if state else 0)
    if old is None or old.labels != new.labels or old.state is not new.state:
        as_of = f" (state as of {state.as_of}, updated {state.updated_at.isoformat()})" if state else ""
        if new.source == ONLINE:
            log.info("%s: serving the online calibration%s", model, as_of)
        else:
            log.info("%s: serving the bundle's calibration: %s%s", model, new.reason, as_of)
