"""Opportunistic request batching for the fast path: opt-in (`--batching`; off by default since
issue 23, because a request's answer then depends on what else is in flight).

Requests decoded in the same turn of the event loop (under load, several connections' bodies
arrive in one poll) are forecast in one onnxruntime call per served model, up to `max_rows` rows:
no timer and no added wait, the batch is whatever is already there. Each request keeps its own
validation, answer, counters and latency observation (the batch's model time). One bad row must
not refuse its neighbours: when a batch gives a non-finite output, or fails, each of its requests
is forecast alone, exactly as without batching. What batching changes: a batched fp32 row can
differ from the same row alone in the last bits (onnxruntime's batched kernels, by CPU); an int8 row
by ~1e-5 relative on a trained LSTM (dynamic quantization scales activations by the whole batch's
range). It halves
the CPU per request at c = 8 and 32; its p99 effect depends on load (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from bundle import Forecast
from predictor.model import Decoded, Served


def rows(result: Forecast, start: int, stop: int) -> Forecast:
    """Rows `start:stop` of a batch's forecast."""
    return Forecast(
        mean=result.mean[start:stop],
        lower={c: v[start:stop] for c, v in result.lower.items()},
        upper={c: v[start:stop] for c, v in result.upper.items()},
        sigma=None if result.sigma is None else result.sigma[start:stop],
        widen=result.widen,
        distribution=result.distribution,
    )


class Batcher:
    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._queue: list[tuple[Decoded, asyncio.Future]] = []
        self._scheduled = False
        self.batches = 0  # model calls made for more than one request (what a test can check)

    async def forecast(self, decoded: Decoded) -> Forecast:
        """This request's forecast, computed with whatever else is queued in this loop turn."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((decoded, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)  # after the callbacks already ready: the other requests
        return await future

    def _flush(self) -> None:
        queue, self._queue, self._scheduled = self._queue, [], False
        groups: dict[int, tuple[Served, list]] = {}
        for item in queue:  # one forecaster per served model (a swap mid-turn makes two groups)
            groups.setdefault(id(item[0].served), (item[0].served, []))[1].append(item)
        for served, items in groups.values():
            chunk, size = [], 0
            for item in items:
                if chunk and size + len(item[0].closes) > self.max_rows:
                    self._run(served, chunk)
                    chunk, size = [], 0
                chunk.append(item)
                size += len(item[0].closes)
            self._run(served, chunk)

    def _run(self, served: Served, items: list) -> None:
        if len(items) == 1:
            return _alone(*items[0])
        closes = np.concatenate([decoded.closes for decoded, _ in items])
        start = time.perf_counter()
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                result = served.forecaster.forecast(closes, 1, served.calibration.distribution)
            finite = all(np.isfinite(out.values(result)).all() for out in served.forecaster.outputs)
        except Exception:  # onnxruntime on a batch: let each request meet its own outcome
            finite = False
        if not finite:
            for item in items:
                _alone(*item)
            return
        elapsed, offset = time.perf_counter() - start, 0
        self.batches += 1
        for decoded, future in items:
            served.latency.observe(elapsed)
            count = len(decoded.closes)
            if not future.done():
                future.set_result(rows(result, offset, offset + count))
            offset += count


def _alone(decoded: Decoded, future: asyncio.Future) -> None:
    """The request's forecast on its own, as ForecastModel.predict computes it."""
    try:
        result = decoded.forecast()
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(result)
