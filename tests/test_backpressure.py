"""The two-lane outbound path on real TCP: a peer that stops reading forces the channel lane;
ordering holds across the lanes; past ``max_queued_bytes`` the slow consumer is closed while a
healthy client keeps receiving; volatile packets are dropped instead."""

from __future__ import annotations

import socket as stdlib_socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing
from helpers.serving import serving_port

import trio_rooms
from trio_rooms.protocol import PacketType
from trio_rooms.testing import TestClient, open_test_client

PAYLOAD = "x" * 2000


@asynccontextmanager
async def small_window_client(port: int) -> AsyncIterator[TestClient]:
    sock = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    async with open_test_client(trio.SocketStream(sock)) as client:
        assert (await client.connect()).type is PacketType.CONNECT
        yield client


async def test_order_holds_across_fast_and_channel_lanes() -> None:
    server = trio_rooms.Server(max_queued_bytes=64 * 1024 * 1024)
    count = 3000
    with trio.fail_after(30):
        async with serving_port(server) as port, small_window_client(port) as client:
            await server.emit("n", -1, "first")
            assert server.stats()["queued_bytes"] == 0  # went out at once on the fast lane
            for i in range(count):
                await server.emit("n", i, PAYLOAD)
            assert server.stats()["queued_bytes"] > 0  # the peer stopped reading: channel lane
            received = []
            for _ in range(count + 1):
                packet = await client.receive()
                received.append(packet.data[1])
            assert received == [-1, *range(count)]
            assert server.stats()["slow_consumers_closed"] == 0


async def test_slow_consumer_is_closed_and_others_keep_receiving() -> None:
    server = trio_rooms.Server(max_queued_bytes=64 * 1024)
    reasons: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        socket.join("all")

        @socket.on("disconnect")
        async def gone(reason: str) -> None:
            reasons.append(reason)

    with trio.fail_after(30):
        async with serving_port(server) as port, small_window_client(port) as stalled:
            healthy_stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with open_test_client(healthy_stream) as healthy:
                await healthy.connect()
                sent = 0
                async with trio.open_nursery() as nursery:
                    got: list[int] = []

                    async def read_healthy() -> None:
                        while len(got) < 4000:
                            got.append((await healthy.receive()).data[1])

                    nursery.start_soon(read_healthy)
                    while server.stats()["slow_consumers_closed"] == 0 and sent < 4000:
                        await server.to("all").emit("n", sent, PAYLOAD)
                        sent += 1
                        await trio.lowlevel.checkpoint()
                    assert server.stats()["slow_consumers_closed"] == 1
                    for i in range(sent, 4000):
                        await server.to("all").emit("n", i, PAYLOAD)
                        await trio.lowlevel.checkpoint()
                assert got == list(range(4000))
                with pytest.raises(trio_rooms.Disconnected):
                    while True:
                        await stalled.receive()
                await trio.testing.wait_all_tasks_blocked()
                assert reasons == ["slow consumer"]
                assert server.stats()["sockets"]["/"] == 1


async def test_volatile_packets_are_dropped_not_fatal() -> None:
    server = trio_rooms.Server(max_queued_bytes=64 * 1024)
    with trio.fail_after(30):
        async with serving_port(server) as port, small_window_client(port) as client:
            for i in range(3000):
                await server.volatile.emit("v", i, PAYLOAD)
            stats = server.stats()
            assert stats["volatile_dropped"] > 0
            assert stats["slow_consumers_closed"] == 0
            assert stats["queued_bytes"] < 64 * 1024 + len(PAYLOAD) + 64  # the bound, plus one frame
            numbers = []
            for _ in range(3000 - stats["volatile_dropped"]):
                numbers.append((await client.receive()).data[1])
            assert numbers == sorted(numbers)
            await server.emit("end")
            assert (await client.receive()).data == ["end"]
