"""One loader per process for every model it serves.

Each model is loaded (retried with backoff until it serves) and, for an MLflow alias, polled; all
by one thread that walks the models in turn, a few at a time (`--load-concurrency` calls at once),
so 50 models are 50 registry calls per interval, not 50 threads calling MLflow at once. A model's
failure is its own: it is retried on its own schedule while the others serve; a registry that
fails slowly (unreachable) costs one wait per round, not one per model. Every thread is a daemon:
a SIGTERM ends the process at once, whatever a registry call is waiting for.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)
IDLE_S = 60.0  # nothing scheduled: wake up now and then anyway (a model may be added)
# A registry call that fails after this long is MLflow's client retrying an unreachable server (up to
# (--mlflow-retries + 1) x --mlflow-timeout-s): the other registry models skip that round instead of
# waiting as long each.
SLOW_S = 5.0
SKIPPED = "the MLflow registry did not answer (another model's call failed slowly); retrying"


class Loadable(Protocol):
    name: str

    def try_reload(self) -> bool: ...
    def skip(self, reason: str) -> None: ...
    @property
    def loaded(self) -> bool: ...
    @property
    def polls(self) -> bool: ...
    @property
    def recheck_s(self) -> float: ...
    @property
    def remote(self) -> bool: ...
    @property
    def stopped(self) -> bool: ...


@dataclass
class Entry:
    model: Loadable
    due: float
    retry_s: float = 1.0


class Loader:
    def __init__(self, reload_interval_s: float, retry_max_s: float, concurrency: int = 1) -> None:
        self.interval, self.retry_max, self.concurrency = reload_interval_s, retry_max_s, concurrency
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, model: Loadable) -> None:
        """Schedule `model` now (once per name); start the thread on the first one."""
        with self._lock:
            if model.name in self._entries:
                return
            self._entries[model.name] = Entry(model, due=time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bundle-loader", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.clear()
            self._round()
            self._wake.wait(self._sleep_s())

    def _round(self) -> None:
        """Every model due, `concurrency` at a time; once the registry has failed slowly, the
        remaining registry models skip their turn."""
        due, stalled = self._due(), False
        for start in range(0, len(due), self.concurrency):
            batch = due[start : start + self.concurrency]
            if stalled:
                for entry in (e for e in batch if e.model.remote):
                    entry.model.skip(SKIPPED)
                    self.schedule(entry)
                batch = [e for e in batch if not e.model.remote]
            for entry, (ok, seconds) in zip(batch, self._steps(batch), strict=True):
                stalled = stalled or (not ok and seconds > SLOW_S and entry.model.remote)

    def _steps(self, batch: list[Entry]) -> list[tuple[bool, float]]:
        """One step per model of `batch`, at once: (ok, seconds) each. Each runs on a daemon thread
        (the loader's own for one model), never a pool's: Python joins a pool's threads at exit, so
        a registry call still retrying held a SIGTERMed predictor for minutes. Now the process exits
        whatever MLflow is doing; a step cut short has nothing to finish."""
        if len(batch) == 1:
            return [self._timed_step(batch[0])]
        results = [(False, 0.0)] * len(batch)

        def run(index: int, entry: Entry) -> None:
            results[index] = self._timed_step(entry)

        threads = [
            threading.Thread(target=run, args=(i, e), name=f"bundle-loader-{e.model.name}", daemon=True)
            for i, e in enumerate(batch)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def _timed_step(self, entry: Entry) -> tuple[bool, float]:
        started = time.monotonic()
        try:
            ok = self.step(entry)
        except Exception:  # a bug in one model's load: logged, that model retried on its schedule
            log.exception("loading %s failed", entry.model.name)
            self.schedule(entry)
            ok = False
        return ok, time.monotonic() - started

    def _due(self) -> list[Entry]:
        now = time.monotonic()
        with self._lock:
            return sorted((e for e in self._entries.values() if e.due <= now), key=lambda e: e.due)

    def _sleep_s(self) -> float:
        with self._lock:
            dues = [e.due for e in self._entries.values()]
        return max(0.0, min(dues) - time.monotonic()) if dues else IDLE_S

    def step(self, entry: Entry) -> bool:
        """One attempt for one model, then its next turn."""
        if entry.model.stopped:
            self._drop(entry.model)
            return True
        ok = entry.model.try_reload()
        self.schedule(entry)
        return ok

    def schedule(self, entry: Entry) -> None:
        """A retry (backoff) until the model serves, then a poll every interval for an alias, and
        every `recheck_s` for a calibration state; never again for a directory or a pinned version
        without one."""
        model = entry.model
        if not model.loaded:
            entry.due = time.monotonic() + entry.retry_s
            entry.retry_s = min(entry.retry_s * 2, self.retry_max)
            return
        every = [s for s in (self.interval if model.polls else 0.0, model.recheck_s) if s > 0]
        if every:
            entry.due = time.monotonic() + min(every)
        else:
            self._drop(model)

    def _drop(self, model: Loadable) -> None:
        with self._lock:
            self._entries.pop(model.name, None)


_loaders: dict[int, Loader] = {}
_guard = threading.Lock()


def process_loader(reload_interval_s: float, retry_max_s: float, concurrency: int = 1) -> Loader:
    """This process's loader (kserve's workers each have their own, with their own sessions)."""
    with _guard:
        loader = _loaders.get(os.getpid())
        if loader is None:
            loader = _loaders[os.getpid()] = Loader(reload_interval_s, retry_max_s, concurrency)
        return loader
