"""The outbound path of an ASGI WebSocket (``MessageLane``): the queued lane only, with ``Outbound``'s
bound and slow-consumer policy. Unit tests with a fake transport and the autojump clock, then the
policy end to end under Hypercorn's trio worker (in process, real TCP), as test_backpressure.py
checks it on the native server."""

from __future__ import annotations

import math
import socket as stdlib_socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing
from helpers.asgi_harness import require_hypercorn, serve_asgi

import trio_rooms
from trio_rooms.engine.lane import MessageLane
from trio_rooms.engine.pacing import BACKLOG
from trio_rooms.protocol import PacketType
from trio_rooms.protocol.encoded import Encoded, control
from trio_rooms.stats import Counters
from trio_rooms.testing import TestClient, open_test_client

PAYLOAD = "x" * 2000


class FakeTransport:
    """Records what the lane sends; ``gate`` (when set) makes every send wait for a permit."""

    def __init__(self, *, gated: bool = False) -> None:
        self.sent: list[str | bytes | tuple[str, int]] = []
        self.gate: trio.MemoryReceiveChannel[None] | None = None
        self.permits: trio.MemorySendChannel[None] | None = None
        if gated:
            self.permits, self.gate = trio.open_memory_channel[None](math.inf)

    async def send(self, segment: str | bytes) -> None:
        if self.gate is not None:
            await self.gate.receive()
        else:
            await trio.lowlevel.checkpoint()
        self.sent.append(segment)

    async def send_close(self, code: int) -> None:
        await trio.lowlevel.checkpoint()
        self.sent.append(("close", code))


def lane_of(transport: FakeTransport, counters: Counters, **kwargs: object) -> MessageLane:
    overflow = kwargs.pop("on_overflow", lambda: None)
    return MessageLane(
        transport.send,
        transport.send_close,
        on_overflow=overflow,  # type: ignore[arg-type]
        stats=counters,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_segments_go_out_one_message_each_in_order_then_the_close() -> None:
    transport = FakeTransport()
    lane = lane_of(transport, Counters())
    binary = Encoded(('451-["b",{"_placeholder":true,"num":0}]', b"\x00\x01"))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(lane.run)
            assert lane.deliver(control("4one"))
            assert lane.deliver(binary)
            await trio.testing.wait_all_tasks_blocked()
            assert lane.queued_bytes == 0  # the writer sent everything and parked
            assert lane.deliver(control("4two"))
            lane.close(1001)
            assert not lane.deliver(control("4late"))  # closed: dropped
            await lane.wait_closed()
    assert transport.sent == ["4one", *binary.segments, "4two", ("close", 1001)]


async def test_the_bound_drops_volatile_packets_and_closes_a_slow_consumer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = FakeTransport(gated=True)  # a peer that reads nothing until permitted
    counters = Counters()
    overflowed: list[bool] = []
    item = control("4" + "x" * 99)  # 102 bytes of frames
    lane = lane_of(transport, counters, max_queued_bytes=300, on_overflow=lambda: overflowed.append(True))
    async with trio.open_nursery() as nursery:
        await nursery.start(lane.run)
        for _ in range(3):
            assert lane.deliver(item)
        assert lane.queued_bytes == 306
        assert not lane.deliver(item, volatile=True)
        assert counters.volatile_dropped == 1 and not overflowed
        assert not lane.deliver(item)
        # The owner (the session) counts the slow consumer once; the lane only reports it.
        assert overflowed == [True] and counters.slow_consumers_closed == 0 and lane.closed
        assert not lane.deliver(item)
        assert overflowed == [True]
        # Closing flushes what was queued, within the deadline: a stuck peer is cut there.
        start = trio.current_time()
        lane.close(1000, deadline=start + 2)
        await lane.wait_closed()
        assert trio.current_time() - start == pytest.approx(2)
        assert lane.queued_bytes == 0
    assert transport.sent == []


async def test_wait_writable_waits_until_under_the_bound(autojump_clock: trio.testing.MockClock) -> None:
    transport = FakeTransport(gated=True)
    lane = lane_of(transport, Counters(), max_queued_bytes=200)
    item = control("4" + "y" * 99)
    async with trio.open_nursery() as nursery:
        await nursery.start(lane.run)
        lane.deliver(item)
        lane.deliver(item)
        released: list[float] = []

        async def waiter() -> None:
            await lane.wait_writable()
            released.append(trio.current_time())

        nursery.start_soon(waiter)
        await trio.sleep(1)
        assert released == []
        assert transport.permits is not None
        transport.permits.send_nowait(None)  # one message out: 102 bytes queued, under the bound
        await trio.testing.wait_all_tasks_blocked()
        assert released == [1.0]
        transport.permits.send_nowait(None)
        lane.close(1000)
        await lane.wait_closed()
    assert transport.sent == [item.segments[0], item.segments[0], ("close", 1000)]


async def test_a_failing_transport_ends_the_writer() -> None:
    async def broken(segment: str | bytes) -> None:
        await trio.lowlevel.checkpoint()
        raise OSError("gone")

    async def close(code: int) -> None:
        raise AssertionError("no close frame on a broken transport")

    lane = MessageLane(broken, close, on_overflow=lambda: None, stats=Counters())
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(lane.run)
            lane.deliver(control("4a"))
            await lane.wait_closed()
    assert lane.closed and lane.queued_bytes == 0
    assert not lane.deliver(control("4b"))


async def test_a_lane_past_half_its_bound_tells_broadcasters_the_writer_is_behind() -> None:
    transport = FakeTransport(gated=True)
    lane = lane_of(transport, Counters(), max_queued_bytes=100)
    BACKLOG.behind = False
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(lane.run)
            try:
                half = control("4" + "x" * 47)
                assert len(half.frames) == 50  # half the bound: not behind yet
                assert lane.deliver(half)
                assert not BACKLOG.behind
                assert lane.deliver(control("4y"))
                assert BACKLOG.behind
            finally:
                lane.abort()  # the writer waits at the gate, shielded: stop it whatever happened
    BACKLOG.behind = False


# -- end to end under Hypercorn ----------------------------------------------------------------------
@asynccontextmanager
async def serving(server: trio_rooms.Server) -> AsyncIterator[int]:
    require_hypercorn()
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_asgi, server)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def small_window_client(port: int) -> AsyncIterator[TestClient]:
    sock = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    async with open_test_client(trio.SocketStream(sock)) as client:
        assert (await client.connect()).type is PacketType.CONNECT
        yield client


async def test_order_holds_behind_a_queue_under_asgi() -> None:
    server = trio_rooms.Server(max_queued_bytes=64 * 1024 * 1024)
    count = 3000
    with trio.fail_after(30):
        async with serving(server) as port, small_window_client(port) as client:
            for i in range(count):
                await server.emit("n", i, PAYLOAD)
            assert server.stats()["queued_bytes"] > 0  # the peer stopped reading: queued
            received = [(await client.receive()).data[1] for _ in range(count)]
            assert received == list(range(count))
            assert server.stats()["slow_consumers_closed"] == 0


async def test_slow_consumer_is_closed_and_others_keep_receiving_under_asgi() -> None:
    server = trio_rooms.Server(max_queued_bytes=64 * 1024)
    reasons: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        socket.join("all")

        @socket.on("disconnect")
        async def gone(reason: str) -> None:
            reasons.append(reason)

    total = 3000
    with trio.fail_after(60):
        async with serving(server) as port, small_window_client(port) as stalled:
            healthy_stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with open_test_client(healthy_stream) as healthy:
                await healthy.connect()
                sent = 0
                got: list[int] = []
                async with trio.open_nursery() as nursery:

                    async def read_healthy() -> None:
                        while len(got) < total:
                            got.append((await healthy.receive()).data[1])

                    nursery.start_soon(read_healthy)
                    while server.stats()["slow_consumers_closed"] == 0 and sent < total:
                        await server.to("all").emit("n", sent, PAYLOAD)
                        sent += 1
                        await trio.lowlevel.checkpoint()
                    assert server.stats()["slow_consumers_closed"] == 1
                    for i in range(sent, total):
                        await server.to("all").emit("n", i, PAYLOAD)
                        await trio.lowlevel.checkpoint()
                assert got == list(range(total))
                with pytest.raises(trio_rooms.Disconnected):
                    while True:
                        await stalled.receive()
                await trio.testing.wait_all_tasks_blocked()
                assert reasons == ["slow consumer"]
                assert server.stats()["sockets"]["/"] == 1


async def test_volatile_packets_are_dropped_not_fatal_under_asgi() -> None:
    server = trio_rooms.Server(max_queued_bytes=64 * 1024)
    with trio.fail_after(30):
        async with serving(server) as port, small_window_client(port) as client:
            for i in range(3000):
                await server.volatile.emit("v", i, PAYLOAD)
            stats = server.stats()
            assert stats["volatile_dropped"] > 0
            assert stats["slow_consumers_closed"] == 0
            assert stats["queued_bytes"] < 64 * 1024 + len(PAYLOAD) + 64  # the bound, plus one frame
            numbers = [(await client.receive()).data[1] for _ in range(3000 - stats["volatile_dropped"])]
            assert numbers == sorted(numbers)
            await server.emit("end")
            assert (await client.receive()).data == ["end"]
