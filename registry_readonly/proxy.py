"""The proxy itself: stdlib only (no torch, no framework), one thread per connection.

GET and HEAD are forwarded with their path, query and end-to-end headers; the answer's status,
headers and body are streamed back. Any other method is answered 405 here and never reaches MLflow,
so no request body is ever forwarded. An unreachable or silent upstream is a 502 naming it.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from registry_readonly.settings import ReadOnlySettings

log = logging.getLogger("registry_readonly")
READS = ("GET", "HEAD")
CHUNK = 64 * 1024
# RFC 9110 7.6.1: per-connection headers a proxy must not forward; Host is set to the upstream's
# (MLflow 3 checks it against --allowed-hosts, which lists loopback).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length"}
)  # fmt: skip


def forwardable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """End-to-end headers only (also those a Connection header names as per-connection)."""
    named = {token.strip().lower() for k, v in headers if k.lower() == "connection" for token in v.split(",")}
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


class ReadOnlyHandler(BaseHTTPRequestHandler):
    """HTTP/1.0 to the client (one request per connection): a streamed answer needs no length."""

    settings: ReadOnlySettings  # set on the subclass make_server builds
    server_version = "registry-readonly"

    def do_GET(self) -> None:
        self.forward()

    def do_HEAD(self) -> None:
        self.forward()

    def refuse(self) -> None:
        self.close_connection = True  # its body, if any, is never read
        self.answer_json(
            405,
            f"{self.command} is not allowed on MLflow's read-only port: it serves GET and HEAD only; "
            "writes (registering versions, moving aliases) go through the training-only port",
            {"Allow": ", ".join(READS)},
        )

    def __getattr__(self, name: str) -> Callable[[], None]:  # the stdlib looks up do_<METHOD>
        """Every method but GET and HEAD (POST, PUT, PATCH, DELETE, ..., or made up) is refused."""
        if name.startswith("do_"):
            return self.refuse
        raise AttributeError(name)

    def answer_json(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        for key, value in {**(headers or {}), "Content-Type": "application/json"}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def forward(self) -> None:
        s = self.settings
        if not self.path.startswith("/") or self.path.startswith("//"):  # absolute-form: not a proxy
            self.answer_json(400, f"request target {self.path[:200]!r} must be a path starting with /")
            return
        upstream = urlsplit(s.upstream)
        conn = http.client.HTTPConnection(upstream.netloc, timeout=s.connect_timeout_s)
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(s.read_timeout_s)
            conn.putrequest(self.command, self.path, skip_accept_encoding=True)
            for key, value in forwardable(list(self.headers.items())):
                conn.putheader(key, value)
            conn.endheaders()
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            log.warning("%s %s: MLflow upstream %s unreachable: %s", self.command, self.path, s.upstream, exc)
            self.answer_json(502, f"MLflow upstream {s.upstream} is unreachable: {exc}")
            return
        try:
            self.send_response(response.status, response.reason)
            headers = forwardable(response.getheaders())
            for key, value in headers:
                self.send_header(key, value)
            if (length := response.getheader("Content-Length")) is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                while chunk := response.read1(CHUNK):
                    self.wfile.write(chunk)
        except (OSError, http.client.HTTPException) as exc:  # mid-answer: the status is already sent
            log.warning("%s %s: aborted mid-answer: %s", self.command, self.path, exc)
            self.close_connection = True
        finally:
            conn.close()

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


def make_server(settings: ReadOnlySettings) -> ThreadingHTTPServer:
    """A bound server (not yet serving); its handler class carries the settings."""
    # `timeout`: the stdlib's per-connection socket timeout, so a silent client cannot hold a thread.
    handler = type(
        "Handler", (ReadOnlyHandler,), {"settings": settings, "timeout": settings.client_timeout_s}
    )
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
    return server_class((settings.host, settings.port), handler)
