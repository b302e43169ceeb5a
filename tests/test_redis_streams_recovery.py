"""RedisStreamsAdapter, in process, on a real Redis: the stream's entries (Node's format), offsets,
sessions and the replay of missed broadcasts across servers (``persist_session``/``restore_session``).

Two adapters on one stream stand for two servers (each its own bus and reader, as two processes have);
their sockets are ``tests/helpers/fakes.py``'s. Real time (Redis): every wait is under ``trio.fail_after``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgpack  # type: ignore[import-untyped,unused-ignore]
import pytest
import trio
from helpers.fakes import FakeNamespace, FakeSocket
from helpers.raw_clients import ws_session
from test_mixed_cluster import NODE_SCRIPT, require_node, spawned
from test_redis_adapter import member

from trio_rooms.adapter.base import BroadcastFlags, BroadcastOptions
from trio_rooms.adapter.redis import RedisStreamsAdapter
from trio_rooms.errors import AdapterError
from trio_rooms.protocol.cluster.streams import offset_key
from trio_rooms.protocol.socketio import PacketType, event_packet
from trio_rooms.recovery import ConnectionStateRecovery, PersistedSession

STEP = 5.0
RECOVERY = ConnectionStateRecovery(max_disconnection_duration=30.0)


class Member:
    """One server: a fake namespace whose adapter is a RedisStreamsAdapter with its own connections."""

    def __init__(self, url: str, stream: str, *, recovery: bool = True, **options: Any) -> None:
        self.nsp = FakeNamespace("/")
        self.nsp.recovery = RECOVERY if recovery else None
        self.adapter = RedisStreamsAdapter(
            self.nsp, url=url, stream_name=stream, channel_prefix=stream, block_time=0.5, **options
        )
        self.nsp.adapter = self.adapter  # type: ignore[assignment]

    def connect(self, sid: str, rooms: list[str]) -> FakeSocket:
        return self.nsp.connect(sid, rooms)

    async def emit(self, rooms: list[str], *args: Any, **flags: Any) -> None:
        opts = BroadcastOptions(
            frozenset(rooms), frozenset(flags.pop("except_rooms", ())), BroadcastFlags(**flags)
        )
        await self.adapter.broadcast(event_packet("/", "news", args), opts)


@asynccontextmanager
async def servers(url: str, count: int = 2, **options: Any) -> AsyncIterator[list[Member]]:
    stream = f"streams-{uuid.uuid4().hex[:8]}"
    members = [Member(url, stream, **options) for _ in range(count)]
    async with trio.open_nursery() as nursery:
        for m in members:
            await nursery.start(m.adapter.run)
        # started: the bus subscribed and the reader found where the stream ends
        assert all(m.adapter.connected and m.adapter.stats()["stream_connected"] for m in members)
        yield members
        nursery.cancel_scope.cancel()


async def received(socket: FakeSocket, count: int) -> list[list[Any]]:
    """The arguments of the next ``count`` events of ``socket``."""
    found: list[list[Any]] = []
    with trio.fail_after(STEP):
        while len(found) < count:
            packet = await socket.next_packet()
            assert packet.type is PacketType.EVENT
            found.append(list(packet.data[1:]))
    return found


async def redis_call(url: str, *args: Any) -> Any:
    import coredis

    async with coredis.Redis.from_url(url) as redis:
        return await redis.create_request(args[0], *args[1:], callback=lambda r, **_: r)


async def test_offsets_are_entry_ids_here_and_on_the_other_server(redis_url: str) -> None:
    async with servers(redis_url) as (a, b):
        here, there = a.connect("here-socket", ["r"]), b.connect("there-socket", ["r"])
        await a.emit(["r"], "one")
        await b.emit(["r"], "two")
        (one_here, two_here), (one_there, two_there) = await received(here, 2), await received(there, 2)
        assert one_here == one_there and two_here == two_there
        assert one_here[0] == "one" and two_here[0] == "two"
        entries = await redis_call(redis_url, b"XRANGE", a.adapter.stream_name, b"-", b"+")
        ids = [entry[0].decode() for entry in entries]
        assert [one_here[-1], two_here[-1]] == ids
        fields = dict(zip(entries[0][1][::2], entries[0][1][1::2], strict=True))
        assert fields[b"uid"] == a.adapter.uid.encode() and fields[b"nsp"] == b"/" and fields[b"type"] == b"3"
        assert json.loads(fields[b"data"]) == {
            "packet": {"type": 2, "data": ["news", "one"], "nsp": "/"},
            "opts": {"rooms": ["r"], "except": [], "flags": {}},
        }
        # volatile and acked broadcasts get no offset; recovery off: none at all
        await a.emit(["r"], "volatile", volatile=True)
        assert await received(there, 1) == [["volatile"]]
        assert await received(here, 1) == [["volatile"]]
        a.nsp.recovery = None
        await a.emit(["r"], "plain")
        assert await received(here, 1) == [["plain"]]


async def test_binary_entries_are_base64_msgpack(redis_url: str) -> None:
    async with servers(redis_url) as (a, b):
        there = b.connect("there-socket", [])
        await a.emit([], b"\x00\x01", {"k": b"v"})
        ((blob, obj, offset),) = await received(there, 1)
        assert (blob, obj) == (b"\x00\x01", {"k": b"v"})
        entries = await redis_call(redis_url, b"XRANGE", a.adapter.stream_name, offset, offset)
        fields = dict(zip(entries[0][1][::2], entries[0][1][1::2], strict=True))
        data = msgpack.unpackb(base64.b64decode(fields[b"data"]))
        assert data["packet"]["data"] == ["news", b"\x00\x01", {"k": b"v"}]


async def test_session_recovers_on_another_server_with_what_it_missed(redis_url: str) -> None:
    async with servers(redis_url) as (a, b):
        socket = a.connect("dropping-socket", ["r"])
        socket.data["name"] = "alice"
        watcher = b.connect("watcher", ["r", "s"])
        await b.emit(["r"], "before")
        ((_, last_seen),) = await received(socket, 1)
        await received(watcher, 1)
        # the transport drops: the server saves the session, the socket goes
        rooms = tuple(sorted(socket.rooms))
        await a.adapter.persist_session(PersistedSession(socket.id, "pid-1", rooms, {"name": "alice"}))
        socket.go_away()
        await b.emit(["r"], "missed 1")
        await b.emit(["s"], "other room")
        await a.emit(["r"], "missed 2 (from a)")
        await b.emit([], "everyone", except_rooms=["r"])
        await b.emit(["r"], "volatile", volatile=True)
        await b.emit([socket.id], "private")
        await received(watcher, 4)  # the watcher is in r and s, not excepted from the r-excepting one
        restored = await b.adapter.restore_session("pid-1", last_seen)
        assert restored is not None
        assert (restored.sid, restored.pid, restored.rooms, restored.data) == (
            socket.id,
            "pid-1",
            rooms,
            {"name": "alice"},
        )
        missed = [packet.data for packet in restored.missed_packets]
        assert [data[:-1] for data in missed] == [
            ["news", "missed 1"],
            ["news", "missed 2 (from a)"],
            ["news", "private"],
        ]
        assert all(
            packet.type is PacketType.EVENT and packet.nsp == "/" for packet in restored.missed_packets
        )
        offsets = [data[-1] for data in missed]
        assert offsets == sorted(offsets, key=lambda o: tuple(map(int, o.split("-"))))
        # a pid is restored once
        assert await b.adapter.restore_session("pid-1", last_seen) is None
        assert b.adapter.stats()["sessions_restored"] == 1


async def test_what_cannot_be_restored(redis_url: str) -> None:
    async with servers(redis_url, max_len=1) as (a, b):
        socket = a.connect("s1", ["r"])
        await a.emit(["r"], "first")
        ((_, offset),) = await received(socket, 1)
        session = PersistedSession(socket.id, "pid-2", ("r", socket.id), {})
        assert await b.adapter.restore_session("no-such-pid", offset) is None
        for bad in ("", "abc", "1-2-3", "-1-0", "1-", "99999999999999999999999-0"):
            await a.adapter.persist_session(session)
            assert await b.adapter.restore_session("pid-2", bad) is None
        # the offset's entry trimmed away (MAXLEN ~ 1 trims whole nodes: add many entries)
        await a.adapter.persist_session(session)
        for index in range(300):
            await a.emit(["elsewhere"], index)
        assert await b.adapter.restore_session("pid-2", offset) is None
        # the session expires
        b.nsp.recovery = a.nsp.recovery = ConnectionStateRecovery(max_disconnection_duration=0.05)
        await a.emit(["r"], "fresh")
        (_, fresh) = (await received(socket, 1))[0]
        await a.adapter.persist_session(session)
        await trio.sleep(0.2)
        assert await b.adapter.restore_session("pid-2", fresh) is None
        # recovery off: nothing stored, nothing restored
        a.nsp.recovery = b.nsp.recovery = None
        await a.adapter.persist_session(session)
        assert await redis_call(redis_url, b"EXISTS", b"sio:session:pid-2") == 0
        assert await b.adapter.restore_session("pid-2", fresh) is None
        with pytest.raises(AdapterError):
            a.nsp.recovery = RECOVERY
            await a.adapter.persist_session(PersistedSession("x", "y", (), {"bad": object()}))


async def test_a_replay_is_bounded(redis_url: str) -> None:
    """A server whose max_len is small does not replay more than twice that (plus the trimming slack) of
    a stream that another server trims less: the socket gets a new session instead."""
    stream = f"streams-{uuid.uuid4().hex[:8]}"
    a, b = Member(redis_url, stream), Member(redis_url, stream, max_len=5)
    async with trio.open_nursery() as nursery:
        for m in (a, b):
            await nursery.start(m.adapter.run)
        socket, watcher = a.connect("s1", ["r"]), b.nsp.connect("watcher", ["r"], capacity=400)
        await a.emit(["r"], "seen")
        ((_, offset),) = await received(socket, 1)
        session = PersistedSession(socket.id, "pid-b", ("r", socket.id), {})
        await a.adapter.persist_session(session)
        for index in range(100):
            await a.emit(["r"], index)
        await received(watcher, 101)  # b has read them all: its replay may go that far
        restored = await b.adapter.restore_session("pid-b", offset)
        assert restored is not None and len(restored.missed_packets) == 100  # 100 <= 2 * 5 + 200
        await a.adapter.persist_session(session)
        for index in range(150):
            await a.emit(["r"], index)
        await received(watcher, 150)
        assert await b.adapter.restore_session("pid-b", offset) is None  # 250 > 210
        assert b.adapter.stats()["sessions_missing"] == 1
        nursery.cancel_scope.cancel()


async def test_a_session_as_node_stores_it(redis_url: str) -> None:
    """A session written as ``@socket.io/redis-streams-adapter`` writes it is restored here."""
    async with servers(redis_url) as (a, b):
        socket = a.connect("node-like", ["r"])
        await a.emit(["r"], "seen")
        ((_, offset),) = await received(socket, 1)
        node_session = {
            "sid": "node-sid-0000000000",
            "pid": "node-pid",
            "rooms": ["node-sid-0000000000", "r"],
            "data": {"n": 1},
        }
        value = base64.b64encode(msgpack.packb(node_session))
        await redis_call(redis_url, b"SET", b"sio:session:node-pid", value, b"PX", 10_000)
        await a.emit(["r"], "missed")
        restored = await b.adapter.restore_session("node-pid", offset)
        assert restored is not None
        assert (restored.sid, restored.rooms, restored.data) == (
            "node-sid-0000000000",
            ("node-sid-0000000000", "r"),
            {"n": 1},
        )
        assert [p.data[:-1] for p in restored.missed_packets] == [["news", "missed"]]
        # and ours as Node reads it: base64 of a msgpack map {sid, pid, rooms, data}
        await b.adapter.persist_session(PersistedSession("sid-x", "pid-x", ("sid-x", "r"), {"k": [1, "2"]}))
        stored = await redis_call(redis_url, b"GET", b"sio:session:pid-x")
        assert msgpack.unpackb(base64.b64decode(stored)) == {
            "sid": "sid-x",
            "pid": "pid-x",
            "rooms": ["sid-x", "r"],
            "data": {"k": [1, "2"]},
        }


async def test_restore_from_entries_written_by_node(redis_url: str) -> None:
    """A Node socket.io 4.8 server with ``@socket.io/redis-streams-adapter`` 0.3 broadcasts on the stream;
    our reader delivers its entries with their ids as offsets, and a session restores with them."""
    node = require_node()
    key = f"node-streams-{uuid.uuid4().hex[:8]}"
    n0 = spawned("n0", key, [node, str(NODE_SCRIPT), "n0", redis_url, key, "--streams"])
    try:
        ours = Member(redis_url, key)
        async with trio.open_nursery() as nursery:
            await nursery.start(ours.adapter.run)
            socket, watcher = ours.connect("dropping", ["r"]), ours.connect("watcher", ["r"])
            await ours.emit(["r"], "seen")
            ((_, offset),) = await received(socket, 1)
            await received(watcher, 1)
            await ours.adapter.persist_session(PersistedSession(socket.id, "pid-n", ("r", socket.id), {}))
            socket.go_away()
            async with member(n0, "driver", []) as driver:
                for rooms, args in ((["r"], ["from node"]), (["elsewhere"], ["not r"]), (["r"], [b"\x01"])):
                    assert await driver.call("do_broadcast", rooms, [], "news", *args) == "ok"
                live = await received(watcher, 2)
            assert [args[:-1] for args in live] == [["from node"], [b"\x01"]]
            restored = await ours.adapter.restore_session("pid-n", offset)
            assert restored is not None
            assert [p.data for p in restored.missed_packets] == [["news", *args] for args in live]
            entries = await redis_call(redis_url, b"XRANGE", key, b"-", b"+")
            node_ids = [
                e[0].decode()
                for e in entries
                if dict(zip(e[1][::2], e[1][1::2], strict=True))[b"uid"] != ours.adapter.uid.encode()
            ]
            assert [args[-1] for args in live] == [node_ids[0], node_ids[2]]
            nursery.cancel_scope.cancel()
    finally:
        n0.stop()


async def test_restore_a_session_a_node_server_saved(redis_url: str) -> None:
    """A client of a Node socket.io 4.8 server (``@socket.io/redis-streams-adapter`` 0.3, recovery on)
    drops; the session Node saved in Redis is restored here, with what was broadcast meanwhile."""
    node = require_node()
    key = f"node-session-{uuid.uuid4().hex[:8]}"
    argv = [node, str(NODE_SCRIPT), "n0", redis_url, key, "--streams", "--recovery", "10000"]
    n0 = spawned("n0", key, argv)
    try:
        ours = Member(redis_url, key)
        async with trio.open_nursery() as nursery:
            await nursery.start(ours.adapter.run)
            with trio.fail_after(STEP):
                async with ws_session(n0.port, "/socket.io/") as (ws, _open):
                    await ws.send('40{"name":"nell","rooms":["r"]}')
                    connected = await ws.recv_app()
                    assert isinstance(connected, str) and connected.startswith("40{")
                    reply = json.loads(connected[2:])
                    sid, pid = reply["sid"], reply["pid"]
                    await ws.send('421["do_broadcast",["r"],[],"news","before"]')
                    seen = [await ws.recv_app(), await ws.recv_app()]
                    (event,) = [json.loads(m[2:]) for m in seen if isinstance(m, str) and m.startswith("42")]
                    assert event[:2] == ["news", "before"]
                    offset = event[-1]
                    await trio.aclose_forcefully(ws.stream)  # abruptly: Node saves the session
                    stored = f"sio:session:{pid}".encode()
                    while not await redis_call(redis_url, b"EXISTS", stored):  # noqa: ASYNC110
                        await trio.sleep(0.02)  # Node's side: nothing to wait on but the next look
            await ours.emit(["r"], "missed")
            await ours.emit(["elsewhere"], "not for nell")
            restored = await ours.adapter.restore_session(pid, offset)
            assert restored is not None
            assert (restored.sid, restored.pid) == (sid, pid)
            assert sorted(restored.rooms) == sorted([sid, "r"])
            assert restored.data == {"name": "nell", "server": "n0"}
            assert [p.data[:-1] for p in restored.missed_packets] == [["news", "missed"]]
            assert await redis_call(redis_url, b"EXISTS", stored) == 0  # taken: a pid restores once
            nursery.cancel_scope.cancel()
    finally:
        n0.stop()


async def test_a_restore_under_load_misses_nothing_and_repeats_nothing(redis_url: str) -> None:
    """Broadcasts keep coming (from the other server and from this one, two tasks) while a session is
    restored: what the replay gives and what then arrives live, once the socket is back in its rooms
    (no checkpoint between), is every broadcast of each sender once, in order."""
    count = 150
    async with servers(redis_url) as (a, b):
        socket = a.connect("mover", ["r"])
        await a.emit(["r"], "start", -1)
        ((_, _, offset),) = await received(socket, 1)
        await a.adapter.persist_session(PersistedSession(socket.id, "pid-load", ("r", socket.id), {}))
        socket.go_away()
        back: list[FakeSocket] = []
        missed: list[list[Any]] = []

        midway = trio.Event()

        async def emitter(member: Member, name: str) -> None:
            for index in range(count):
                await member.emit(["r"], name, index)
                if index == count // 3:
                    midway.set()

        async def restore() -> None:
            await midway.wait()
            restored = await b.adapter.restore_session("pid-load", offset)
            assert restored is not None
            back.append(b.nsp.connect(restored.sid, restored.rooms, capacity=10 * count))  # no checkpoint
            missed.extend(packet.data[1:] for packet in restored.missed_packets)

        async with trio.open_nursery() as nursery:
            for member, name in ((a, "a"), (b, "b1"), (b, "b2")):
                nursery.start_soon(emitter, member, name)
            nursery.start_soon(restore)
        (again,) = back
        await trio.sleep(0.3)  # the last entries read by b's reader
        live = [packet.data[1:] for packet in again.packets()]
        got = missed + live
        for name in ("a", "b1", "b2"):
            assert [args[1] for args in got if args[0] == name] == list(range(count)), name
        offsets = [offset_key(args[-1]) for args in got]
        assert len(set(offsets)) == len(offsets) == 3 * count
        assert missed and live, "the restore happened mid-load"


async def test_a_server_shutting_down_saves_its_sessions_for_another_server(redis_url: str) -> None:
    """Cancelling ``serve`` tears the sockets down while the adapter's Redis link still runs: each
    session is saved ("server shutting down" is recoverable), and a client recovers on the next server
    (a rolling restart)."""
    import trio_rooms

    recovery = ConnectionStateRecovery()

    def cluster_member() -> trio_rooms.Server:
        server = trio_rooms.Server(
            adapter=RedisStreamsAdapter.factory(url=redis_url), connection_state_recovery=recovery
        )

        @server.on("connection")
        async def on_connection(socket: trio_rooms.Socket) -> None:
            if not socket.recovered:
                socket.join("news")

        return server

    first, second = cluster_member(), cluster_member()
    scope, stopped = trio.CancelScope(), trio.Event()

    async def serve_first(task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
        with scope:
            await first.serve("127.0.0.1", 0, task_status=task_status)
        stopped.set()

    headlines: list[str] = []
    first_headline = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as servers:
            listeners = await servers.start(serve_first)
            port = listeners[0].socket.getsockname()[1]
            options: dict[str, Any] = {"reconnection_delay": 0.2, "randomization_factor": 0.0}
            async with trio_rooms.open_client(f"http://127.0.0.1:{port}", **options) as client:

                @client.on("headline")
                async def on_headline(text: str) -> None:
                    headlines.append(text)
                    first_headline.set()

                await first.to("news").emit("headline", "one")
                await first_headline.wait()
                first_id = client.id
                scope.cancel()
                await stopped.wait()
                await servers.start(second.serve, "127.0.0.1", port)
                await second.to("news").emit("headline", "two")
                while not (client.connected and (client.recovered or client.id != first_id)):  # noqa: ASYNC110
                    await trio.sleep(0.01)  # the client's state, changed by its own tasks
                assert client.recovered and client.id == first_id
                while len(headlines) < 2:  # noqa: ASYNC110 - the replay follows the CONNECT
                    await trio.sleep(0.01)
            servers.cancel_scope.cancel()
    assert headlines == ["one", "two"]
