"""Connection state recovery on the wire: raw packets (trio_rooms.testing's TestClient) over memory
streams, in virtual time, so that what the server writes, in which order, and when a session expires
are exact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms.errors import Disconnected
from trio_rooms.protocol.socketio import Packet, PacketType
from trio_rooms.testing import MemoryListener, TestClient, open_memory_server, open_test_client

DURATION = 30.0


class App:
    """Sockets join "room"; "bye" disconnects the socket from the server; reasons are recorded."""

    def __init__(self, recovery: trio_rooms.ConnectionStateRecovery | None) -> None:
        self.server = trio_rooms.Server(connection_state_recovery=recovery, ping_interval=5, ping_timeout=5)
        self.reasons: list[str] = []
        self.gone = trio.Event()
        self.sockets: list[trio_rooms.Socket] = []

        @self.server.on("connection")
        async def on_connection(socket: trio_rooms.Socket) -> None:
            self.sockets.append(socket)
            if not socket.recovered:
                socket.join("room")

            @socket.on("bye")
            async def bye() -> None:
                await socket.disconnect()

            @socket.on("disconnect")
            async def on_disconnect(reason: str) -> None:
                self.reasons.append(reason)
                self.gone.set()
                self.gone = trio.Event()


@asynccontextmanager
async def app_server(
    recovery: trio_rooms.ConnectionStateRecovery | None,
) -> AsyncIterator[tuple[App, MemoryListener]]:
    app = App(recovery)
    async with open_memory_server(app.server) as listener:
        yield app, listener


async def events(client: TestClient, count: int) -> list[Packet]:
    return [await client.receive() for _ in range(count)]


RECOVERY = trio_rooms.ConnectionStateRecovery(max_disconnection_duration=DURATION)


async def test_connect_reply_carries_a_pid_only_with_recovery(autojump_clock: trio.testing.MockClock) -> None:
    for recovery, keys in ((None, {"sid"}), (RECOVERY, {"sid", "pid"})):
        async with (
            app_server(recovery) as (_, listener),
            open_test_client(await listener.connect()) as client,
        ):
            reply = await client.connect()
            assert reply.type is PacketType.CONNECT and set(reply.data) == keys
            if recovery is not None:
                assert reply.data["pid"] != reply.data["sid"] and len(reply.data["pid"]) >= 20


async def test_which_packets_carry_an_offset(autojump_clock: trio.testing.MockClock) -> None:
    async with app_server(RECOVERY) as (app, listener), open_test_client(await listener.connect()) as client:
        await client.connect()
        server = app.server
        (socket,) = app.sockets
        await server.to("room").emit("stored", 1)
        await server.volatile.emit("volatile", 2)
        await socket.emit("direct", 3)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: server.timeout(1).emit_with_ack("acked", 4))
            stored, volatile, direct, acked = await events(client, 4)
            await client.send(Packet(PacketType.ACK, "/", [], acked.ack_id))
        assert stored.data[:2] == ["stored", 1] and len(stored.data) == 3 and isinstance(stored.data[2], str)
        assert volatile.data == ["volatile", 2]
        assert direct.data == ["direct", 3]
        assert acked.data == ["acked", 4] and acked.ack_id is not None


async def drop_after_an_event(app: App, client: TestClient) -> tuple[str, str, str]:
    """Connect, receive one stored broadcast, then stop answering pings: (sid, pid, offset)."""
    reply = await client.connect()
    await app.server.to("room").emit("m", 0)
    (first,) = await events(client, 1)
    client.answer_pings = False
    return reply.data["sid"], reply.data["pid"], first.data[-1]


async def test_ping_timeout_saves_the_session_and_the_missed_packets_follow_the_connect_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with app_server(RECOVERY) as (app, listener):
        async with open_test_client(await listener.connect()) as client:
            sid, pid, offset = await drop_after_an_event(app, client)
            await app.gone.wait()
            assert app.reasons == ["ping timeout"]
        for n in range(1, 4):
            await app.server.to("room").emit("m", n)
        await app.server.to("elsewhere").emit("m", 99)
        async with open_test_client(await listener.connect()) as again:
            reply = await again.connect(auth={"pid": pid, "offset": offset, "token": "t"})
            assert reply.type is PacketType.CONNECT and reply.data == {"sid": sid, "pid": pid}
            missed = await events(again, 3)  # right after the CONNECT reply, nothing before it
            assert [packet.data[:2] for packet in missed] == [["m", 1], ["m", 2], ["m", 3]]
            await app.server.to("room").emit("m", 4)
            (new,) = await events(again, 1)
            assert new.data[:2] == ["m", 4]
            socket = app.sockets[-1]
            assert socket.recovered and socket.id == sid and set(socket.rooms) == {sid, "room"}
            assert socket.handshake.auth == {"token": "t"}


async def test_expiry_is_exact(autojump_clock: trio.testing.MockClock) -> None:
    # Counted from the disconnect (10 s of heartbeat after the last event): the last event is then
    # older than the duration, and the client still recovers (Node's store would have forgotten its
    # offset), since no packet after it was dropped.
    for wait, recovered in ((DURATION - 0.5, True), (DURATION + 0.5, False)):
        async with app_server(RECOVERY) as (app, listener):
            async with open_test_client(await listener.connect()) as client:
                sid, pid, offset = await drop_after_an_event(app, client)
                await app.gone.wait()
            await trio.sleep(wait)
            async with open_test_client(await listener.connect()) as again:
                reply = await again.connect(auth={"pid": pid, "offset": offset})
                assert (reply.data["sid"] == sid) is recovered
                assert app.sockets[-1].recovered is recovered


@pytest.mark.parametrize("how", ["server disconnect", "client disconnect", "parse error"])
async def test_reasons_that_save_nothing(how: str, autojump_clock: trio.testing.MockClock) -> None:
    async with app_server(RECOVERY) as (app, listener):
        async with open_test_client(await listener.connect()) as client:
            reply = await client.connect()
            await app.server.to("room").emit("m", 0)
            (first,) = await events(client, 1)
            sid, pid, offset = reply.data["sid"], reply.data["pid"], first.data[-1]
            if how == "server disconnect":
                await client.emit("bye")
            elif how == "client disconnect":
                await client.send(Packet(PacketType.DISCONNECT, "/"))
            else:
                await client.send_raw("4garbage")
            await app.gone.wait()
            if how == "parse error":
                with pytest.raises(Disconnected):
                    await client.receive()
        expected = {
            "server disconnect": "server namespace disconnect",
            "client disconnect": "client namespace disconnect",
            "parse error": "parse error",
        }
        assert app.reasons == [expected[how]]
        async with open_test_client(await listener.connect()) as again:
            reply = await again.connect(auth={"pid": pid, "offset": offset})
            assert reply.data["sid"] != sid and not app.sockets[-1].recovered


@pytest.mark.parametrize(
    "auth",
    [
        {"offset": "x"},
        {"pid": "x"},
        {"pid": 1, "offset": "x"},
        {"pid": "x", "offset": None},
        {"pid": ["x"], "offset": {"a": 1}},
    ],
)
async def test_recovery_is_tried_only_when_pid_and_offset_are_strings(
    auth: dict[str, Any], autojump_clock: trio.testing.MockClock
) -> None:
    async with app_server(RECOVERY) as (app, listener):
        async with open_test_client(await listener.connect()) as client:
            sid, pid, offset = await drop_after_an_event(app, client)
            await app.gone.wait()
        broken = {key: (pid if value == "x" and key == "pid" else value) for key, value in auth.items()}
        async with open_test_client(await listener.connect()) as again:
            reply = await again.connect(auth=broken)
            assert reply.type is PacketType.CONNECT and reply.data["sid"] != sid
        # The session is still there for a well-formed attempt.
        async with open_test_client(await listener.connect()) as third:
            reply = await third.connect(auth={"pid": pid, "offset": offset})
            assert reply.data["sid"] == sid
