"""Connection state recovery on one server: the in-memory adapter's store (fake sockets, virtual time),
then our Trio Client against our Server on real TCP (127.0.0.1, port 0).

The stock JavaScript client's checks are in test_interop_recovery.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from helpers.fakes import FakeNamespace
from helpers.serving import serving_url
from hypothesis import given, settings
from hypothesis import strategies as st

import trio_rooms
from trio_rooms.adapter.memory import InMemoryAdapter
from trio_rooms.adapter.sessions import RecoveryStore
from trio_rooms.client import Client, open_client
from trio_rooms.client.state import ClientDisconnectReason
from trio_rooms.protocol.socketio import Packet, PacketType, event_packet
from trio_rooms.recovery import RECOVERABLE_REASONS, ConnectionStateRecovery, PersistedSession
from trio_rooms.types import BroadcastFlags, BroadcastOptions

RECOVERY = ConnectionStateRecovery(max_disconnection_duration=10.0, max_stored_packets=100)
TRANSPORTS = [
    pytest.param(("websocket",), id="websocket"),
    pytest.param(("polling", "websocket"), id="polling+upgrade"),
    pytest.param(("polling",), id="polling"),
]


def store_of(namespace: FakeNamespace) -> RecoveryStore:
    store = namespace.adapter._store
    assert isinstance(store, RecoveryStore)
    return store


def session(sid: str, *rooms: str, pid: str = "pid-1") -> PersistedSession:
    return PersistedSession(sid, pid, (sid, *rooms), {"name": sid})


# -- options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_disconnection_duration": 0},
        {"max_disconnection_duration": -1.0},
        {"max_disconnection_duration": True},
        {"max_stored_packets": 0},
        {"max_stored_packets": 1.5},
    ],
)
def test_invalid_options_raise(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ConnectionStateRecovery(**options)


def test_server_option_type_is_checked() -> None:
    with pytest.raises(TypeError):
        trio_rooms.Server(connection_state_recovery={"max_disconnection_duration": 1})  # type: ignore[arg-type]


def test_recoverable_reasons_are_nodes() -> None:
    assert {str(reason) for reason in RECOVERABLE_REASONS} == {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }


# -- the in-memory adapter's store ----------------------------------------------------------------------


async def test_off_nothing_is_stored_and_packets_are_unchanged() -> None:
    nsp = FakeNamespace()
    socket = nsp.connect("a", ["r"])
    await nsp.op.to("r").emit("m", 1, "two")
    assert nsp.adapter._store is None
    assert socket.events() == [("m", [1, "two"])]
    assert await nsp.adapter.restore_session("pid", "offset") is None


async def test_on_offsets_are_appended_to_stored_events_only() -> None:
    nsp = FakeNamespace(recovery=RECOVERY)
    socket = nsp.connect("a", ["r"])
    await nsp.op.to("r").emit("m", 1)
    await nsp.op.to("r").emit("m", 2)
    await nsp.op.volatile.emit("volatile", 3)
    with trio.move_on_after(0.01):  # acked: no offset, not stored (the ack is never answered here)
        await nsp.op.timeout(0.01).emit_with_ack("acked", 4)
    events = socket.events()
    (_, [one, offset1]), (_, [two, offset2]) = events[0], events[1]
    assert (one, two) == (1, 2)
    assert isinstance(offset1, str) and isinstance(offset2, str) and offset1 != offset2
    assert events[2] == ("volatile", [3])
    assert events[3] == ("acked", [4])
    assert len(store_of(nsp)) == 2


async def test_parent_broadcast_does_not_share_one_offset_list() -> None:
    # The packet given to the adapter is never changed in place: each store numbers its own copy.
    nsp = FakeNamespace(recovery=RECOVERY)
    packet = event_packet("/", "m", (1,))
    await nsp.adapter.broadcast(packet, BroadcastOptions())
    await nsp.adapter.broadcast(packet, BroadcastOptions())
    assert packet.data == ["m", 1]
    assert len(store_of(nsp)) == 2


async def test_restore_gives_missed_packets_for_the_sessions_rooms_in_order() -> None:
    nsp = FakeNamespace(recovery=RECOVERY)
    socket = nsp.connect("a", ["red"])
    nsp.connect("b", ["blue"])
    await nsp.op.to("red").emit("m", 0)
    offset = socket.events()[0][1][-1]
    await nsp.adapter.persist_session(session("a", "red"))
    await nsp.op.to("red").emit("m", 1)
    await nsp.op.to("blue").emit("m", 2)  # not for a
    await nsp.op.emit("m", 3)  # everyone
    await nsp.op.except_("red").emit("m", 4)  # a is left out
    await nsp.op.to("blue").except_("b").emit("m", 5)
    await nsp.op.to(["red", "blue"]).emit("m", 6)
    await nsp.op.except_("a").emit("m", 7)  # a's own room
    restored = await nsp.adapter.restore_session("pid-1", offset)
    assert restored is not None
    assert (restored.sid, restored.pid, restored.rooms, restored.data) == (
        "a",
        "pid-1",
        ("a", "red"),
        {"name": "a"},
    )
    numbers = [packet.data[1] for packet in restored.missed_packets]
    assert numbers == [1, 3, 6]
    assert all(
        packet.type is PacketType.EVENT and packet.ack_id is None for packet in restored.missed_packets
    )
    assert all(isinstance(packet.data[-1], str) for packet in restored.missed_packets)


async def test_a_pid_restores_once() -> None:
    nsp = FakeNamespace(recovery=RECOVERY)
    socket = nsp.connect("a")
    await nsp.op.emit("m", 0)
    offset = socket.events()[0][1][-1]
    await nsp.adapter.persist_session(session("a"))
    assert await nsp.adapter.restore_session("pid-1", offset) is not None
    assert await nsp.adapter.restore_session("pid-1", offset) is None  # Node's store would replay it
    assert store_of(nsp).session_count == 0


async def test_unknown_offsets_fail_and_consume_the_session() -> None:
    nsp = FakeNamespace(recovery=RECOVERY)
    other = FakeNamespace(recovery=RECOVERY)
    socket = nsp.connect("a")
    foreign = other.connect("x")
    await nsp.op.emit("m", 0)
    await other.op.emit("m", 0)
    good = socket.events()[0][1][-1]
    prefix, _, seq = good.partition(".")
    bad = [
        foreign.events()[0][1][-1],  # another store's offset
        f"{prefix}.{int(seq, 16) + 5:x}",  # not stored yet
        f"{prefix}.-1",
        f"{prefix}.zz",
        f"{prefix}.",
        prefix,
        "",
        good + "0" * 40,  # too long
        "x" * 100_000,
    ]
    for n, offset in enumerate(bad):
        await nsp.adapter.persist_session(session("a", pid=f"p{n}"))
        assert await nsp.adapter.restore_session(f"p{n}", offset) is None, offset
    assert store_of(nsp).session_count == 0
    assert await nsp.adapter.restore_session("unknown", good) is None


async def test_count_bound_drops_the_oldest_packets() -> None:
    nsp = FakeNamespace(recovery=ConnectionStateRecovery(max_stored_packets=3))
    socket = nsp.connect("a")
    for n in range(5):
        await nsp.op.emit("m", n)
    assert len(store_of(nsp)) == 3
    offsets = [args[-1] for _, args in socket.events()]
    await nsp.adapter.persist_session(session("a"))
    assert await nsp.adapter.restore_session("pid-1", offsets[0]) is None  # 1 is gone: cannot recover
    await nsp.adapter.persist_session(session("a"))
    restored = await nsp.adapter.restore_session("pid-1", offsets[1])  # 1 is gone, 2-4 are there
    assert restored is not None
    assert [packet.data[1] for packet in restored.missed_packets] == [2, 3, 4]


async def test_time_bound_expires_packets_and_sessions(autojump_clock: trio.testing.MockClock) -> None:
    nsp = FakeNamespace(recovery=ConnectionStateRecovery(max_disconnection_duration=5.0))
    socket = nsp.connect("a")
    await nsp.op.emit("m", 0)
    offset = socket.events()[0][1][-1]
    await nsp.adapter.persist_session(session("a"))
    await trio.sleep(4.9)
    await nsp.op.emit("m", 1)
    restored = await nsp.adapter.restore_session("pid-1", offset)
    assert restored is not None and [p.data[1] for p in restored.missed_packets] == [1]
    await nsp.adapter.persist_session(session("a"))
    await trio.sleep(5.1)
    assert await nsp.adapter.restore_session("pid-1", restored.missed_packets[-1].data[-1]) is None
    # Expired sessions go when others are saved; expired packets when others are stored.
    for n in range(3):
        await nsp.adapter.persist_session(session("a", pid=f"old{n}"))
    await trio.sleep(5.1)
    await nsp.adapter.persist_session(session("a", pid="new"))
    assert store_of(nsp).session_count == 1
    await nsp.op.emit("m", 2)
    assert len(store_of(nsp)) == 1


async def test_the_store_memory_stays_bounded_over_many_packets() -> None:
    nsp = FakeNamespace(recovery=ConnectionStateRecovery(max_stored_packets=10))
    nsp.connect("a", capacity=100_000)
    store = store_of(nsp)
    for n in range(5000):
        await nsp.adapter.broadcast(event_packet("/", "m", (n,)), BroadcastOptions(flags=BroadcastFlags()))
    assert len(store) == 10
    assert len(store._packets) < 2 * 1024 + 10  # the dead head is cut off as it grows


def test_memory_adapter_is_the_recovering_default() -> None:
    server = trio_rooms.Server(connection_state_recovery=RECOVERY)
    nsp = server.of("/chat")
    assert nsp.recovery is RECOVERY
    assert isinstance(nsp.adapter, InMemoryAdapter) and nsp.adapter._store is not None
    assert trio_rooms.Server().of("/").recovery is None


# -- end to end: our Trio client against our server ------------------------------------------------------


class App:
    """A server with recovery: sockets join "room" and keep a name in ``data`` on their first
    connection; the connection handler records each socket's (id, recovered) and its rooms."""

    def __init__(self, recovery: ConnectionStateRecovery, *, middleware: bool = False) -> None:
        self.server = trio_rooms.Server(connection_state_recovery=recovery)
        self.connections: list[tuple[str, bool, set[str], Any]] = []
        self.middleware_saw: list[bool] = []
        self.gone = trio.Event()
        self.reasons: list[str] = []

        if middleware:

            @self.server.use
            async def check(socket: trio_rooms.Socket) -> None:
                self.middleware_saw.append(socket.recovered)

        @self.server.on("connection")
        async def on_connection(socket: trio_rooms.Socket) -> None:
            if not socket.recovered:
                socket.join("room")
                socket.data["name"] = socket.handshake.auth.get("name")
            self.connections.append((socket.id, socket.recovered, set(socket.rooms), dict(socket.data)))

            @socket.on("disconnect")
            async def on_disconnect(reason: str) -> None:
                self.reasons.append(reason)
                self.gone.set()

    async def tick(self, n: int) -> None:
        await self.server.to("room").emit("tick", n)


async def drop(client: Client) -> None:
    """Close the client's transport abruptly (socket.io-client's ``socket.io.engine.close()``)."""
    engine = client._engine
    assert engine is not None
    engine.close(ClientDisconnectReason.TRANSPORT_CLOSE)
    await trio.lowlevel.checkpoint()


async def until(predicate: Any, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - polls state another task changes
            await trio.sleep(0.01)


def ticking(client: Client) -> list[Any]:
    received: list[Any] = []

    @client.on("tick")
    async def tick(n: int) -> None:  # binds: the offset was stripped
        received.append(n)

    return received


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_trio_client_recovers_missed_events_rooms_and_data(transports: tuple[str, ...]) -> None:
    app = App(RECOVERY)
    with trio.fail_after(20):
        async with serving_url(app.server) as url:
            options: dict[str, Any] = {
                "transports": transports,
                "reconnection_delay": 0.5,
                "randomization_factor": 0.0,
            }
            async with open_client(url, auth={"name": "ann"}, **options) as client:
                received = ticking(client)
                assert not client.recovered
                first_id = client.id
                await app.tick(0)
                await until(lambda: received == [0])
                await drop(client)
                await app.gone.wait()  # the server saw it go: what follows is missed
                assert app.reasons == ["transport close"]
                for n in range(1, 6):
                    await app.tick(n)
                await until(lambda: client.connected and len(received) >= 6)
                assert client.recovered
                assert client.id == first_id
                await app.tick(6)
                await until(lambda: len(received) >= 7)
                await trio.sleep(0.2)
                assert received == list(range(7))  # each once, in order
    first, again = app.connections
    assert first == (first_id, False, {first_id, "room"}, {"name": "ann"})
    assert again == (first_id, True, {first_id, "room"}, {"name": "ann"})


async def test_expired_session_gives_a_new_socket() -> None:
    app = App(ConnectionStateRecovery(max_disconnection_duration=0.3))
    with trio.fail_after(20):
        async with serving_url(app.server) as url:
            options: dict[str, Any] = {
                "transports": ("websocket",),
                "reconnection_delay": 1.0,
                "randomization_factor": 0.0,
            }
            async with open_client(url, auth={"name": "bob"}, **options) as client:
                received = ticking(client)
                first_id = client.id
                await app.tick(0)
                await until(lambda: received == [0])
                await drop(client)
                await app.gone.wait()
                await app.tick(1)  # lost: the session expires before the client is back
                await until(lambda: len(app.connections) == 2)
                await until(lambda: client.connected)
                assert not client.recovered
                assert client.id != first_id
                await app.tick(2)
                await until(lambda: received == [0, 2])
    assert [recovered for _, recovered, _, _ in app.connections] == [False, False]


async def test_explicit_disconnect_saves_nothing_and_a_pid_is_not_replayed() -> None:
    app = App(RECOVERY)
    with trio.fail_after(20):
        async with serving_url(app.server) as url:
            async with open_client(url, transports=("websocket",)) as client:
                received = ticking(client)
                await app.tick(0)
                await until(lambda: received == [0])
                pid, offset, first_id = client._recovery.pid, client._recovery.offset, client.id
                assert isinstance(pid, str) and isinstance(offset, str)
            await app.gone.wait()
            assert app.reasons == ["client namespace disconnect"]
            store = app.server.of("/").adapter._store  # type: ignore[attr-defined]
            assert store.session_count == 0
            # A client sending the old pid and offset gets a new socket.
            async with open_client(
                url, transports=("websocket",), auth={"pid": pid, "offset": offset}
            ) as again:
                assert again.id != first_id and not again.recovered
    assert [recovered for _, recovered, _, _ in app.connections] == [False, False]


@pytest.mark.parametrize("skip", [True, False])
async def test_middleware_is_skipped_only_on_a_successful_recovery(skip: bool) -> None:
    app = App(ConnectionStateRecovery(skip_middlewares=skip), middleware=True)
    with trio.fail_after(20):
        async with serving_url(app.server) as url:
            options: dict[str, Any] = {
                "transports": ("websocket",),
                "reconnection_delay": 0.3,
                "randomization_factor": 0.0,
            }
            async with open_client(url, **options) as client:
                received = ticking(client)
                await app.tick(0)
                await until(lambda: received == [0])
                await drop(client)
                await app.gone.wait()
                await app.tick(1)
                await until(lambda: client.connected and received == [0, 1])
                assert client.recovered
    assert app.middleware_saw == ([False] if skip else [False, True])


async def test_broadcasts_during_a_slow_middleware_are_not_lost() -> None:
    # skip_middlewares=False: what is broadcast while the middleware of a restored socket runs is
    # fetched before it connects (Node loses it).
    server = trio_rooms.Server(connection_state_recovery=ConnectionStateRecovery(skip_middlewares=False))
    in_middleware = trio.Event()
    release = trio.Event()
    gone = trio.Event()

    @server.use
    async def slow(socket: trio_rooms.Socket) -> None:
        if socket.recovered:
            in_middleware.set()
            await release.wait()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        if not socket.recovered:
            socket.join("room")

        @socket.on("disconnect")
        async def on_disconnect(reason: str) -> None:
            gone.set()

    with trio.fail_after(20):
        async with serving_url(server) as url:
            options: dict[str, Any] = {
                "transports": ("websocket",),
                "reconnection_delay": 0.2,
                "randomization_factor": 0.0,
            }
            async with open_client(url, **options) as client:
                received = ticking(client)
                await server.to("room").emit("tick", 0)
                await until(lambda: received == [0])
                await drop(client)
                await gone.wait()
                await server.to("room").emit("tick", 1)
                await in_middleware.wait()
                await server.to("room").emit("tick", 2)  # while the middleware runs
                release.set()
                await until(lambda: client.connected and len(received) >= 3)
                await server.to("room").emit("tick", 3)
                await until(lambda: len(received) >= 4)
                assert client.recovered
                assert received == [0, 1, 2, 3]


async def test_recovery_off_sends_no_pid_and_no_offsets() -> None:
    server = trio_rooms.Server()
    with trio.fail_after(10):
        async with serving_url(server) as url, open_client(url, transports=("websocket",)) as client:
            got: list[Any] = []

            @client.on("m")
            async def m(*args: Any) -> None:
                got.append(args)

            await server.emit("m", "a", "b")
            await until(lambda: got == [("a", "b")])
            assert client._recovery.pid is None


async def test_client_keeps_a_string_argument_of_an_acked_event() -> None:
    # Only events sent without an ack id carry an offset: an acked one keeps its last string.
    server = trio_rooms.Server(connection_state_recovery=RECOVERY)
    answers: list[Any] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        answers.append(await socket.emit_with_ack("ask", "x", "y"))

    with trio.fail_after(10):
        async with serving_url(server) as url, open_client(url, transports=("websocket",)) as client:

            @client.on("ask")
            async def ask(*args: Any) -> Any:
                return list(args)

            await until(lambda: answers == [["x", "y"]])


async def test_event_packet_of_the_store_is_a_plain_event() -> None:
    store = RecoveryStore(RECOVERY)
    numbered = store.record(Packet(PacketType.EVENT, "/chat", ["m", 1]), BroadcastOptions())
    assert numbered.nsp == "/chat" and numbered.ack_id is None and numbered.data[:2] == ["m", 1]


async def test_a_refused_recovery_saves_no_session_again() -> None:
    server = trio_rooms.Server(connection_state_recovery=ConnectionStateRecovery(skip_middlewares=False))
    gone = trio.Event()
    refused: list[str] = []

    @server.use
    async def refuse_recovered(socket: trio_rooms.Socket) -> None:
        if socket.recovered:
            refused.append(socket.id)
            raise trio_rooms.ConnectionRefused("log in again")

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("disconnect")
        async def on_disconnect(reason: str) -> None:
            gone.set()

    store = server.of("/").adapter._store  # type: ignore[attr-defined]
    with trio.fail_after(20):
        async with serving_url(server) as url:
            options: dict[str, Any] = {"transports": ("websocket",), "reconnection_delay": 0.2}
            async with open_client(url, **options) as client:
                errors: list[Any] = []

                @client.on("connect_error")
                async def connect_error(error: Any) -> None:
                    errors.append(error)

                first_id = client.id
                await server.emit("m", 0)
                await until(lambda: client._recovery.offset is not None)
                await drop(client)
                await gone.wait()
                assert store.session_count == 1
                await until(lambda: bool(errors))
                assert errors == [{"message": "log in again", "data": None}]
                assert refused == [first_id]
                assert store.session_count == 0


ROOMS = ("a", "b", "c", "me")


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 40),
    before=st.integers(1, 30),
    broadcasts=st.lists(
        st.tuples(st.sets(st.sampled_from(ROOMS)), st.sets(st.sampled_from(ROOMS))), max_size=60
    ),
    member_of=st.sets(st.sampled_from(ROOMS[:3])),
)
def test_restore_matches_a_model(
    count: int, before: int, broadcasts: list[tuple[set[str], set[str]]], member_of: set[str]
) -> None:
    # The socket "me" is in ``member_of``; it received ``before`` broadcasts to everyone, dropped, and
    # missed ``broadcasts``: it gets back exactly those for its rooms, in order, unless the count bound
    # dropped its offset.
    async def body() -> None:
        nsp = FakeNamespace(recovery=ConnectionStateRecovery(max_stored_packets=count))
        socket = nsp.connect("me", member_of, capacity=1000)
        for n in range(before):
            await nsp.op.emit("m", n)
        offset = socket.events()[-1][1][-1]
        rooms = ("me", *member_of)
        await nsp.adapter.persist_session(PersistedSession("me", "pid", rooms, {}))
        for n, (to, but) in enumerate(broadcasts):
            await nsp.adapter.broadcast(
                event_packet("/", "m", (1000 + n,)), BroadcastOptions(frozenset(to), frozenset(but))
            )
        restored = await nsp.adapter.restore_session("pid", offset)
        if len(broadcasts) > count:  # a packet after the last one received is no longer stored
            assert restored is None
            return
        assert restored is not None
        mine = set(rooms)
        expected = [
            1000 + n for n, (to, but) in enumerate(broadcasts) if (not to or mine & to) and not mine & but
        ]
        assert [packet.data[1] for packet in restored.missed_packets] == expected

    trio.run(body)


async def test_restore_after_the_list_was_compacted() -> None:
    nsp = FakeNamespace(recovery=ConnectionStateRecovery(max_stored_packets=1500))
    socket = nsp.connect("a", capacity=10_000)
    for n in range(5000):
        await nsp.op.emit("m", n)
    offsets = [args[-1] for _, args in socket.events()]
    await nsp.adapter.persist_session(session("a"))
    restored = await nsp.adapter.restore_session("pid-1", offsets[4000])
    assert restored is not None
    assert [packet.data[1] for packet in restored.missed_packets] == list(range(4001, 5000))
    await nsp.adapter.persist_session(session("a"))
    restored = await nsp.adapter.restore_session("pid-1", offsets[3499])  # its own packet is gone
    assert restored is not None and len(restored.missed_packets) == 1500
    await nsp.adapter.persist_session(session("a"))
    assert await nsp.adapter.restore_session("pid-1", offsets[3498]) is None  # 3499 is gone


async def test_a_quiet_room_recovers_however_old_its_last_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    nsp = FakeNamespace(recovery=ConnectionStateRecovery(max_disconnection_duration=5.0))
    socket = nsp.connect("a", ["quiet"])
    nsp.connect("b", ["busy"])
    await nsp.op.to("quiet").emit("m", 0)
    offset = socket.events()[0][1][-1]
    await trio.sleep(60)  # nothing for "quiet"; the store forgets its packet
    await nsp.op.to("busy").emit("m", 1)
    assert len(store_of(nsp)) == 1
    await nsp.adapter.persist_session(session("a", "quiet"))
    await trio.sleep(1)
    restored = await nsp.adapter.restore_session("pid-1", offset)
    assert restored is not None and restored.missed_packets == []
