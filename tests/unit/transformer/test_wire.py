"""The lean keep-alive client (transformer/wire.py) against a real asyncio server on loopback whose
answers are scripted per request: reuse, a server closing an idle connection, chunked and
close-delimited bodies, refused connections, malformed, oversized, truncated and smuggling-shaped
answers (RFC 9112 framing), and timeouts. No answer is a WireError (the transport's: retried); a
broken one a MalformedAnswerError (the peer's: never retried)."""

from __future__ import annotations

import asyncio

import pytest

from transformer.wire import BODY_LIMIT, HEAD_LIMIT, KeepAliveClient, MalformedAnswerError, WireError


class Scripted:
    """Serves each request with the next answer of `script`: bytes to send, then maybe close."""

    def __init__(self, script: list[tuple[bytes, bool]]) -> None:
        self.script, self.connections, self.requests = list(script), 0, []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.script:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                sized = [int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")]
                length = sized[0] if sized else 0  # aiohttp sends none with a GET
                self.requests.append(head + await reader.readexactly(length))
                answer, close = self.script.pop(0)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


async def serve(script):
    server_state = Scripted(script)
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, server_state, KeepAliveClient(f"http://127.0.0.1:{port}", timeout_s=2)


def run(coro):
    return asyncio.run(coro)


def test_one_connection_serves_consecutive_requests_with_the_request_written_out():
    async def scenario():
        server, state, client = await serve([(ok(b'{"a":1}'), False), (ok(b'{"b":2}'), False)])
        async with server:
            first = await client.post("/v2/models/m/infer", b'{"x":1}', {"authorization": "Bearer t"})
            second = await client.post("/v2/models/m/infer", b"{}", {})
        return first, second, state

    first, second, state = run(scenario())
    assert first == (200, {"content-length": "7"}, b'{"a":1}') and second[2] == b'{"b":2}'
    assert state.connections == 1
    head, _, body = state.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v2/models/m/infer HTTP/1.1" and body == b'{"x":1}'
    assert b"authorization: Bearer t" in lines and b"content-length: 7" in lines


def test_an_idle_connection_the_server_closed_is_retried_on_a_fresh_one():
    async def scenario():
        server, state, client = await serve([(ok(b"1"), True), (ok(b"2"), False)])
        async with server:
            await client.post("/p", b"", {})
            await asyncio.sleep(0.05)  # the server has closed the kept-alive connection
            answer = await client.post("/p", b"", {})
        return answer, state

    answer, state = run(scenario())
    assert answer[2] == b"2" and state.connections == 2


def test_connection_close_and_chunked_answers():
    chunked = (
        b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n"
        b"4\r\nnot \r\n5\r\nready\r\n0\r\n\r\n"
    )

    async def scenario():
        server, state, client = await serve([(ok(b"x", "connection: close\r\n"), True), (chunked, False)])
        async with server:
            first = await client.post("/p", b"", {})
            second = await client.post("/p", b"", {})
        return first, second, state

    first, second, state = run(scenario())
    assert first[2] == b"x" and (second[0], second[2]) == (503, b"not ready")
    assert state.connections == 2  # `connection: close` was honoured, not retried


def test_refused_connections_are_wire_errors_and_malformed_answers_are_not():
    async def scenario():
        server, _, client = await serve([(b"garbage\r\n\r\n", True)])
        async with server:
            with pytest.raises(MalformedAnswerError, match=r"not an HTTP/1\.1 answer: Expected HTTP/"):
                await client.post("/p", b"", {})
        server.close()
        await server.wait_closed()
        with pytest.raises(WireError, match="cannot connect"):
            await client.post("/p", b"", {})

    run(scenario())


def test_a_silent_server_times_out_and_its_connection_is_not_reused():
    async def scenario():
        async def silent(reader, writer):
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = KeepAliveClient(f"http://127.0.0.1:{port}", timeout_s=0.2)
        async with server:
            with pytest.raises(TimeoutError):
                await client.post("/p", b"", {})
            assert client._idle == []

    run(scenario())


def test_only_plain_http():
    with pytest.raises(ValueError, match="plain http"):
        KeepAliveClient("https://predictor:443", timeout_s=1)


STAY_OPEN = (b"", False)  # a next answer never asked for: the server keeps the connection open


def exchanges(script, requests: int = 2, timeout_s: float = 2):
    """Each of `requests` posts' answer (or the exception it raised), and the connections opened."""

    async def scenario():
        server, state, client = await serve(script)
        client.timeout_s = timeout_s
        answers = []
        async with server:
            for _ in range(requests):
                try:
                    answers.append(await client.post("/p", b"", {}))
                except (WireError, MalformedAnswerError, TimeoutError) as exc:
                    answers.append(exc)
        return answers, state.connections

    return run(scenario())


def test_repeated_headers_are_joined_not_overwritten():
    answer = b"HTTP/1.1 200 OK\r\nx-a: 1\r\nX-A: 2\r\ncontent-length: 1\r\n\r\nx"
    (first,), _ = exchanges([(answer, False)], requests=1)
    assert first[1]["x-a"] == "1, 2"  # RFC 9110 5.3: one field, values in order


@pytest.mark.parametrize(
    "framing",
    ["content-length: 5\r\ntransfer-encoding: chunked", "transfer-encoding: chunked\r\ncontent-length: 5"],
)
def test_content_length_beside_transfer_encoding_is_refused_and_the_connection_dropped(framing):
    smuggled = f"HTTP/1.1 200 OK\r\n{framing}\r\n\r\n".encode() + b"4\r\nabcd\r\n0\r\n\r\n"
    (first, second), connections = exchanges([(smuggled, False), (ok(b"next"), False)])
    assert isinstance(first, MalformedAnswerError) and "Content-Length" in str(first)  # never 5 bytes of it
    assert second[2] == b"next" and connections == 2  # the next request went out on a fresh connection


def test_a_close_delimited_body_is_read_to_the_end_and_the_connection_not_reused():
    (first, second), connections = exchanges([(b"HTTP/1.1 200 OK\r\n\r\nhello", True), (ok(b"2"), False)])
    assert first == (200, {}, b"hello") and second[2] == b"2" and connections == 2


def test_a_close_delimited_body_is_bounded():
    endless = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (BODY_LIMIT + 1)
    (first,), _ = exchanges([(endless, False), STAY_OPEN], requests=1)
    assert isinstance(first, MalformedAnswerError) and f"over {BODY_LIMIT} bytes" in str(first)


def test_a_chunk_is_bounded_whatever_size_it_declares():
    huge = f"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{16 * BODY_LIMIT:x}\r\n".encode()
    (first,), _ = exchanges([(huge + b"x" * (BODY_LIMIT + 1), False), STAY_OPEN], requests=1)
    assert isinstance(first, MalformedAnswerError) and f"over {BODY_LIMIT} bytes" in str(first)


def test_the_crlf_after_a_chunk_is_checked():
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcdXY0\r\n\r\n"
    (first, second), connections = exchanges([(answer, False), (ok(b"2"), False)])
    assert isinstance(first, MalformedAnswerError) and "after chunk data" in str(first)
    assert second[2] == b"2" and connections == 2


def test_the_head_is_bounded():
    long_head = b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"y" * HEAD_LIMIT + b"\r\n"  # and no end of head
    (first,), _ = exchanges([(long_head, False), STAY_OPEN], requests=1)
    assert isinstance(first, MalformedAnswerError) and f"head is over {HEAD_LIMIT} bytes" in str(first)


def test_bytes_past_the_answer_are_never_read_as_the_next_answer():
    (first, second), connections = exchanges([(ok(b"1") + ok(b"stray"), False), (ok(b"2"), False)])
    assert first[2] == b"1" and second[2] == b"2" and connections == 2


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"outputs":', "closed in its body, 51 bytes in"),
        (b"HTTP/1.1 200 OK\r\ncontent-le", "closed in its head, 27 bytes in"),
        (b"HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\n{}", "Invalid status code"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n{}", "Invalid character in Content-Length"),
    ],
)
def test_answers_cut_short_or_with_a_bad_status_line_or_length_are_malformed_answers(answer, says):
    (first, second), connections = exchanges([(answer, True), (ok(b"2"), False)])
    assert isinstance(first, MalformedAnswerError) and says in str(first)
    assert second[2] == b"2" and connections == 2  # the broken connection is never reused


def test_a_connection_closed_before_any_answer_is_a_wire_error():
    (first,), _ = exchanges([(b"", True)], requests=1)
    assert isinstance(first, WireError) and "before an answer" in str(first)
