"""A minimal HTTP/1.1 keep-alive client for the one call's request to the predictor.

Why: aiohttp's client costs ~0.5 ms of CPU per call here against ~0.15 ms for writing the request
and reading the answer on an open asyncio stream (measured side by side on one predictor), and that
difference is a quarter of what the one call adds (bench/one_call.py). Only plain http, only what
the predictor answers (Content-Length or chunked bodies); https and anything unusual stay with
aiohttp (transformer.upstream). Requests are idempotent inferences, so a keep-alive connection the
server closed while idle is retried once on a fresh one.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

HEAD_LIMIT = 65_536  # bytes of status line + headers accepted from the predictor


class WireError(ConnectionError):
    """The exchange failed at the transport level (refused, reset, closed, malformed)."""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, reusable) of one request on this connection."""
        self.writer.write(request)
        await self.writer.drain()
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise WireError("the predictor's answer headers are too long") from exc
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise WireError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:  # delimited by the end of the connection
            return int(parts[1]), headers, await self.reader.read(), False
        reusable = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
        return int(parts[1]), headers, body, reusable

    async def _chunked(self) -> bytes:
        chunks = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers from the predictor
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


class KeepAliveClient:
    """POSTs to one http origin on a small pool of kept-alive connections (per event loop)."""

    def __init__(self, base_url: str, timeout_s: float, pool: int = 16) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"{base_url!r}: the lean client speaks plain http only")
        self.host, self.port = url.hostname, url.port or 80
        self.authority = url.netloc
        self.timeout_s, self.pool = timeout_s, pool
        self._idle: list[Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # streams belong to the loop that made them

    async def _connect(self) -> Connection:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=HEAD_LIMIT)
        except OSError as exc:  # refused, no route, name not resolved
            raise WireError(f"cannot connect to {self.authority}: {exc}") from exc
        return Connection(reader, writer)

    def _request(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [f"POST {path} HTTP/1.1", f"host: {self.authority}", f"content-length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body); WireError or TimeoutError when the exchange fails."""
        request = self._request(path, body, headers)
        if self._loop is not asyncio.get_running_loop():
            self._idle, self._loop = [], asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout_s):
            while True:
                reused = bool(self._idle)
                connection = self._idle.pop() if reused else await self._connect()
                try:
                    status, answered, content, reusable = await connection.exchange(request)
                except (OSError, asyncio.IncompleteReadError, ValueError, WireError) as exc:
                    connection.close()
                    if reused and isinstance(exc, OSError | asyncio.IncompleteReadError):
                        continue  # closed by the server while idle: once more, on a fresh connection
                    if isinstance(exc, WireError):
                        raise
                    raise WireError(str(exc) or type(exc).__name__) from exc
                except BaseException:  # cancelled or timed out mid-exchange: the stream is unusable
                    connection.close()
                    raise
                if reusable and len(self._idle) < self.pool:
                    self._idle.append(connection)
                else:
                    connection.close()
                return status, answered, content

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
