"""Intervals recalibrated online from realized sessions: the state, its update, and what is served.

Why: the bundle's calibration (`distribution.py`) is fixed at training time, so between retrainings
the bands cannot follow a new volatility regime. Here a small state per served model is moved by
every realized session, and serving it costs what the bundle's costs (one dot product per row).

The method (kept because it measured best; BENCHMARKS.md "Intervals" lists what was tried):

- **Scale**: a HAR model (`bundle.har`) of the next squared close-to-close log return. A request
  whose last `ANCHOR` closes are the state's (the transformer's window for the latest session)
  gets `next_sigma`, the HAR on range-based variances (Garman-Klass with the overnight gap),
  computed when the state is updated because a request carries closes only; any other window gets
  the HAR on its own squared returns times `close_scale`, the recent ratio of the two forecasts (an
  EWMA of its log), so both paths serve one calibrated scale, floored at the bundle's sigma floor
  and capped at SIGMA_CAP. Coefficients are fitted once, when the state is created.
- **Shape**: split-conformal quantiles of the normalized scores |log(actual / point)| / sigma over
  the last `score_window` (250) realized sessions, at each central level of the bundle's grid,
  each level corrected by adaptive conformal inference (Gibbs and Candes 2021):
  `alpha <- alpha + gamma ((1 - c) - miss)`, gamma 0.005, so a run of misses widens that level and
  a run of hits narrows it. Beyond the grid the tail is extended as the bundle's is.

Torch-free and pandas-free (numpy and pydantic): the monitor computes it, the predictor serves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from bundle.distribution import LEVELS, SIGMA_CAP, PredictiveDistribution, conformal_quantile
from bundle.har import HAR_TERMS, MONTH, fit_har, har_variance, range_variance, term_weights

SCHEMA_VERSION = 1
#: Realized normalized scores whose quantiles make the served table (one trading year).
SCORE_WINDOW = 250
#: Adaptive conformal inference step: how fast each level's miscoverage target reacts to misses.
GAMMA = 0.005
#: Closes that must match the state's last closes for a window to get the range-based scale.
ANCHOR = 5
#: Below this many realized scores a state is not served (the bundle's calibration is).
MIN_SCORES = 100
#: EWMA decay of log(range sigma / close sigma): ~50 sessions of memory.
SCALE_LAMBDA = 0.98
#: ACI keeps each level's miscoverage in this range (an unbounded alpha would serve an empty or
#: infinite interval after a long run of hits or misses).
ALPHA_BOUNDS = (1e-4, 0.99)
#: Sane limits: a state outside them is refused (served: the bundle's calibration).
SCALE_BOUNDS = (0.2, 5.0)
#: Default bound on a state's age (updated_at) before the bundle's calibration is served instead:
#: a weekend plus a holiday, as the market data's own bound.
MAX_AGE = timedelta(days=4)


# -- the state -------------------------------------------------------------------------------------


class ModelIdentity(BaseModel):
    """Which served model a state belongs to: a state is never applied to another."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    bundle_sha256: str = Field(pattern="^[0-9a-f]{64}$", description="the bundle's metadata.json sha256")


@dataclass(frozen=True)
class Session:
    """One realized session: what the monitor reads from its source after the close."""

    date: date
    close: float
    open: float = math.nan
    high: float = math.nan
    low: float = math.nan


class OnlineState(BaseModel):
    """Everything the online intervals need, as one small JSON document per model version.

    ~330 numbers (the 250 scores dominate): ~8 KB as JSON, for a file or a ConfigMap.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    identity: ModelIdentity
    as_of: date = Field(description="the last realized session included")
    updated_at: datetime = Field(description="when the state was computed (UTC)")
    levels: tuple[float, ...] = Field(LEVELS, description="central coverages of the served table")
    alphas: tuple[float, ...] = Field(description="ACI's current miscoverage target per level")
    gamma: float = Field(GAMMA, ge=0, lt=0.5)
    score_window: PositiveInt = SCORE_WINDOW
    scores: tuple[float, ...] = Field(description="the last realized normalized scores, oldest first")
    close_har: tuple[float, ...] = Field(description="HAR on squared returns: " + ", ".join(HAR_TERMS))
    range_har: tuple[float, ...] = Field(description="HAR on Garman-Klass variances: " + ", ".join(HAR_TERMS))
    sigma_floor: PositiveFloat
    recent_closes: tuple[float, ...] = Field(description="the request window's closes up to as_of")
    recent_range: tuple[float, ...] = Field(description="daily range variances of those sessions")
    close_scale: float = Field(description="EWMA ratio of range to close-only sigma")
    next_sigma: float = Field(description="range-based sigma of the session after as_of")

    @model_validator(mode="after")
    def _sane(self) -> OnlineState:
        def finite(values, name, low=0.0):
            a = np.asarray(values, dtype=np.float64)
            if not (np.all(np.isfinite(a)) and np.all(a >= low)):
                raise ValueError(f"{name} must be finite and >= {low}")

        if self.levels != LEVELS:
            raise ValueError(f"levels must be the bundle's grid {LEVELS}")
        if len(self.alphas) != len(self.levels):
            raise ValueError("one alpha per level")
        lo, hi = ALPHA_BOUNDS
        if not all(lo <= a <= hi for a in self.alphas):
            raise ValueError(f"alphas must lie in [{lo}, {hi}]")
        if len(self.scores) > self.score_window:
            raise ValueError(f"more than score_window={self.score_window} scores")
        finite(self.scores, "scores")
        for name in ("close_har", "range_har"):
            coef = getattr(self, name)
            if len(coef) != len(HAR_TERMS):
                raise ValueError(f"{name} needs {len(HAR_TERMS)} coefficients")
            finite(coef, name)
            if coef[0] <= 0:
                raise ValueError(f"{name} intercept must be > 0")
        if len(self.recent_closes) <= MONTH or len(self.recent_range) != len(self.recent_closes) - 1:
            raise ValueError("recent_closes needs > 22 closes and recent_range one variance per return")
        finite(self.recent_closes, "recent_closes", low=1e-300)
        finite(self.recent_range, "recent_range")
        if not SCALE_BOUNDS[0] <= self.close_scale <= SCALE_BOUNDS[1]:
            raise ValueError(f"close_scale {self.close_scale} outside {SCALE_BOUNDS}")
        if not self.sigma_floor <= self.next_sigma <= max(SIGMA_CAP, self.sigma_floor):
            raise ValueError(f"next_sigma {self.next_sigma} outside [sigma_floor, {SIGMA_CAP}]")
        if self.updated_at.tzinfo is None:
            raise ValueError("updated_at needs a time zone")
        if self.updated_at.date() < self.as_of:
            raise ValueError("updated_at is before as_of")
        return self

    @property
    def window(self) -> int:
        return len(self.recent_closes)


def _table(scores: np.ndarray, alphas: Sequence[float]) -> tuple[float, ...]:
    """Conformal |z| quantile at each level's ACI-corrected coverage, made non-decreasing."""
    q = [conformal_quantile(scores, 1.0 - a) for a in alphas]
    return tuple(float(v) for v in np.maximum.accumulate(q))


def _close_sigma(state: OnlineState, windows: np.ndarray) -> np.ndarray:
    """Close-only HAR sigma of `[b, window]` closes, times the state's close_scale (unclipped)."""
    r2 = np.diff(np.log(np.asarray(windows, dtype=np.float64)), axis=-1) ** 2
    return np.sqrt(np.maximum(har_variance(state.close_har, r2), 0.0)) * state.close_scale


def _range_sigma(coefficients: Sequence[float], recent_range: Sequence[float], floor: float) -> float:
    v = float(har_variance(coefficients, np.asarray(recent_range)[None, :])[0])
    return float(np.clip(math.sqrt(max(v, 0.0)), floor, max(SIGMA_CAP, floor)))


def update(state: OnlineState, session: Session, point: float, now: datetime | None = None) -> OnlineState:
    """The state after one more realized session.

    `point` is the forecast the model served for `session` (from the window ending at `as_of`);
    the band it was served with used `next_sigma`, so the score is |log(close / point)| / next_sigma.
    Sessions must come in order: one dated on or before `as_of` is refused (ValueError), so
    replaying the same close twice cannot count it twice.
    """
    if session.date <= state.as_of:
        raise ValueError(f"session {session.date} is not after the state's as_of {state.as_of}")
    if not (session.close > 0 and math.isfinite(session.close) and point > 0 and math.isfinite(point)):
        raise ValueError(f"close {session.close} and point {point} must be positive and finite")
    score = abs(math.log(session.close / point)) / state.next_sigma
    scores = np.asarray(state.scores, dtype=np.float64)
    alphas = list(state.alphas)
    if len(scores):
        table = _table(scores, alphas)
        for i, (c, q) in enumerate(zip(state.levels, table, strict=True)):
            miss = 1.0 if score > q else 0.0
            alphas[i] = float(np.clip(alphas[i] + state.gamma * ((1.0 - c) - miss), *ALPHA_BOUNDS))
    scores = np.append(scores, score)[-state.score_window :]
    # How the close-only path relates to the range path on the latest window (before moving on).
    close_only = float(_close_sigma(state, np.asarray(state.recent_closes)[None, :])[0]) / state.close_scale
    ratio = state.next_sigma / max(close_only, state.sigma_floor)
    log_scale = SCALE_LAMBDA * math.log(state.close_scale) + (1 - SCALE_LAMBDA) * math.log(ratio)
    prev = state.recent_closes[-1]
    v = float(range_variance(session.open, session.high, session.low, session.close, prev))
    recent_range = (*state.recent_range[1:], v)
    return _revalidate(
        state,
        as_of=session.date,
        updated_at=now or datetime.now(UTC),
        alphas=tuple(alphas),
        scores=tuple(float(s) for s in scores),
        recent_closes=(*state.recent_closes[1:], float(session.close)),
        recent_range=recent_range,
        close_scale=float(np.clip(math.exp(log_scale), *SCALE_BOUNDS)),
        next_sigma=_range_sigma(state.range_har, recent_range, state.sigma_floor),
    )


def _revalidate(state: OnlineState, **changes) -> OnlineState:
    """A copy with `changes`, validated again (model_copy alone skips the sane-limit checks)."""
    return OnlineState.model_validate({**state.model_dump(), **changes})


@dataclass(frozen=True)
class History:
    """Realized sessions up to the state's as-of date, oldest first. Without open/high/low (a
    closes-only source) the range path uses squared returns and equals the close-only one."""

    dates: Sequence[date]
    close: np.ndarray
    open: np.ndarray | None = None
    high: np.ndarray | None = None
    low: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.close)

    def session(self, i: int) -> Session:
        def at(a):
            return math.nan if a is None else float(a[i])

        return Session(self.dates[i], float(self.close[i]), at(self.open), at(self.high), at(self.low))

    def variances(self) -> tuple[np.ndarray, np.ndarray]:
        """`[n - 1]` squared close-to-close returns and range variances (index j: session j + 1)."""
        c = np.asarray(self.close, dtype=np.float64)
        r2 = np.log(c[1:] / c[:-1]) ** 2
        if self.open is None or self.high is None or self.low is None:
            return r2, r2
        o, h, lo = (np.asarray(a, dtype=np.float64)[1:] for a in (self.open, self.high, self.low))
        return r2, range_variance(o, h, lo, c[1:], c[:-1])


def at_close(day: date) -> datetime:
    """A replay's clock: the evening of the session (22:00 UTC), after every market's close."""
    return datetime(day.year, day.month, day.day, 22, tzinfo=UTC)


def initial_state(
    identity: ModelIdentity,
    history: History,
    points: np.ndarray,
    *,
    window: int,
    sigma_floor: float,
    score_window: int = SCORE_WINDOW,
    gamma: float = GAMMA,
    now: datetime | None = None,
) -> OnlineState:
    """The state as of the last session of `history`: what the monitor computes for a new model.

    The HAR coefficients are fitted on every session of `history`; then the state is started
    `score_window` sessions before the end (alphas at nominal, no scores) and `update` runs over
    those sessions, so the scores and ACI's levels come from the same code path as every later
    day. `points[i]` is the forecast the model serves for session i from the window ending at
    i - 1 (only the replayed sessions are read; a NaN there falls back to naive, the last close).
    """
    n = len(history)
    replayed = min(score_window, n - 1 - window)
    if n < window + 2 * MONTH or replayed < 1:
        raise ValueError(f"{n} sessions are too few for a window of {window} plus a year to score")
    r2, rv = history.variances()
    m = window - 1  # returns per request window
    starts = np.arange(0, n - 1 - m)  # windows of returns [j, j + m) predict return j + m
    windows_r2 = np.lib.stride_tricks.sliding_window_view(r2, m)[: len(starts)]
    windows_rv = np.lib.stride_tricks.sliding_window_view(rv, m)[: len(starts)]
    target = r2[m:]
    close_har = fit_har(windows_r2, target)
    range_har = fit_har(windows_rv, target)
    first = n - 1 - replayed  # as_of index of the starting state
    recent_range = rv[first - m : first]
    state = OnlineState(
        identity=identity,
        as_of=history.dates[first],
        updated_at=at_close(history.dates[first]),
        alphas=tuple(1.0 - c for c in LEVELS),
        gamma=gamma,
        score_window=score_window,
        scores=(),
        close_har=close_har,
        range_har=range_har,
        sigma_floor=sigma_floor,
        recent_closes=tuple(float(v) for v in history.close[first - window + 1 : first + 1]),
        recent_range=tuple(float(v) for v in recent_range),
        close_scale=1.0,
        next_sigma=_range_sigma(range_har, recent_range, sigma_floor),
    )
    for i in range(first + 1, n):
        point = float(points[i]) if np.isfinite(points[i]) else float(history.close[i - 1])
        state = update(state, history.session(i), point, now=at_close(history.dates[i]))
    return state if now is None else _revalidate(state, updated_at=now)


# -- serving ---------------------------------------------------------------------------------------


class OnlineDistribution(PredictiveDistribution):
    """What the predictor serves from a state: the bundle distribution's interface (`sigma`,
    `bounds`, `quantile`, `halfwidth`), with the state's scale and quantile table. Built once per
    state (`serving`), so a request pays one dot product per row, as with the bundle's."""

    kind: str = Field("online_har_conformal", pattern="^online_har_conformal$")
    close_har: tuple[float, ...]
    close_scale: PositiveFloat
    anchor: tuple[float, ...] = Field(description="the last closes of the as-of window")
    next_sigma: PositiveFloat

    def sigma(self, closes: np.ndarray) -> np.ndarray:
        """`[b, window]` -> `[b]`: `next_sigma` for a window ending at the state's as-of session
        (its last closes equal to 1e-9 relative), else the window's close-only HAR sigma x
        close_scale; floored and capped. One dot product per row (the weights are cached)."""
        windows = np.asarray(closes, dtype=np.float64)
        r = np.diff(np.log(windows), axis=-1)
        weights = _close_weights(self.close_har, r.shape[-1])
        own = np.sqrt(np.maximum(self.close_har[0] + (r * r) @ weights, 0.0)) * self.close_scale
        anchor = _array(self.anchor)
        latest = (np.abs(windows[:, -len(anchor) :] - anchor) <= 1e-9 * anchor).all(axis=1)
        cap = max(SIGMA_CAP, self.sigma_floor)
        return np.minimum(np.maximum(np.where(latest, self.next_sigma, own), self.sigma_floor), cap)


@lru_cache(maxsize=256)
def _array(values: tuple[float, ...]) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=256)
def _close_weights(coefficients: tuple[float, ...], m: int) -> np.ndarray:
    """The HAR slopes folded into one weight per squared return: per state, not per request."""
    weights = np.asarray(coefficients[1:], dtype=np.float64) @ term_weights(m)
    weights.flags.writeable = False
    return weights


def serving(state: OnlineState) -> OnlineDistribution:
    """The distribution to serve from `state` (check `usable` first)."""
    scores = np.asarray(state.scores, dtype=np.float64)
    if len(scores) < MIN_SCORES:
        raise ValueError(f"{len(scores)} realized scores are too few to serve (need {MIN_SCORES})")
    table = _table(scores, state.alphas)
    i90, i99 = state.levels.index(0.9), len(state.levels) - 1
    spread = math.log((1 - state.levels[i90]) / (1 - state.levels[i99]))
    return OnlineDistribution(
        sigma_floor=state.sigma_floor,
        levels=state.levels,
        score_quantiles=table,
        tail_slope=max((table[i99] - table[i90]) / spread, 1e-3),
        calibration_sessions=len(scores),
        close_har=state.close_har,
        close_scale=state.close_scale,
        anchor=state.recent_closes[-ANCHOR:],
        next_sigma=state.next_sigma,
    )


def usable(
    state: OnlineState, identity: ModelIdentity, now: datetime, max_age: timedelta = MAX_AGE
) -> str | None:
    """None if `state` may be served for the model `identity` at `now`; else why not, one word
    (for a metric label): `other_model`, `other_version`, `other_bundle`, `stale`, `future`,
    `too_few_scores`."""
    age = now - state.updated_at
    reasons = (
        ("other_model", state.identity.model_name != identity.model_name),
        ("other_version", state.identity.model_version != identity.model_version),
        ("other_bundle", state.identity.bundle_sha256 != identity.bundle_sha256),
        ("stale", age > max_age),
        ("future", age < -timedelta(hours=1)),
        ("too_few_scores", len(state.scores) < MIN_SCORES),
    )
    return next((reason for reason, failed in reasons if failed), None)


def save(state: OnlineState, path: Path) -> None:
    """Write atomically (a reader sees the old state or the new one, never half of one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(state.model_dump_json(indent=1))
    tmp.replace(path)


def load(path: Path) -> OnlineState:
    """Read and validate (pydantic's ValidationError, a ValueError, on anything insane)."""
    return OnlineState.model_validate_json(Path(path).read_text())
