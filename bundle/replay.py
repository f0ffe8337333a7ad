"""The online intervals replayed day by day, as the monitor and the predictor run them.

Training's report and gate (`training/online_eval.py`), the monitor's realized interval gauges and
`bench.intervals` measure the online state with this: each session gets the band of the state as
of the session before, then its close updates the state, with the functions of `bundle.online`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundle.online import (
    ANCHOR,
    History,
    ModelIdentity,
    OnlineDistribution,
    at_close,
    initial_state,
    serving,
    update,
)


@dataclass(frozen=True)
class Replay:
    """Per replayed session: the sigma served and the distribution that served it."""

    sigma: np.ndarray
    distributions: tuple[OnlineDistribution, ...]

    def bounds(self, point: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
        pairs = [d.bounds(np.array([[p]]), np.array([s]), coverage) for d, p, s in self._rows(point)]
        return np.array([lo[0, 0] for lo, _ in pairs]), np.array([hi[0, 0] for _, hi in pairs])

    def quantile(self, point: np.ndarray, q: float) -> np.ndarray:
        return np.array(
            [d.quantile(np.array([[p]]), np.array([s]), q)[0, 0] for d, p, s in self._rows(point)]
        )

    def _rows(self, point: np.ndarray):
        return zip(self.distributions, np.asarray(point, dtype=np.float64), self.sigma, strict=True)


def replay(
    identity: ModelIdentity,
    history: History,
    points: np.ndarray,
    start: int,
    *,
    window: int,
    sigma_floor: float,
    latest: bool = True,
    **options,
) -> Replay:
    """Serve sessions `start..end` of `history` one at a time, as they would have been served.

    Session t gets the distribution of the state as of t - 1 (built by `initial_state` on sessions
    before `start`, then moved by `update` after each close), applied to the window of closes
    ending at t - 1; nothing from session t or later reaches its band. `latest=False` serves every
    session through the close-only path (a window that is not the state's latest), to measure it.
    """
    prefix = History(
        history.dates[:start],
        history.close[:start],
        *(None if a is None else a[:start] for a in (history.open, history.high, history.low)),
    )
    state = initial_state(identity, prefix, points[:start], window=window, sigma_floor=sigma_floor, **options)
    sigmas, dists = [], []
    closes = np.asarray(history.close, dtype=np.float64)
    for t in range(start, len(history)):
        dist = serving(state)
        win = closes[t - window : t][None, :]
        if not latest:  # the same closes, but not recognized as the latest window
            dist = dist.model_copy(update={"anchor": (-1.0,) * ANCHOR})
        sigmas.append(float(dist.sigma(win)[0]))
        dists.append(dist)
        state = update(state, history.session(t), float(points[t]), now=at_close(history.dates[t]))
    return Replay(np.array(sigmas), tuple(dists))
