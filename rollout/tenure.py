"""The champion history read against realized accuracy: the periods each version held the alias
(from the recorded moves) and, from Prometheus' HTTP API, the monitor's realized-accuracy gauges
of that version over its period.

The monitor labels its gauges with `model` and the `version` it scored (monitor/metrics.py), so a
period's mean is `avg_over_time(forecaster_realized_mae{model="m", version="v"}[<period>])`
evaluated at the period's end: no sample of another version can enter it, whatever the scrape
timing. What the gauges measure: each evaluation scores the version on the last N published
sessions (monitor.sessions, 20), so a period's mean is the version's realized accuracy as measured
while it was champion; its first evaluations include sessions from before its promotion. A period
older than Prometheus' retention has no samples (None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import httpx

from bundle.fetch import EXIT_UNAVAILABLE
from rollout.history import UNKNOWN, HistoryError, Move

# The monitor's gauges (monitor/metrics.py); tests/integration/rollout/test_history.py reads them
# from a running monitor, so a rename there fails the test here.
GAUGES = {
    "mae": "forecaster_realized_mae",
    "naive_mae": "forecaster_realized_naive_mae",
    "ratio": "forecaster_realized_mae_ratio",
}


@dataclass(frozen=True)
class Tenure:
    """`version` held the alias from `start` (the move that made it champion) to `end` (None: still)."""

    version: str
    start: datetime
    end: datetime | None
    move: Move


@dataclass(frozen=True)
class Realized:
    """Means of the monitor's gauges of one version over one tenure (None: no samples)."""

    samples: int
    mae: float | None
    naive_mae: float | None
    ratio: float | None

    def as_json(self) -> dict:
        return {"samples": self.samples, "mae": self.mae, "naive_mae": self.naive_mae, "ratio": self.ratio}


def tenures(moves: list[Move]) -> list[Tenure]:
    """The periods of each champion, oldest first, from moves in any order. A refusal does not start
    a period, unless it names a champion the history has not seen move in (an unrecorded move)."""
    periods: list[Tenure] = []
    holder: str | None = None
    for move in sorted(moves, key=lambda m: m.at):
        if move.to_version == holder:
            continue
        if periods and periods[-1].end is None:
            last = periods[-1]
            periods[-1] = Tenure(last.version, last.start, move.at, last.move)
        holder = move.to_version
        if holder not in (None, UNKNOWN):
            periods.append(Tenure(holder, move.at, None, move))
    return periods


class Prometheus:
    """Prometheus' instant-query API (`/api/v1/query` with `time`), one client per command."""

    def __init__(self, url: str, matchers: str = "", timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.matchers = matchers.strip().strip(",")
        self.http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def query(self, expr: str, at: datetime) -> float | None:
        """The single value of `expr` at `at`; None when it has no result."""
        try:
            answer = self.http.get(f"{self.url}/api/v1/query", params={"query": expr, "time": at.timestamp()})
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            error = f"Prometheus at {self.url}: {type(exc).__name__}: {exc}"
            raise HistoryError(EXIT_UNAVAILABLE, error) from exc
        if answer.status_code != 200 or body.get("status") != "success":
            raise HistoryError(
                EXIT_UNAVAILABLE, f"Prometheus at {self.url} refused {expr!r}: {answer.status_code} "
                f"{body.get('errorType', '')} {body.get('error', answer.text[:200])}",
            )  # fmt: skip
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def realized(self, model: str, tenure: Tenure, now: datetime) -> Realized:
        """The means of the monitor's gauges of `tenure.version` of `model` over the tenure."""
        end = tenure.end or now
        window = int((end - tenure.start).total_seconds() * 1000)
        if window <= 0:
            return Realized(0, None, None, None)
        labels = [f"model={json.dumps(model)}", f"version={json.dumps(tenure.version)}"]
        selector = "{" + ",".join([*labels, *([self.matchers] if self.matchers else [])]) + "}"
        means = {key: self.query(f"avg(avg_over_time({name}{selector}[{window}ms]))", end)
                 for key, name in GAUGES.items()}  # fmt: skip
        samples = self.query(f"sum(count_over_time({GAUGES['mae']}{selector}[{window}ms]))", end)
        return Realized(int(samples or 0), means["mae"], means["naive_mae"], means["ratio"])
