"""Worst-case inputs over real sockets (127.0.0.1): HTTP heads at the head limit, chunked bodies, long
query strings and headers, WebSocket frames by the thousand, and the worst Socket.IO packets at the
payload limit; the server answers each with its documented answer, and a client its server's worst.

Every test runs under a hang guard (``trio.fail_after(HANG_GUARD)``): a linear decoder meets it many
times over, a quadratic one cannot at the size limit. It is not a performance figure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
import trio.testing
from helpers.raw_clients import SIO_PATH, open_polling, post, sio_client
from helpers.worst_shapes import CONTINUATION as MORE
from helpers.worst_shapes import PING, TEXT, WS_SHAPES, polling_body, shape, websocket_messages, ws_frame
from test_abuse import exchange, handshake, status_of
from test_conformance import SLOW_PINGS, reference_server, serving

from trio_rooms.client.http import MAX_RESPONSE_HEAD, EngineClosed, HttpConnection, Target, TransportOptions
from trio_rooms.engine.h11io import MAX_REQUEST_HEAD_BYTES
from trio_rooms.engine.outbound import Outbound
from trio_rooms.engine.websocket import WebSocketReader
from trio_rooms.stats import Counters

#: The hang guard of every test, in seconds.
HANG_GUARD = 5.0
MAX_PAYLOAD = 1_000_000  # the Server's default max_payload
POLLING = b"/socket.io/?EIO=4&transport=polling"


def head_of_size(size: int) -> bytes:
    """A polling handshake GET whose head (request line to the blank line) is exactly ``size`` bytes."""
    start = b"GET " + POLLING + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


async def serve_default(nursery: trio.Nursery) -> int:
    """A ``trio_rooms.Server`` with its default limits (max_payload 1 MB); its port."""
    import trio_rooms

    server = trio_rooms.Server(close_timeout=0.2)  # a quick shutdown with polling sessions open
    listeners = await nursery.start(server.serve, "127.0.0.1", 0)
    port: int = listeners[0].socket.getsockname()[1]
    return port


# ------------------------------------------------------------------------------------------------
# HTTP heads
# ------------------------------------------------------------------------------------------------


async def test_request_head_limit_is_exact() -> None:
    """The head limit is MAX_REQUEST_HEAD_BYTES (16 KiB), not what one read adds to it: one byte more
    gets 431, as a 32,000-byte header does (h11 checks its limit only while a head is incomplete)."""
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await serve_default(nursery)
            at_limit = await exchange(port, head_of_size(MAX_REQUEST_HEAD_BYTES))
            over = await exchange(port, head_of_size(MAX_REQUEST_HEAD_BYTES + 1))
            big_header = await exchange(port, head_of_size(32_000 + 80))
            nursery.cancel_scope.cancel()
    assert status_of(at_limit) == 200
    assert status_of(over) == 431
    assert status_of(big_header) == 431


# ------------------------------------------------------------------------------------------------
# HTTP bodies
# ------------------------------------------------------------------------------------------------


def chunked_post(sid: str, body: bytes) -> bytes:
    head = f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
    return head.encode() + b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n" + body


async def test_chunk_size_lines_cost_linear_time() -> None:
    """h11's chunk-size pattern backtracks in time quadratic in the length of a line it does not match
    (a chunk extension of spaces before a bare LF): 32 such lines of 32 KB (1 MB in all, one per
    request) took about 16 s. Such a body breaks the session (the connection closes, no answer)."""
    line = b"1;" + b" " * 32_000 + b"\n\r\nx\r\n0\r\n\r\n"
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await serve_default(nursery)
            for _ in range(32):
                response = await exchange(port, chunked_post(await handshake(port), line))
                assert response == b""
            nursery.cancel_scope.cancel()


async def test_chunked_post_is_still_read() -> None:
    """Chunked bodies stay accepted: chunk sizes, short extensions and trailers, given to h11 in slices."""
    message = '42["e","' + "x" * 5000 + '"]'
    chunks = [message[i : i + 700].encode() for i in range(0, len(message), 700)]
    body = b"".join(b"%x;ext=%d\r\n%s\r\n" % (len(chunk), i, chunk) for i, chunk in enumerate(chunks))
    body += b"0\r\nX-Trailer: t\r\n\r\n"
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await serve_default(nursery)
            sid = await handshake(port)
            connect = await exchange(port, chunked_post(sid, b"2\r\n40\r\n0\r\n\r\n"))
            event = await exchange(port, chunked_post(sid, body))
            nursery.cancel_scope.cancel()
    assert (status_of(connect), connect.endswith(b"\r\n\r\nok")) == (200, True)
    assert (status_of(event), event.endswith(b"\r\n\r\nok")) == (200, True)


# ------------------------------------------------------------------------------------------------
# The client's HTTP side, against a hostile server
# ------------------------------------------------------------------------------------------------


@asynccontextmanager
async def answering(response: bytes) -> AsyncIterator[HttpConnection]:
    """A server on 127.0.0.1 that reads a request head and answers ``response`` (then closes); yields
    the client's ``HttpConnection`` to it."""

    async def handler(stream: trio.SocketStream) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            received += chunk
        await stream.send_all(response)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        target = Target(secure=False, host="127.0.0.1", port=port, path="/socket.io/")
        connection = HttpConnection(target, TransportOptions(transports=("polling",)))
        try:
            yield connection
        finally:
            await connection.aclose()
            nursery.cancel_scope.cancel()


def response_head_of_size(size: int) -> bytes:
    start = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: "
    return start + b"p" * (size - len(start) - 4) + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("size", "accepted"),
    [(MAX_RESPONSE_HEAD, True), (MAX_RESPONSE_HEAD + 1, False), (40_000, False)],
)
async def test_client_response_head_limit_is_exact(size: int, accepted: bool) -> None:
    """The client's response head limit is MAX_RESPONSE_HEAD (16 KiB); with 64 KiB reads, heads of up
    to 80 KiB got through."""
    with trio.fail_after(HANG_GUARD):
        async with answering(response_head_of_size(size) + b"ok") as connection:
            if accepted:
                assert await connection.request("GET", "/x", b"", timeout=HANG_GUARD) == (200, b"ok")
            else:
                with pytest.raises(EngineClosed, match="transport error"):
                    await connection.request("GET", "/x", b"", timeout=HANG_GUARD)


async def test_client_chunk_size_lines_cost_linear_time() -> None:
    """A server's chunk-size line that h11 does not match (spaces before a bare LF) took h11 time
    quadratic in its length: 64 KB, 3 s. The client refuses it at once (transport error)."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with trio.fail_after(HANG_GUARD):
        for _ in range(3):
            async with answering(head + b"1;" + b" " * 64_000 + b"\n\r\nx\r\n0\r\n\r\n") as connection:
                with pytest.raises(EngineClosed, match="transport error"):
                    await connection.request("GET", "/x", b"", timeout=HANG_GUARD)


async def test_client_reads_a_chunked_response() -> None:
    body = b"".join(b"%x;n=%d\r\n%s\r\n" % (300, i, b"y" * 300) for i in range(20)) + b"0\r\n\r\n"
    with trio.fail_after(HANG_GUARD):
        async with answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body) as connection:
            assert await connection.request("GET", "/x", b"", timeout=HANG_GUARD) == (200, b"y" * 6000)


# ------------------------------------------------------------------------------------------------
# WebSocket frames
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (ws_frame(PING, b"") * 10_000 + ws_frame(TEXT, b"4end"), "4end"),
        (
            ws_frame(TEXT, b"4", fin=False) + ws_frame(MORE, b"x", fin=False) * 8_000 + ws_frame(MORE, b"!"),
            "4x",
        ),
    ],
    ids=["pings", "fragments"],
)
async def test_websocket_reader_yields_within_one_read_of_tiny_frames(frames: bytes, expected: str) -> None:
    """One 64 KiB read can hold 10,000 tiny frames, which wsproto handles at several microseconds each:
    the reader yields to the other tasks every few dozen frames instead of holding the event loop for
    the whole read (~100 ms). Counted in scheduling turns, not in time."""
    client, server = trio.testing.memory_stream_pair()
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await trio.lowlevel.checkpoint()

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            outbound = Outbound(server, nursery=nursery, on_overflow=lambda: None, stats=Counters())
            reader = WebSocketReader(server, outbound, b"", max_message=1_000_000)
            await client.send_all(frames)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(other_task)
            message = await reader.receive()
            nursery.cancel_scope.cancel()
    assert isinstance(message, str) and message.startswith(expected)
    assert turns > 100, f"the other task ran {turns} times while 10,000 frames were handled"


def acked_echo(ack_id: int) -> bytes:
    return ws_frame(TEXT, b'42%d["message-with-ack",%d]' % (ack_id, ack_id))


@pytest.mark.parametrize("name", ["ws-ping-flood", "ws-fragmented-1-byte"])
async def test_websocket_floods_at_the_payload_limit(name: str) -> None:
    """1 MB of empty pings, or a message of 1-byte fragments: read, answered, and the connection keeps
    working (an echo sent after it is acknowledged)."""
    with trio.fail_after(HANG_GUARD):
        async with serving(reference_server(**SLOW_PINGS)) as port, sio_client(port) as client:
            await client.stream.send_all(WS_SHAPES[name](MAX_PAYLOAD - 100) + acked_echo(7))
            while (message := await client.recv_app()) != "437[7]":
                assert isinstance(message, str)


SOCKETIO_AT_THE_LIMIT = [
    "escaped-quotes-unclosed",
    "escaped-quotes-shallow",
    "backslash-run",
    "dense-shallow-brackets",
    "many-placeholders",
    "huge-ack-id",
]


@pytest.mark.parametrize("name", SOCKETIO_AT_THE_LIMIT)
async def test_worst_packets_at_the_payload_limit_over_websocket(name: str) -> None:
    """The worst Socket.IO packets just under max_payload: a refused one closes the connection (parse
    error), an accepted one leaves it working (the echo after it is acknowledged)."""
    worst = shape(name)
    frames = b"".join(
        ws_frame(TEXT, m.encode()) if isinstance(m, str) else ws_frame(0x2, m)
        for m in websocket_messages(worst.build(MAX_PAYLOAD - 100))
    )
    with trio.fail_after(HANG_GUARD):
        async with serving(reference_server(**SLOW_PINGS)) as port, sio_client(port) as client:
            await client.stream.send_all(frames + acked_echo(8))
            if worst.refused:
                _code, seen = await client.wait_closed()
                assert "438[8]" not in seen
            else:
                assert await client.recv_app() == "438[8]"


@pytest.mark.parametrize("name", SOCKETIO_AT_THE_LIMIT)
async def test_worst_packets_at_the_payload_limit_over_polling(name: str) -> None:
    worst = shape(name)
    body = polling_body(worst.build(MAX_PAYLOAD - 100))
    with trio.fail_after(HANG_GUARD):
        async with serving(reference_server(**SLOW_PINGS)) as port:
            sid = await open_polling(port, SIO_PATH)
            assert (await post(port, sid, "40", SIO_PATH)).text == "ok"
            response = await post(port, sid, body, SIO_PATH)
    assert response.status == (400 if worst.refused else 200)
