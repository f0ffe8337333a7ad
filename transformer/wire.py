"""A small HTTP/1.1 keep-alive client for the one call's request to the predictor; its answers are
parsed by httptools (llhttp, the parser uvicorn serves with).

Why not aiohttp: it costs ~0.5 ms of CPU per call here, against ~0.15 ms for this client, a third of
what the one call adds (BENCHMARKS.md). Plain http only (https stays on aiohttp). llhttp enforces
RFC 9112's framing (chunk sizes, the CRLF after a chunk, no Content-Length beside Transfer-Encoding);
this module bounds the head and the body, joins repeated headers (RFC 9110 §5.3) and drops the
connection after anything unusual. A kept-alive connection that fails (the server closed it while
idle) is retried once on a fresh one: the requests are idempotent inferences.

Two kinds of failure: WireError when no answer came (refused, reset, closed before a byte: the
transport's, worth a retry), MalformedAnswerError when one came that is not HTTP/1.1 (a bad status
line or length, broken framing, a head or body over its bound, a body cut short: the peer's).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httptools

HEAD_LIMIT = 65_536  # bytes of status line + headers accepted from the predictor
BODY_LIMIT = 4 * 2**20  # bytes of body: the predictor answers one window in < 1 KiB
READ_SIZE = 65_536


class WireError(ConnectionError):
    """No answer: the exchange failed at the transport level (refused, reset, closed before an answer)."""


class MalformedAnswerError(Exception):
    """An answer came, but not a valid HTTP/1.1 one within the bounds; its connection is dropped."""


class Connection:
    """One kept-alive connection and its llhttp parser (answers follow one another on it); the
    parser's callbacks fill in the answer being read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.headers, self.body, self.reusable, self.complete = 0, {}, bytearray(), False, False

    def on_message_begin(self) -> None:
        if self.complete:  # bytes past the answer: make llhttp stop, and drop the connection
            raise WireError("data after the answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status, self.reusable = self.parser.get_status_code(), self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True

    async def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, reusable) of one request on this connection."""
        self.status, self.headers, self.body, self.reusable, self.complete = 0, {}, bytearray(), False, False
        self.writer.write(request)
        await self.writer.drain()
        received = 0
        while not self.complete:
            data = await self.reader.read(READ_SIZE)
            if not data:
                if self.status and not {"content-length", "transfer-encoding"} & self.headers.keys():
                    break  # a body delimited by the end of the connection
                if received:
                    part = "body" if self.status else "head"
                    raise MalformedAnswerError(
                        f"the answer was cut short: closed in its {part}, {received} bytes in"
                    )
                raise WireError("the connection closed before an answer")
            received += len(data)
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                if not self.complete:
                    raise MalformedAnswerError(f"not an HTTP/1.1 answer: {exc}") from exc
                self.reusable = False
            if not self.status and received > HEAD_LIMIT:
                raise MalformedAnswerError(f"the answer's head is over {HEAD_LIMIT} bytes")
            if len(self.body) > BODY_LIMIT:
                raise MalformedAnswerError(f"the answer's body is over {BODY_LIMIT} bytes")
        return self.status, self.headers, bytes(self.body), self.reusable and self.complete


class KeepAliveClient:
    """POSTs to one http origin on a small pool of kept-alive connections (per event loop)."""

    def __init__(self, base_url: str, timeout_s: float, pool: int = 16) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"{base_url!r}: the lean client speaks plain http only")
        self.host, self.port, self.authority = url.hostname, url.port or 80, url.netloc
        self.timeout_s, self.pool = timeout_s, pool
        self._idle: list[Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # streams belong to the loop that made them

    async def _connect(self) -> Connection:
        try:
            return Connection(*await asyncio.open_connection(self.host, self.port))
        except OSError as exc:  # refused, no route, name not resolved
            raise WireError(f"cannot connect to {self.authority}: {exc}") from exc

    def _request(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [f"POST {path} HTTP/1.1", f"host: {self.authority}", f"content-length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def _exchange(self, connection: Connection, request: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            status, headers, body, reusable = await connection.exchange(request)
        except BaseException as exc:  # failed, cancelled or timed out mid-exchange: the stream is unusable
            connection.writer.close()
            if isinstance(exc, OSError) and not isinstance(exc, WireError):  # reset, broken pipe
                raise WireError(f"{self.authority}: {exc}") from exc
            raise
        if reusable and len(self._idle) < self.pool:
            self._idle.append(connection)
        else:
            connection.writer.close()
        return status, headers, body

    async def post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body); WireError, MalformedAnswerError or TimeoutError when it fails."""
        request = self._request(path, body, headers)
        if self._loop is not asyncio.get_running_loop():
            self._idle, self._loop = [], asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout_s):
            if self._idle:
                try:
                    return await self._exchange(self._idle.pop(), request)
                except WireError:
                    pass  # closed by the server while idle: once more, on a fresh connection
            return await self._exchange(await self._connect(), request)
