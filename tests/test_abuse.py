"""Abusive clients get their documented answer while a healthy client keeps its latency: oversized
bodies, 10,000 headers, a request head that never ends, a held GET, a POST trickled a byte at a
time, garbage bytes, and 1,000 handshakes that never join a namespace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

import trio_rooms
from trio_rooms.protocol import PacketType
from trio_rooms.testing import open_test_client

#: The healthy client's worst echo round trip while an abuse runs (a generous bound: the point is
#: that nobody starves it, not a speed figure).
MAX_HEALTHY_RTT = 1.0


def build_server() -> trio_rooms.Server:
    server = trio_rooms.Server(
        max_payload=10_000,
        request_timeout=1.0,
        connect_timeout=1.5,
        close_timeout=0.5,
        ping_interval=1.0,
        ping_timeout=5.0,
    )

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("echo")
        async def echo(n: int) -> int:
            return n

    return server


@asynccontextmanager
async def healthy_client(port: int) -> AsyncIterator[list[float]]:
    """A WebSocket client echoing every 20 ms; yields its round-trip times."""
    rtts: list[float] = []
    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client_cm = open_test_client(stream)
        client = await client_cm.__aenter__()
        try:
            assert (await client.connect()).type is PacketType.CONNECT

            async def loop() -> None:
                for n in range(1_000_000):
                    start = trio.current_time()
                    await client.emit("echo", n, ack_id=n)
                    ack = await client.receive()
                    assert (ack.type, ack.ack_id, ack.data) == (PacketType.ACK, n, [n])
                    rtts.append(trio.current_time() - start)
                    await trio.sleep(0.02)

            nursery.start_soon(loop)
            yield rtts
        finally:
            # The loop first: a failure of the scenario is then reported as itself, not as the loop
            # writing to the client closed under it.
            nursery.cancel_scope.cancel()
            await client_cm.__aexit__(None, None, None)


@asynccontextmanager
async def scenario() -> AsyncIterator[tuple[trio_rooms.Server, int, list[float]]]:
    server = build_server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        async with healthy_client(port) as rtts:
            await trio.sleep(0.1)
            yield server, port, rtts
            count = len(rtts)
            await trio.sleep(0.1)
            assert len(rtts) > count, "the healthy client stopped getting answers"
        assert rtts and max(rtts) < MAX_HEALTHY_RTT, f"healthy client starved: max RTT {max(rtts):.3f} s"
        nursery.cancel_scope.cancel()


async def exchange(port: int, data: bytes, *, trickle: bytes = b"", pace: float = 0.0) -> bytes:
    """Send ``data``, then ``trickle`` one byte per ``pace`` seconds; return all that comes back."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        received = b""

        async def read() -> None:
            nonlocal received
            try:
                while chunk := await stream.receive_some(65536):
                    received += chunk
            except trio.BrokenResourceError:
                pass
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            try:
                await stream.send_all(data)
                for i in range(len(trickle)):
                    await trio.sleep(pace)
                    await stream.send_all(trickle[i : i + 1])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            await trio.sleep_forever()
        return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


async def handshake(port: int) -> str:
    response = await exchange(
        port, b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    body = response.partition(b"\r\n\r\n")[2]
    sid = json.loads(body[1:])["sid"]
    assert isinstance(sid, str)
    return sid


def post(sid: str, body: bytes, *, length: int | None = None) -> bytes:
    head = (
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


async def run(abuse: Callable[[trio_rooms.Server, int], Awaitable[None]]) -> None:
    with trio.fail_after(30):
        async with scenario() as (server, port, _rtts):
            await abuse(server, port)


async def test_oversized_post_body() -> None:
    async def abuse(server: trio_rooms.Server, port: int) -> None:
        sid = await handshake(port)
        declared = await exchange(port, post(sid, b"x" * 100, length=10_000_000))
        assert status_of(declared) in (400, 413)
        sid = await handshake(port)
        actual = await exchange(port, post(sid, b"4" + b"x" * 50_000))
        assert status_of(actual) in (400, 413)
        assert server.stats()["connections"] <= 3

    await run(abuse)


async def test_ten_thousand_headers() -> None:
    async def abuse(server: trio_rooms.Server, port: int) -> None:
        headers = b"".join(b"X-A%d: b\r\n" % i for i in range(10_000))
        response = await exchange(
            port, b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n" + headers + b"\r\n"
        )
        assert status_of(response) == 431
        assert response.endswith(b"Request Header Fields Too Large")

    await run(abuse)


async def test_request_head_that_never_ends() -> None:
    async def abuse(server: trio_rooms.Server, port: int) -> None:
        start = trio.current_time()
        response = await exchange(port, b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
        assert response == b""  # closed at the request deadline, no answer
        assert 0.9 < trio.current_time() - start < 3

    await run(abuse)


async def test_held_get_is_answered_by_the_heartbeat() -> None:
    async def abuse(server: trio_rooms.Server, port: int) -> None:
        sid = await handshake(port)
        get = f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
        get += "Host: x\r\nConnection: close\r\n\r\n"
        start = trio.current_time()
        response = await exchange(port, get.encode())
        assert status_of(response) == 200 and response.endswith(b"\r\n\r\n2")
        assert 0.9 < trio.current_time() - start < 2

    await run(abuse)


async def test_post_trickled_one_byte_at_a_time() -> None:
    async def abuse(server: trio_rooms.Server, port: int) -> None:
        sid = await handshake(port)
        start = trio.current_time()
        response = await exchange(port, post(sid, b"", length=100), trickle=b"40" * 50, pace=0.2)
        elapsed = trio.current_time() - start
        assert elapsed < 3, "a trickled request must be cut at the request deadline"
        assert status_of(response) == 408

    await run(abuse)


async def test_garbage_bytes() -> None:
    async def abuse(server: trio_rooms.Server, port: int) -> None:
        response = await exchange(port, bytes(range(256)) * 4 + b"\r\n\r\n")
        assert status_of(response) == 400
        assert await exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200) != b"ok"

    await run(abuse)


async def test_thousand_handshakes_that_never_join_a_namespace() -> None:
    async def abuse(server: trio_rooms.Server, port: int) -> None:
        peak = 0
        async with trio.open_nursery() as nursery:
            for _ in range(20):

                async def worker() -> None:
                    nonlocal peak
                    for _ in range(50):
                        await handshake(port)
                        peak = max(peak, server.stats()["connections"])

                nursery.start_soon(worker)
        assert server.stats()["connections_total"] >= 1001
        assert peak > 1
        for _ in range(100):  # 10 s at most
            if server.stats()["connections"] <= 1:  # the healthy client stays
                break
            await trio.sleep(0.1)
        assert server.stats()["connections"] == 1

    await run(abuse)
