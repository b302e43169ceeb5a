"""Lifecycle on in-process memory streams, in virtual time (autojump_clock): heartbeat, timeouts,
teardown order, cancellation cleanup, handler dispatch and acks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import trio_rooms
from trio_rooms.protocol import EnginePacketType, Packet, PacketType
from trio_rooms.testing import MemoryListener, TestClient, open_memory_server, open_test_client


@asynccontextmanager
async def client_of(listener: MemoryListener, *, answer_pings: bool = True) -> AsyncIterator[TestClient]:
    async with open_test_client(await listener.connect(), answer_pings=answer_pings) as client:
        yield client


def live_tasks(name_part: str) -> list[trio.lowlevel.Task]:
    found: list[trio.lowlevel.Task] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if name_part in task.name:
            found.append(task)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    walk(root)
    return found


async def test_open_packet_advertises_exact_milliseconds() -> None:
    server = trio_rooms.Server(ping_interval=0.3, ping_timeout=0.2, max_payload=12345)
    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            info = client.open_info
            assert info is not None
            assert (info.ping_interval_ms, info.ping_timeout_ms, info.max_payload) == (300, 200, 12345)
            assert info.upgrades == ()


async def test_dead_client_dropped_at_exactly_interval_plus_timeout(autojump_clock: trio.abc.Clock) -> None:
    server = trio_rooms.Server(ping_interval=25, ping_timeout=20)
    seen: list[tuple[str, float]] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("disconnect")
        async def gone(reason: str) -> None:
            seen.append((reason, trio.current_time()))

    with trio.fail_after(500):
        async with open_memory_server(server) as listener, client_of(listener, answer_pings=False) as client:
            start = trio.current_time()
            assert (await client.connect()).type is PacketType.CONNECT
            ping = await client.receive_engine()
            assert ping.type is EnginePacketType.PING
            assert trio.current_time() - start == pytest.approx(25)
            with pytest.raises(trio_rooms.Disconnected):
                while True:
                    await client.receive_engine()
            assert [reason for reason, _ in seen] == ["ping timeout"]
            assert seen[0][1] == pytest.approx(start + 45)


async def test_client_answering_pings_stays(autojump_clock: trio.abc.Clock) -> None:
    server = trio_rooms.Server(ping_interval=25, ping_timeout=20)
    with trio.fail_after(1000):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            await client.connect()
            for _ in range(10):
                assert (await client.receive_engine()).type is EnginePacketType.PING
            await client.emit("nothing")
            assert server.stats()["sockets"]["/"] == 1


async def test_connect_timeout_closes_idle_connection(autojump_clock: trio.abc.Clock) -> None:
    server = trio_rooms.Server(connect_timeout=7, ping_interval=100, ping_timeout=100)
    with trio.fail_after(50):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            start = trio.current_time()
            with pytest.raises(trio_rooms.Disconnected):
                await client.receive()
            assert trio.current_time() - start == pytest.approx(7)


async def test_teardown_order_and_cleanup_without_leftover_tasks() -> None:
    server = trio_rooms.Server()
    events: list[Any] = []
    sockets: list[trio_rooms.Socket] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        sockets.append(socket)
        socket.join(["a", "b"])

        @socket.on("disconnecting")
        async def disconnecting(reason: str) -> None:
            events.append(("disconnecting", reason, set(socket.rooms)))

        @socket.on("disconnect")
        async def disconnect(reason: str) -> None:
            events.append(("disconnect", reason, set(socket.rooms)))

        @socket.on("forever")
        async def forever() -> None:
            try:
                await trio.sleep_forever()
            finally:
                events.append("handler cancelled")

    with trio.fail_after(5):
        async with open_memory_server(server) as listener:
            async with client_of(listener) as client:
                await client.connect()
                await client.emit("forever")
                await trio.testing.wait_all_tasks_blocked()
                sid = sockets[0].id
                assert set(server.adapter.sids[sid]) == {sid, "a", "b"}
                assert live_tasks("_dispatch")
            await trio.testing.wait_all_tasks_blocked()
            assert events == [
                "handler cancelled",
                ("disconnecting", "transport close", {sid, "a", "b"}),
                ("disconnect", "transport close", set()),
            ]
            assert sid not in server.adapter.sids
            assert not server.adapter.rooms
            assert not server.of("/").sockets
            assert not live_tasks("Socket.run") and not live_tasks("_dispatch")
            assert not live_tasks("_handle_stream")
            sockets[0].join("late")
            assert "late" not in server.adapter.rooms


async def test_server_shutdown_disconnects_with_reason() -> None:
    server = trio_rooms.Server()
    reasons: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        socket.join("r")

        @socket.on("disconnect")
        async def disconnect(reason: str) -> None:
            await trio.lowlevel.checkpoint()  # handlers may await during shutdown
            reasons.append(reason)

    with trio.fail_after(5):
        listener = MemoryListener()
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_listeners, [listener])
            async with open_test_client(await listener.connect()) as client:
                await client.connect()
                nursery.cancel_scope.cancel()
    assert reasons == ["server shutting down"]
    assert not server.adapter.rooms and not server.adapter.sids


async def test_cancelling_the_connection_cleans_membership() -> None:
    server = trio_rooms.Server()
    joined = trio.Event()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        socket.join(["x", "y"])
        joined.set()

    with trio.fail_after(5):
        async with open_memory_server(server) as listener:
            async with trio.open_nursery() as nursery:

                async def connect_and_hang() -> None:
                    async with client_of(listener) as client:
                        await client.connect()
                        await trio.sleep_forever()

                nursery.start_soon(connect_and_hang)
                await joined.wait()
                assert "x" in server.adapter.rooms
                nursery.cancel_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert not server.adapter.rooms and not server.adapter.sids


async def test_events_wait_for_connection_handlers_and_run_in_order() -> None:
    server = trio_rooms.Server()
    order: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("e")
        async def e(n: int) -> int:
            order.append(f"event {n}")
            return n * 2

        await trio.sleep(0.05)
        order.append("connected")

    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            await client.send(Packet(PacketType.CONNECT))
            await client.emit("e", 1, ack_id=1)
            await client.emit("e", 2, ack_id=2)
            packets = [await client.receive() for _ in range(3)]
    assert order == ["connected", "event 1", "event 2"]
    assert packets[0].type is PacketType.CONNECT
    assert [(p.type, p.ack_id, p.data) for p in packets[1:]] == [
        (PacketType.ACK, 1, [2]),
        (PacketType.ACK, 2, [4]),
    ]


@pytest.mark.parametrize(
    ("result", "expected"),
    [(None, []), (5, [5]), ((1, "a", None), [1, "a", None]), ((), []), ([1, 2], [[1, 2]])],
)
async def test_handler_return_value_is_the_ack(result: Any, expected: list[Any]) -> None:
    server = trio_rooms.Server()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("q")
        async def q() -> Any:
            return result

    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            await client.connect()
            await client.emit("q", ack_id=9)
            ack = await client.receive()
    assert (ack.type, ack.ack_id, ack.data) == (PacketType.ACK, 9, expected)


async def test_handler_error_and_unbindable_args_keep_the_socket(caplog: pytest.LogCaptureFixture) -> None:
    server = trio_rooms.Server()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("boom")
        async def boom() -> None:
            raise KeyError("oops")

        @socket.on("one")
        async def one(x: int) -> int:
            return x

    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            await client.connect()
            await client.emit("boom", ack_id=1)
            await client.emit("one", 1, 2, 3, ack_id=2)
            await client.emit("one", 7, ack_id=3)
            ack = await client.receive()
    assert (ack.ack_id, ack.data) == (3, [7])
    assert "KeyError" in caplog.text and "do not bind" in caplog.text


async def test_events_in_flight_are_bounded() -> None:
    server = trio_rooms.Server(max_events_in_flight=2)
    running = 0
    peak = 0
    release = trio.Event()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("slow")
        async def slow() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1

    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            await client.connect()
            for _ in range(5):
                await client.emit("slow")
            await trio.testing.wait_all_tasks_blocked()
            assert running == 2
            release.set()
            await trio.testing.wait_all_tasks_blocked()
    assert peak == 2 and running == 0


async def test_server_emit_with_ack_answer_timeout_and_disconnect(autojump_clock: trio.abc.Clock) -> None:
    server = trio_rooms.Server(ping_interval=1000, ping_timeout=1000)
    results: list[Any] = []
    got_socket: list[trio_rooms.Socket] = []
    connected = trio.Event()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        got_socket.append(socket)
        connected.set()

    with trio.fail_after(100):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            await client.connect()
            await connected.wait()
            socket = got_socket[0]
            async with trio.open_nursery() as nursery:

                async def ask() -> None:
                    results.append(await socket.emit_with_ack("question", 1, timeout=5))

                nursery.start_soon(ask)
                question = await client.receive()
                assert question.data == ["question", 1]
                assert question.ack_id is not None
                await client.send(Packet(PacketType.ACK, "/", ["x", 2], question.ack_id))
            assert results == [("x", 2)]
            with pytest.raises(trio_rooms.AckTimeout):
                await socket.emit_with_ack("question", 2, timeout=5)
            async with trio.open_nursery() as nursery:

                async def ask_then_fail() -> None:
                    with pytest.raises(trio_rooms.Disconnected):
                        await socket.emit_with_ack("question", 3, timeout=50)
                    results.append("disconnected")

                nursery.start_soon(ask_then_fail)
                await client.receive()
                await client.receive()
                await client.send(Packet(PacketType.DISCONNECT))
            assert results[-1] == "disconnected"
            with pytest.raises(trio_rooms.Disconnected):
                await socket.emit("after")


async def test_namespaces_refusal_and_invalid_namespace() -> None:
    server = trio_rooms.Server()
    admin = server.of("/admin")

    @admin.use
    async def check(socket: trio_rooms.Socket) -> None:
        if socket.handshake.auth.get("token") != "ok":
            raise trio_rooms.ConnectionRefused("not authorized", {"code": 42})

    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            refused = await client.connect("/admin", {"token": "no"})
            assert (refused.type, refused.data) == (
                PacketType.CONNECT_ERROR,
                {"message": "not authorized", "data": {"code": 42}},
            )
            unknown = await client.connect("/nope")
            assert (unknown.type, unknown.data) == (
                PacketType.CONNECT_ERROR,
                {"message": "Invalid namespace"},
            )
            ok = await client.connect("/admin", {"token": "ok"})
            assert ok.type is PacketType.CONNECT and isinstance(ok.data["sid"], str)
            main = await client.connect("/")
            assert main.type is PacketType.CONNECT and main.data["sid"] != ok.data["sid"]
            assert len(main.data["sid"]) >= 22
            # DISCONNECT of every namespace keeps the Engine.IO connection open.
            await client.send(Packet(PacketType.DISCONNECT, "/admin"))
            await client.send(Packet(PacketType.DISCONNECT, "/"))
            again = await client.connect("/")
            assert again.type is PacketType.CONNECT
            assert server.stats()["sockets"] == {"/": 1, "/admin": 0}


async def test_dynamic_namespace_shares_parent_handlers() -> None:
    import re

    server = trio_rooms.Server()
    parent = server.of(re.compile(r"^/dyn-\d+$"))
    seen: list[str] = []

    @parent.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        seen.append(socket.nsp.name)

    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            assert (await client.connect("/dyn-1")).type is PacketType.CONNECT
            assert (await client.connect("/dyn-22")).type is PacketType.CONNECT
            assert (await client.connect("/dyn-x")).type is PacketType.CONNECT_ERROR
            await parent.emit("hello", 1)
            got = {(await client.receive()).nsp for _ in range(2)}
    assert seen == ["/dyn-1", "/dyn-22"]
    assert got == {"/dyn-1", "/dyn-22"}
    assert server.of("/dyn-1") is server.of("/dyn-1")


@pytest.mark.parametrize(
    "message",
    [
        '42["x"]',  # event before CONNECT
        "4/bad",  # malformed
        "47",  # unknown packet type
        '44{"message":"x"}',  # CONNECT_ERROR from a client
        "40",  # second CONNECT (the test connects "/" first)
        '42["connect"]',  # reserved event name
    ],
)
async def test_malformed_packets_close_the_connection(message: str) -> None:
    server = trio_rooms.Server()
    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            if message != '42["x"]':
                await client.connect()
            await client.send_raw(message)
            with pytest.raises(trio_rooms.Disconnected):
                while True:
                    await client.receive()
    assert server.stats()["protocol_errors"] == 1


async def test_server_disconnect_sends_disconnect_packet() -> None:
    server = trio_rooms.Server()
    reasons: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("kick")
        async def kick() -> None:
            await socket.disconnect()

        @socket.on("disconnect")
        async def gone(reason: str) -> None:
            reasons.append(reason)

    with trio.fail_after(5):
        async with open_memory_server(server) as listener, client_of(listener) as client:
            await client.connect()
            await client.emit("kick")
            packet = await client.receive()
            assert packet.type is PacketType.DISCONNECT
            # The connection stays: the client may connect again.
            assert (await client.connect()).type is PacketType.CONNECT
    assert reasons == ["server namespace disconnect", "transport close"]


async def test_stuck_disconnecting_handler_cannot_keep_membership(autojump_clock: trio.abc.Clock) -> None:
    server = trio_rooms.Server(teardown_timeout=3, ping_interval=1000, ping_timeout=1000)
    ended: list[float] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        socket.join("stuck")

        @socket.on("disconnecting")
        async def never_returns(reason: str) -> None:
            try:
                await trio.sleep_forever()
            finally:
                ended.append(trio.current_time())

    emptied = trio.Event()
    server.adapter.on("delete-room", lambda room: emptied.set() if room == "stuck" else None)
    with trio.fail_after(100):
        async with open_memory_server(server) as listener:
            async with client_of(listener) as client:
                await client.connect()
                await trio.testing.wait_all_tasks_blocked()
                assert "stuck" in server.adapter.rooms
                start = trio.current_time()
            await emptied.wait()
            assert trio.current_time() == pytest.approx(start + 3)
            await trio.testing.wait_all_tasks_blocked()
            assert ended == [pytest.approx(start + 3)]
            assert not server.adapter.sids and not server.of("/").sockets
