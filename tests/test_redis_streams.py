"""RedisStreamsAdapter: a cluster of two trio_rooms servers (separate processes,
tests/helpers/cluster_server.py --streams) on a real Redis.

Clients connect to both servers over TCP; each check drives one server through its clients' events and
asserts what every client receives, and what the stream holds. Real time throughout (subprocesses and
Redis): every wait is bounded by ``trio.fail_after``. Also: bad entries and messages, Redis going away.
"""

from __future__ import annotations

import base64
import json
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import msgpack  # type: ignore[import-untyped,unused-ignore]
import pytest
import trio
import trio.testing
from helpers.redis_fixtures import RedisServer
from test_redis_adapter import (
    STEP,
    ServerProcess,
    _empty,
    _now,
    broadcasts_survive_a_redis_outage,
    burst_while_redis_restarts,
    member,
    members,
    quiet,
    room,
    start_servers,
    two_servers_on_one_factory,
    until,
)

from trio_rooms import RedisStreamsAdapter
from trio_rooms.adapter.base import BroadcastFlags, BroadcastOptions
from trio_rooms.adapter.redis.caller import Caller
from trio_rooms.errors import AdapterError
from trio_rooms.protocol.cluster.model import Broadcast, ServerSideEmit, ServerSideEmitResponse, SocketsJoin
from trio_rooms.protocol.cluster.streams import StreamsWire, is_offset, next_offset, replays_to
from trio_rooms.protocol.socketio import Packet, PacketType

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")


def start_streams_servers(url: str, count: int = 2) -> list[ServerProcess]:
    """``count`` cluster servers on the Redis Streams adapter, sharing one stream."""
    return start_servers(url, count, ("--streams",))


@pytest.fixture(scope="module")
def streams_cluster(redis_url: str) -> Iterator[list[ServerProcess]]:
    """Two servers sharing one stream (and channel prefix) on the session's Redis."""
    servers = start_streams_servers(redis_url)
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


async def redis_command(url: str, *args: Any) -> Any:
    import coredis

    async with coredis.Redis.from_url(url) as redis:
        return await redis.create_request(args[0], *args[1:], callback=lambda r, **_: r)


async def stream_entries(url: str, stream: str) -> list[tuple[str, dict[bytes, bytes]]]:
    found = await redis_command(url, b"XRANGE", stream, b"-", b"+")
    return [(entry[0].decode(), dict(zip(entry[1][::2], entry[1][1::2], strict=True))) for entry in found]


async def test_broadcasts_reach_rooms_on_both_servers_once(streams_cluster: list[ServerProcess]) -> None:
    s0, s1 = streams_cluster
    r1, r2, r3 = room("r1"), room("r2"), room("r3")
    async with members((s0, "a", [r1, r2]), (s1, "b", [r2]), (s1, "c", [r1, r3]), (s0, "d", [])) as (
        a,
        b,
        c,
        d,
    ):
        assert await d.call("do_broadcast", [r1, r2], [], "news", "union") == "ok"
        for m in (a, b, c):
            await m.wait_for("news")
        assert await a.call("do_broadcast", [r3], [], "other", "only c") == "ok"
        await c.wait_for("other")
        assert await b.call("do_broadcast", [], [r2], "private", "not r2") == "ok"
        await c.wait_for("private")
        await d.wait_for("private")
        # socket.to(room): the sender is left out, on both servers
        assert await a.call("do_socket_to", r1, "seq", "from a") == "ok"
        await c.wait_for("seq")
        # a binary argument crosses too (base64 of msgpack in the stream)
        assert await c.call("do_broadcast", [r2], [], "other", b"\x00\xff") == "ok"
        await a.wait_for("other")
        await b.wait_for("other")
        await quiet()
        assert [m.got("news") for m in (a, b, c, d)] == [[["union"]]] * 3 + [[]]
        assert a.got("other") == b.got("other") == [[b"\x00\xff"]]
        assert c.got("other") == [["only c"]]
        assert [len(m.got("private")) for m in (a, b, c, d)] == [0, 0, 1, 1]
        assert a.got("seq") == [] and c.got("seq") == [["from a"]]


async def test_the_stream_holds_nodes_entries(streams_cluster: list[ServerProcess], redis_url: str) -> None:
    s0, s1 = streams_cluster
    r1 = room("r1")
    async with members((s0, "a", [r1]), (s1, "b", [])) as (a, b):
        marker = uuid.uuid4().hex
        assert await b.call("do_broadcast", [r1], [], "news", marker) == "ok"
        await a.wait_for("news")
        assert await b.call("do_sockets", "join", [r1], "joined") == "ok"
        assert await b.call("do_sockets", "leave", [r1], "joined") == "ok"
        entries = await stream_entries(redis_url, s0.key)
        (broadcast,) = [fields for _id, fields in entries if marker.encode() in fields[b"data"]]
        assert set(broadcast) == {b"uid", b"nsp", b"type", b"data"}
        assert (broadcast[b"nsp"], broadcast[b"type"]) == (b"/", b"3")
        assert json.loads(broadcast[b"data"]) == {
            "packet": {"type": 2, "data": ["news", marker], "nsp": "/"},
            "opts": {"rooms": [r1], "except": [], "flags": {}},
        }
        join, leave = (fields for _id, fields in entries[-2:])
        assert (join[b"type"], leave[b"type"]) == (b"4", b"5")
        assert json.loads(join[b"data"]) == {
            "opts": {"rooms": [r1], "except": [], "flags": {}},
            "rooms": ["joined"],
        }


async def test_remote_join_leave_and_disconnect(streams_cluster: list[ServerProcess]) -> None:
    s0, s1 = streams_cluster
    r1, r7 = room("r1"), room("r7")
    async with members((s0, "a", [r1]), (s1, "b", []), (s1, "c", [r1])) as (a, b, c):
        assert await b.call("do_sockets", "join", [r1], r7) == "ok"

        async def a_and_c_in_r7() -> bool:
            return [f["data"]["name"] for f in await b.call("do_fetch", [r7])] == ["a", "c"]

        await until(a_and_c_in_r7)
        assert await a.call("do_broadcast", [r7], [], "news", "in r7") == "ok"
        await c.wait_for("news")
        assert await b.call("do_sockets", "leave", [r1], r7) == "ok"
        await until(lambda: _empty(a.call("do_fetch", [r7])))
        # one socket, from the other server
        assert await b.call("do_remote", a.id, "join", r7) == "ok"

        async def a_in_r7() -> bool:
            return [f["id"] for f in await b.call("do_fetch", [r7])] == [a.id]

        await until(a_in_r7)
        assert await b.call("do_remote", a.id, "disconnect", None) == "ok"
        await until(lambda: _now(a.disconnects))
        assert a.disconnects == ["io server disconnect"]
        assert await b.call("do_sockets", "disconnect", [r1], False) == "ok"
        await until(lambda: _now(c.disconnects))
        assert not b.disconnects


async def test_fetch_sockets_acks_server_side_emit_and_count(streams_cluster: list[ServerProcess]) -> None:
    s0, s1 = streams_cluster
    r1 = room("r1")
    async with members((s0, "a", [r1]), (s1, "b", [r1]), (s1, "c", [])) as (a, b, c):
        found = await c.call("do_fetch", [r1])
        assert [(f["id"], f["data"], f["auth"]["name"]) for f in found] == [
            (a.id, {"name": "a", "server": "s0"}, "a"),
            (b.id, {"name": "b", "server": "s1"}, "b"),
        ]
        assert await c.call("do_ack_broadcast", [r1], 3.0) == {"timeout": False, "answers": ["a", "b"]}
        assert await a.call("do_ack_broadcast", [], 3.0) == {"timeout": False, "answers": ["a", "b", "c"]}
        marker = uuid.uuid4().hex
        assert await a.call("do_server_side_emit", "hello", False, 0, marker) == "ok"

        async def s1_got_it() -> bool:
            return ["hello", marker] in await b.call("do_server_events")

        await until(s1_got_it)
        assert ["hello", marker] not in await a.call("do_server_events")
        result = await b.call("do_server_side_emit", "hello", True, 3.0, "ack?")
        assert result == {"timeout": False, "answers": ["hello from s0"]}
        with trio.fail_after(STEP):
            assert await a.call("do_server_side_emit", "silent", True, 1.0) == {
                "timeout": True,
                "answers": [],
            }
        info = await b.call("do_info")
        assert info["server_count"] == 2
        assert {r1, a.id, b.id, c.id} <= set(info["all_rooms"])
        assert info["stats"]["connected"] == info["stats"]["stream_connected"] == 1
        async with member(s0, "mute", [r1], mute=True):
            with trio.fail_after(STEP):
                result = await c.call("do_ack_broadcast", [r1], 1.0)
            assert result == {"timeout": True, "answers": ["a", "b"]}


async def test_bad_entries_and_messages_are_ignored_and_counted(
    streams_cluster: list[ServerProcess], redis_url: str
) -> None:
    s0, s1 = streams_cluster
    async with members((s0, "a", []), (s1, "b", [])) as (a, b):
        before = (await a.call("do_info"))["stats"]
        key = s0.key
        good_json = json.dumps({"packet": {"type": 2, "data": ["news", "x"]}, "opts": {}})
        bad_entries: list[list[bytes | str]] = [
            ["uid", "x", "nsp", "/", "type", "3", "data", "{not json"],
            ["uid", "x", "nsp", "/", "type", "3", "data", "!!!not base64!!!"],
            ["uid", "x", "nsp", "/", "type", "3", "data", base64.b64encode(msgpack.packb([1, 2]))],
            ["uid", "x", "nsp", "/", "type", "42", "data", good_json],
            ["uid", "x", "nsp", "/", "type", "three", "data", good_json],
            ["nsp", "/", "type", "3", "data", good_json],  # no uid
            ["uid", "x", "nsp", "/", "type", "3", "data", json.dumps({"packet": "no", "opts": {}})],
            ["uid", "x", "nsp", "/", "type", "3", "data", "\xff\xfe"],
        ]
        ignored_entries: list[list[bytes | str]] = [
            ["uid", "x", "type", "3", "data", good_json],  # no namespace: not a message (as Node)
            ["uid", "x", "nsp", "/elsewhere", "type", "3", "data", good_json],
        ]
        for fields in bad_entries + ignored_entries:
            await redis_command(redis_url, b"XADD", key, b"*", *fields)
        for channel, data in [
            (f"{key}#/#", b"\xc1garbage"),
            (f"{key}#/#", msgpack.packb({"not": "a message"})),
            (f"{key}#/#", msgpack.packb({"uid": "x", "nsp": "/", "type": 99})),
        ]:
            await redis_command(redis_url, b"PUBLISH", channel, data)

        async def counted() -> bool:
            stats = (await a.call("do_info"))["stats"]
            return bool(stats["invalid"] - before["invalid"] >= len(bad_entries) + 3)

        await until(counted)
        stats = (await a.call("do_info"))["stats"]
        assert stats["stream_invalid"] - before["stream_invalid"] == len(bad_entries)
        assert (stats["connected"], stats["stream_connected"]) == (1, 1)
        assert a.got("news") == []
        assert await b.call("do_broadcast", [], [], "news", "still here") == "ok"
        await a.wait_for("news")
        assert a.got("news") == [["still here"]]


async def test_redis_down_raises_adapter_error_then_reconnects(redis_server: RedisServer) -> None:
    """Under a broadcast load, Redis stops and comes back: local delivery never stops, emits raise
    AdapterError meanwhile, requests fail fast, and cross-server delivery resumes within 2 s."""
    s0, s1 = start_streams_servers(redis_server.url)
    try:
        rf = room("rf")
        async with members((s0, "a", [rf]), (s1, "b", [rf])) as (a, b):
            await broadcasts_survive_a_redis_outage(a, b, redis_server, rf)

            async def both_back() -> bool:
                stats = [(await m.call("do_info"))["stats"] for m in (a, b)]
                return all(s["connected"] and s["stream_connected"] for s in stats)

            await until(both_back, timeout=15.0)
            for m in (a, b):
                stats = (await m.call("do_info"))["stats"]
                assert stats["pending_requests"] == 0
    finally:
        for server in (s0, s1):
            server.stop()


async def test_redis_stopped_mid_burst(redis_server: RedisServer) -> None:
    """Redis stops during a burst of broadcasts and comes back: each emit waits for its XADD, so every
    one is either in the stream or raised AdapterError (none lost after returning); local delivery
    never stops; what crosses arrives in order, once; cross-server delivery resumes."""
    s0, s1 = start_streams_servers(redis_server.url)
    try:
        rf = room("burst")
        count, pause = 1000, 0.002
        async with members((s0, "sender", []), (s0, "a", [rf]), (s1, "b", [rf])) as (sender, a, b):
            before = (await sender.call("do_stats"))["/"]
            outcome = await burst_while_redis_restarts(sender, b, redis_server, rf, count, pause, seen=100)
            raised = outcome["raised"]
            assert raised, "no emit saw Redis down"
            assert raised[-1] < count - 1, "the emits succeed again once Redis is back"
            await until(lambda: _now(any(args[0] == count - 1 for args in b.got("seq"))), timeout=10)
            await a.wait_for("seq", count)
            assert [args[0] for args in a.got("seq")] == list(range(count))  # local: all, in order
            remote = [args[0] for args in b.got("seq")]
            assert remote == sorted(set(remote))
            assert not set(remote) & set(raised)
            stats = (await sender.call("do_stats"))["/"]
            assert stats["published"] - before["published"] == count - len(raised)
            assert stats["publish_errors"] - before["publish_errors"] == len(raised)
            assert stats["disconnects"] > before["disconnects"] and stats["connected"] == 1
    finally:
        for server in (s0, s1):
            server.stop()


async def test_one_factory_given_to_two_servers(redis_url: str) -> None:
    """The second server's namespace gets a bus and a stream reader of its own."""
    key = f"streams-{uuid.uuid4().hex[:8]}"
    await two_servers_on_one_factory(
        RedisStreamsAdapter.factory(redis_url, stream_name=key, channel_prefix=key)
    )


async def test_namespaces_share_three_connections(redis_url: str) -> None:
    """Every namespace of a server is on one publishing, one subscribing and one reading connection."""
    key = f"streams-{uuid.uuid4().hex[:8]}"
    before = {line.split()[0] for line in (await redis_command(redis_url, b"CLIENT", b"LIST")).splitlines()}
    s0 = ServerProcess("s0", redis_url, key, ("--streams", "--namespaces", "/a,/b"))
    try:
        after = (await redis_command(redis_url, b"CLIENT", b"LIST")).splitlines()
        mine = [line for line in after if line.split()[0] not in before and b"cmd=client" not in line]
        assert len(mine) == 3, mine
        # "/", "/a", "/b": the public and the private channel of each, on one connection; one reads
        assert sorted(b" sub=6 " in line for line in mine) == [False, False, True]
        assert sorted(b"cmd=xre" in line for line in mine) == [False, False, True]  # xread (xrevrange first)
        s1 = ServerProcess("s1", redis_url, key, ("--streams", "--namespaces", "/a,/b"))
        try:
            r = room("r")
            async with member(s0, "x", [], namespace="/a") as x, member(s1, "y", [r], namespace="/a") as y:
                assert await x.call("do_broadcast", [r], [], "news", "in /a") == "ok"
                await y.wait_for("news")
                assert y.got("news")[0][0] == "in /a"
        finally:
            s1.stop()
    finally:
        s0.stop()


# -- the format, sans IO ------------------------------------------------------------------------------
def test_streams_wire_golden_values() -> None:
    wire = StreamsWire("socket.io", "/chat")
    opts = BroadcastOptions(frozenset({"r"}), frozenset({"x"}), BroadcastFlags(volatile=True))
    fields = wire.entry(Broadcast(Packet(PacketType.EVENT, "/chat", ["news", 1]), opts))
    assert fields[:7] == [b"uid", wire.uid.encode(), b"nsp", b"/chat", b"type", b"3", b"data"]
    assert json.loads(fields[7]) == {
        "packet": {"type": 2, "data": ["news", 1], "nsp": "/chat"},
        "opts": {"rooms": ["r"], "except": ["x"], "flags": {"volatile": True}},
    }
    binary = wire.entry(SocketsJoin(BroadcastOptions(), ("a",)))
    assert binary[5] == b"4" and binary[7].startswith(b"{")  # joins never carry binary: JSON
    with pytest.raises(ValueError, match="stream"):
        wire.entry(ServerSideEmit("e", ()))
    # pub/sub: msgpack always (Node decodes nothing else), on the namespace's and the requester's channel
    channel, data = wire.encode(ServerSideEmit("hello", (1,), "req-1"))
    assert channel == "socket.io#/chat#"
    assert msgpack.unpackb(data) == {
        "uid": wire.uid,
        "nsp": "/chat",
        "type": 9,
        "data": {"packet": ["hello", 1], "requestId": "req-1"},
    }
    channel, data = wire.encode_reply(ServerSideEmitResponse("req-1", "yes"), "peer")
    assert channel == "socket.io#/chat#peer#" and msgpack.unpackb(data)["type"] == 10
    assert wire.subscriptions() == ["socket.io#/chat#", f"socket.io#/chat#{wire.uid}#"]
    # a Node entry decodes; the offsets
    node = {b"uid": b"n", b"nsp": b"/chat", b"type": b"3", b"data": fields[7]}
    envelope = wire.decode_entry(node)
    assert envelope is not None and envelope.uid == "n" and isinstance(envelope.message, Broadcast)
    assert wire.decode_entry({**node, b"nsp": b"/"}) is None and wire.decode_entry({b"uid": b"n"}) is None
    assert [is_offset(o) for o in ("1-0", "1700000000000-12", "1", "a-1", "1-1-1", "")] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    assert next_offset("1700000000000-12") == "1700000000000-13"
    assert replays_to(frozenset({"r", "me"}), BroadcastOptions(frozenset({"r"})))
    assert not replays_to(frozenset({"s", "me"}), BroadcastOptions(frozenset({"r"})))
    assert not replays_to(frozenset({"r", "me"}), BroadcastOptions(frozenset(), frozenset({"me"})))
    assert replays_to(frozenset({"me"}), BroadcastOptions())


# -- the caller: calls made at once share one pipeline ---------------------------------------------------
async def test_caller_pipelines_concurrent_calls(autojump_clock: trio.testing.MockClock) -> None:
    caller = Caller(max_pending=4, timeout=1.0, describe="test")
    pipelines: list[list[Any]] = []

    async def send(commands: Sequence[Sequence[Any]]) -> list[Any]:
        pipelines.append([list(c) for c in commands])
        await trio.sleep(0.01)
        return [ValueError("WRONGTYPE") if c[0] == b"BAD" else c[1] for c in commands]

    results: dict[str, Any] = {}

    async def one(name: str, *commands: list[Any]) -> None:
        try:
            results[name] = await caller.call(commands)
        except AdapterError as exc:
            results[name] = str(exc)

    with pytest.raises(AdapterError, match="not connected"):
        await caller.call([[b"GET", 1]])
    caller.open()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller.run, send)
        async with trio.open_nursery() as calls:
            calls.start_soon(one, "a", [b"MULTI", 1], [b"GET", 2], [b"EXEC", 3])
            calls.start_soon(one, "b", [b"BAD", 4])
            calls.start_soon(one, "c", [b"SET", 5])
        (pipeline,) = pipelines  # one pipeline, each call's commands together (MULTI ... EXEC whole)
        assert sorted(map(tuple, pipeline)) == [
            (b"BAD", 4),
            (b"EXEC", 3),
            (b"GET", 2),
            (b"MULTI", 1),
            (b"SET", 5),
        ]
        start = pipeline.index([b"MULTI", 1])
        assert pipeline[start : start + 3] == [[b"MULTI", 1], [b"GET", 2], [b"EXEC", 3]]
        assert results == {"a": [1, 2, 3], "b": "Redis refused a command: WRONGTYPE", "c": [5]}
        nursery.cancel_scope.cancel()
    # the link goes down: queued calls fail, new ones are refused
    caller.close("gone")
    with pytest.raises(AdapterError, match="gone"):
        await caller.call([[b"GET", 1]])


async def test_caller_is_bounded_and_a_stuck_pipeline_breaks(autojump_clock: trio.testing.MockClock) -> None:
    caller = Caller(max_pending=2, timeout=1.0, describe="test")
    caller.open()

    async def stuck(commands: Sequence[Sequence[Any]]) -> list[Any]:
        await trio.sleep_forever()
        raise AssertionError

    errors: list[str] = []

    async def one() -> None:
        try:
            await caller.call([[b"GET", 1]])
        except AdapterError as exc:
            errors.append(str(exc))

    async def link() -> None:
        with pytest.raises(AdapterError, match=r"not answered within 1\.0 s"):
            await caller.run(stuck)
        caller.close("the link broke")

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
        nursery.start_soon(link)
    # two calls were in the pipeline; the third found no room within the timeout and was not sent
    assert sorted(e.split(": ", 1)[1] for e in errors) == [
        "a pipeline not answered within 1.0 s",
        "a pipeline not answered within 1.0 s",
        "the call queue stayed full for 1.0 s",
    ]
