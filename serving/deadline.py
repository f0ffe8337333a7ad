"""Slow and idle connections are closed: uvicorn's HTTP protocol with a per-request deadline.

uvicorn bounds only the idle time *between* requests (keep-alive). A client that connects and sends
nothing, half a header or half a body holds its socket forever; ~20,000 such sockets exhausted the
pod's file descriptors. Here every request must arrive whole (headers and body) within
`request_timeout` seconds of its first byte, or of the connection when nothing comes: past that the
connection is closed. A request that did arrive runs as long as the model needs. It subclasses
uvicorn's internal `HttpToolsProtocol` (httptools' parser), checked at start-up (serving.cli).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.metrics import REJECTED


class DeadlineProtocol(HttpToolsProtocol):
    def __init__(self, *args, request_timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            REJECTED.labels("request_timeout").inc()
            self.transport.close()

    def connection_made(self, transport) -> None:  # nothing sent yet is a request not yet complete
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:  # the first byte of a (keep-alive) request
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:  # headers and body are in: the model may take its time
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
