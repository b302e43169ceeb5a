"""RedisAdapter: three trio_rooms servers (separate processes, tests/helpers/cluster_server.py) on a
real Redis.

Clients connect to every server over TCP; each check drives one server through its clients' events
and asserts what every client receives. Real time throughout (subprocesses and Redis): every wait is
bounded by ``trio.fail_after``. Also: the wire format's golden values, bad messages, Redis going away.
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped,unused-ignore]
import pytest
import trio
import trio.testing
from helpers.redis_fixtures import RedisServer

from trio_rooms import AdapterError, Client, RedisAdapter, Server, Socket, open_client
from trio_rooms.adapter.base import BroadcastFlags, BroadcastOptions
from trio_rooms.adapter.redis.publisher import Counts, Publisher, SendBatch
from trio_rooms.protocol.cluster.classic import ClassicWire
from trio_rooms.protocol.cluster.messages import (
    INSTALL_HINT,
    BroadcastMessage,
    ClusterMessage,
    MessageError,
    MessageType,
    Request,
    RequestType,
    Response,
)
from trio_rooms.protocol.cluster.model import Broadcast, ServerSideEmit
from trio_rooms.protocol.cluster.sharded import ShardedWire
from trio_rooms.protocol.socketio import Packet, PacketType
from trio_rooms.testing import open_memory_server, open_test_client

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

SERVER_SCRIPT = Path(__file__).resolve().parent / "helpers" / "cluster_server.py"
STEP = 5.0  # seconds any single cluster step may take
QUIET = 0.3  # seconds to wait for unwanted duplicates after the expected messages arrived


# -- server processes ------------------------------------------------------------------------------------
class ServerProcess:
    """One cluster member process (tests/helpers/cluster_server.py, or any ``argv`` that prints
    ``PORT <n>`` once it serves)."""

    def __init__(
        self,
        name: str,
        url: str,
        key: str,
        extra: tuple[str, ...] = (),
        *,
        argv: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.key = key
        self.process = subprocess.Popen(
            argv or [sys.executable, str(SERVER_SCRIPT), name, url, key, *extra],
            stdout=subprocess.PIPE,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 20)
        line = self.process.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"server {name} did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_servers(url: str, count: int = 3, extra: tuple[str, ...] = ()) -> list[ServerProcess]:
    key = f"test-{uuid.uuid4().hex[:8]}"
    servers: list[ServerProcess] = []
    try:
        for index in range(count):
            servers.append(ServerProcess(f"s{index}", url, key, extra))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


@pytest.fixture(scope="module")
def cluster(redis_url: str) -> Iterator[list[ServerProcess]]:
    """Three servers sharing one key on the session's Redis."""
    servers = start_servers(redis_url)
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


# -- clients ---------------------------------------------------------------------------------------------
class Member:
    """A client and everything it received, by event."""

    def __init__(self, name: str, client: Client) -> None:
        self.name = name
        self.client = client
        self.received: dict[str, list[list[Any]]] = {}
        self.disconnects: list[str] = []
        self.mute = False

    @property
    def id(self) -> str:
        sid = self.client.id
        assert sid is not None
        return sid

    def got(self, event: str) -> list[list[Any]]:
        return self.received.get(event, [])

    async def wait_for(self, event: str, count: int = 1) -> None:
        async def arrived() -> bool:
            await trio.lowlevel.checkpoint()
            return len(self.got(event)) >= count

        await until(arrived)

    async def call(self, event: str, *args: Any) -> Any:
        return await self.client.emit_with_ack(event, *args, timeout=STEP * 2)


@asynccontextmanager
async def member(
    server: ServerProcess,
    name: str,
    rooms: list[str] | None = None,
    *,
    mute: bool = False,
    namespace: str = "/",
) -> AsyncIterator[Member]:
    async with open_client(
        server.url,
        namespace=namespace,
        auth={"name": name, "rooms": rooms or []},
        transports=("websocket",),
        reconnection=False,
    ) as client:
        m = Member(name, client)
        m.mute = mute

        def recorder(event: str) -> Any:
            async def record(*args: Any) -> None:
                m.received.setdefault(event, []).append(list(args))

            return record

        for event in ("news", "private", "other", "seq"):
            client.on(event)(recorder(event))

        @client.on("question")
        async def question(*args: Any) -> str:
            m.received.setdefault("question", []).append(list(args))
            if m.mute:
                await trio.sleep_forever()
            return m.name

        @client.on("disconnect")
        async def disconnected(reason: str) -> None:
            m.disconnects.append(reason)

        yield m


@asynccontextmanager
async def members(*specs: tuple[ServerProcess, str, list[str]]) -> AsyncIterator[list[Member]]:
    async with AsyncExitStack() as stack:
        found = [await stack.enter_async_context(member(*spec)) for spec in specs]
        yield found


async def until(check: Callable[[], Awaitable[object]], timeout: float = STEP) -> None:
    """Poll ``check`` (remote state: nothing to wait on but the next look) until it is truthy."""
    with trio.fail_after(timeout):
        while True:
            if await check():
                return
            await trio.sleep(0.03)


async def _empty(result: Awaitable[Any]) -> bool:
    return not await result


async def _now(value: object) -> object:
    await trio.lowlevel.checkpoint()
    return value


def room(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


async def burst_while_redis_restarts(
    sender: Member,
    watcher: Member,
    redis_server: RedisServer,
    target: str,
    count: int,
    pause: float,
    seen: int,
) -> dict[str, Any]:
    """``sender`` emits ``count`` "seq" events to ``target``, one per ``pause`` seconds ("do_burst");
    once ``watcher`` (on another server) has ``seen`` of them, Redis stops for a second and starts
    again. Returns the burst's answer (its ``raised``: the emits that raised AdapterError)."""
    outcome: dict[str, Any] = {}

    async def burst() -> None:
        with trio.fail_after(60):
            outcome.update(
                await sender.client.emit_with_ack("do_burst", [target], "seq", count, pause, timeout=60)
            )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(burst)
        await until(lambda: _now(len(watcher.got("seq")) >= seen))
        try:
            await trio.to_thread.run_sync(redis_server.stop)
            await trio.sleep(1.0)
        finally:
            await trio.to_thread.run_sync(redis_server.start)
    return outcome


async def quiet() -> None:
    await trio.sleep(QUIET)


# -- the cluster -----------------------------------------------------------------------------------------
async def test_union_broadcast_reaches_every_member_once(cluster: list[ServerProcess]) -> None:
    s0, s1, s2 = cluster
    r1, r2, r3 = room("r1"), room("r2"), room("r3")
    async with members((s0, "a", [r1, r2]), (s1, "b", [r2]), (s2, "c", [r1, r3]), (s2, "d", [])) as (
        a,
        b,
        c,
        d,
    ):
        assert await d.call("do_broadcast", [r1, r2], [], "news", "union") == "ok"
        for m in (a, b, c):
            await m.wait_for("news")
        # a single room goes on the room's own channel
        assert await a.call("do_broadcast", [r3], [], "other", "only c") == "ok"
        await c.wait_for("other")
        # everyone
        assert await b.call("do_broadcast", [], [], "private", "all") == "ok"
        for m in (a, b, c, d):
            await m.wait_for("private")
        await quiet()
        assert [m.got("news") for m in (a, b, c, d)] == [[["union"]]] * 3 + [[]]
        assert [m.got("other") for m in (a, b, c, d)] == [[], [], [["only c"]], []]
        assert all(m.got("private") == [["all"]] for m in (a, b, c, d))


async def test_except_and_socket_to_across_servers(cluster: list[ServerProcess]) -> None:
    s0, s1, s2 = cluster
    r1, r2, r3 = room("r1"), room("r2"), room("r3")
    async with members((s0, "a", [r1, r2]), (s1, "b", [r2]), (s2, "c", [r1, r3]), (s2, "d", [])) as (
        a,
        b,
        c,
        d,
    ):
        assert await a.call("do_broadcast", [], [r2], "news", "not r2") == "ok"
        await c.wait_for("news")
        await d.wait_for("news")
        assert await b.call("do_broadcast", [r1], [r3], "other", "r1 but not r3") == "ok"
        await a.wait_for("other")
        # socket.to(room): the sender is left out, wherever the members are
        assert await a.call("do_socket_to", r1, "private", "from a") == "ok"
        await c.wait_for("private")
        assert await b.call("do_socket_to", r2, "private", "from b") == "ok"
        await a.wait_for("private")
        await quiet()
        assert [len(m.got("news")) for m in (a, b, c, d)] == [0, 0, 1, 1]
        assert [len(m.got("other")) for m in (a, b, c, d)] == [1, 0, 0, 0]
        assert a.got("private") == [["from b"]]
        assert b.got("private") == []
        assert c.got("private") == [["from a"]]


async def test_private_messages_to_a_socket_on_another_server(cluster: list[ServerProcess]) -> None:
    s0, _s1, s2 = cluster
    async with members((s0, "a", []), (s2, "c", [])) as (a, c):
        assert await a.call("do_broadcast", [c.id], [], "private", "psst") == "ok"
        await c.wait_for("private")
        assert await a.call("do_remote", c.id, "emit", "via remote socket") == "ok"
        await c.wait_for("private", 2)
        await quiet()
        assert c.got("private") == [["psst"], ["via remote socket"]]
        assert a.got("private") == []


async def test_broadcast_with_acks_collects_every_server(cluster: list[ServerProcess]) -> None:
    s0, s1, s2 = cluster
    r1, r2 = room("r1"), room("r2")
    async with members((s0, "a", [r1]), (s1, "b", [r1, r2]), (s2, "c", [r2]), (s2, "d", [])) as (a, b, c, d):
        result = await b.call("do_ack_broadcast", [r1, r2], 3.0)
        assert result == {"timeout": False, "answers": ["a", "b", "c"]}
        result = await d.call("do_ack_broadcast", [], 3.0)
        assert result == {"timeout": False, "answers": ["a", "b", "c", "d"]}
        assert all(len(m.got("question")) == 2 for m in (a, b, c)) and len(d.got("question")) == 1
        async with member(s1, "mute", [r1], mute=True):
            with trio.fail_after(STEP):
                result = await a.call("do_ack_broadcast", [r1], 1.0)
            assert result == {"timeout": True, "answers": ["a", "b"]}


async def test_fetch_sockets_and_remote_socket_actions(cluster: list[ServerProcess]) -> None:
    s0, s1, s2 = cluster
    r1, r9 = room("r1"), room("r9")
    async with members((s0, "a", [r1]), (s1, "b", []), (s2, "c", [r1])) as (a, b, c):
        found = await b.call("do_fetch", [r1])
        assert [(f["id"], f["data"], f["auth"]["name"]) for f in found] == [
            (a.id, {"name": "a", "server": "s0"}, "a"),
            (c.id, {"name": "c", "server": "s2"}, "c"),
        ]
        assert found[0]["rooms"] == sorted([a.id, r1])
        everyone = await a.call("do_fetch", [])
        assert {f["data"]["name"] for f in everyone} >= {"a", "b", "c"}
        # a remote socket joins and leaves on its own server
        assert await a.call("do_remote", c.id, "join", r9) == "ok"

        async def c_in_r9() -> bool:
            return [f["id"] for f in await b.call("do_fetch", [r9])] == [c.id]

        await until(c_in_r9)
        assert await b.call("do_broadcast", [r9], [], "news", "in r9") == "ok"
        await c.wait_for("news")
        assert await a.call("do_remote", c.id, "leave", r9) == "ok"
        await until(lambda: _empty(b.call("do_fetch", [r9])))
        # and is disconnected from afar
        assert await b.call("do_remote", c.id, "disconnect", None) == "ok"
        await until(lambda: _now(c.disconnects))
        assert c.disconnects == ["io server disconnect"]


async def test_sockets_join_leave_and_disconnect_sockets(cluster: list[ServerProcess]) -> None:
    s0, s1, s2 = cluster
    r1, r7 = room("r1"), room("r7")
    async with members((s0, "a", [r1]), (s1, "b", []), (s2, "c", [r1])) as (a, b, c):
        assert await b.call("do_sockets", "join", [r1], r7) == "ok"

        async def a_and_c_in_r7() -> bool:
            return [f["data"]["name"] for f in await b.call("do_fetch", [r7])] == ["a", "c"]

        await until(a_and_c_in_r7)
        assert await b.call("do_sockets", "leave", [r1], r7) == "ok"
        await until(lambda: _empty(b.call("do_fetch", [r7])))
        assert await b.call("do_sockets", "disconnect", [r1], False) == "ok"
        await until(lambda: _now(a.disconnects and c.disconnects))
        assert not b.disconnects


async def test_server_side_emit_with_and_without_ack(cluster: list[ServerProcess]) -> None:
    s0, s1, s2 = cluster
    async with members((s0, "a", []), (s1, "b", []), (s2, "c", [])) as (a, b, c):
        marker = uuid.uuid4().hex
        assert await a.call("do_server_side_emit", "hello", False, 0, marker, 2) == "ok"

        async def both_got_it() -> bool:
            return all([["hello", marker, 2] in await m.call("do_server_events") for m in (b, c)])

        await until(both_got_it)
        assert ["hello", marker, 2] not in await a.call("do_server_events")
        result = await b.call("do_server_side_emit", "hello", True, 3.0, "ack?")
        assert result == {"timeout": False, "answers": ["hello from s0", "hello from s2"]}
        with trio.fail_after(STEP):
            result = await c.call("do_server_side_emit", "silent", True, 1.0)
        assert result == {"timeout": True, "answers": []}


async def test_server_count_all_rooms_and_stats(cluster: list[ServerProcess]) -> None:
    s0, s1, _s2 = cluster
    r1 = room("r1")
    async with members((s0, "a", [r1]), (s1, "b", [])) as (a, b):
        info = await b.call("do_info")
        assert info["server_count"] == 3
        assert {r1, a.id, b.id} <= set(info["all_rooms"])
        assert info["stats"]["connected"] == 1
        assert info["stats"]["published"] >= 1


async def test_a_server_leaving_does_not_hang_requests(redis_url: str) -> None:
    s0, s1, s2 = start_servers(redis_url)
    try:
        async with members((s0, "a", []), (s1, "b", [])) as (a, _b):
            s2.process.send_signal(signal.SIGSTOP)  # still subscribed, never answers
            start = trio.current_time()
            with trio.fail_after(STEP):
                found = await a.call("do_fetch", [])
            assert isinstance(found, str) and found.startswith("AdapterError")
            with trio.fail_after(STEP):
                result = await a.call("do_server_side_emit", "hello", True, 1.0)
            assert result == {"timeout": True, "answers": ["hello from s1"]}
            assert trio.current_time() - start < 2.0 + 1.0 + 2.0  # request_timeout + ack timeout + slack
            s2.stop()  # gone for good: its subscriptions end with its connections

            async def two_servers() -> bool:
                return bool((await a.call("do_info"))["server_count"] == 2)

            await until(two_servers)
            assert [f["data"]["name"] for f in await a.call("do_fetch", [])] == ["a", "b"]
    finally:
        for server in (s0, s1, s2):
            server.stop()


async def test_bad_messages_are_ignored_and_counted(cluster: list[ServerProcess], redis_url: str) -> None:
    import coredis

    s0, s1, _s2 = cluster
    async with members((s0, "a", []), (s1, "b", [])) as (a, b):
        before = (await a.call("do_info"))["stats"]
        key = s0.key
        other_nsp = msgpack.packb(["x", {"type": 2, "data": ["news", "other nsp"], "nsp": "/other"}, {}])
        async with coredis.Redis.from_url(redis_url) as redis:
            for channel, data in [
                (f"{key}#/#", b"\xc1garbage"),
                (f"{key}#/#", msgpack.packb({"not": "a list"})),
                (f"{key}#/#", other_nsp),
                (f"{key}-request#/#", b"{not json"),
                (f"{key}-request#/#", json.dumps({"type": 42, "uid": "x"}).encode()),
                (f"{key}-request#/#", msgpack.packb([1, 2, 3])),
                (f"{key}-response#/#", b"{}"),
            ]:
                await redis.publish(channel, data)

        async def counted() -> bool:
            return bool((await a.call("do_info"))["stats"]["invalid"] - before["invalid"] >= 6)

        await until(counted)
        stats = (await a.call("do_info"))["stats"]
        assert stats["ignored"] > before["ignored"]
        assert stats["connected"] == 1
        # the subscriber lives on
        assert await b.call("do_broadcast", [], [], "news", "still here") == "ok"
        await a.wait_for("news")
        assert a.got("news") == [["still here"]]


# -- Redis going away ---------------------------------------------------------------------------------
async def broadcasts_survive_a_redis_outage(a: Member, b: Member, redis_server: RedisServer, rf: str) -> None:
    """``a`` broadcasts "news" to ``rf`` every 20 ms while Redis stops and comes back (both adapters'
    fault tests): local delivery never stops, emits raise AdapterError meanwhile (each counted as a
    publish error, "not connected" included: issue 11, bug 9), requests fail fast, cross-server
    delivery to ``b`` resumes within 2 s, and the local client lost nothing, in order."""
    answers: dict[int, str] = {}

    async def load() -> None:
        for index in range(10**6):
            answers[index] = await a.call("do_broadcast", [rf], [], "news", index)
            await trio.sleep(0.02)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(load)
        await b.wait_for("news")
        try:
            await trio.to_thread.run_sync(redis_server.stop)

            async def disconnected() -> bool:
                return not (await a.call("do_info"))["stats"]["connected"]

            await until(disconnected)
            await until(lambda: _now(any(v.startswith("AdapterError") for v in answers.values())))
            with trio.fail_after(2.0):
                assert (await a.call("do_fetch", [])).startswith("AdapterError")
        finally:
            await trio.to_thread.run_sync(redis_server.start)
        back, first_after = trio.current_time(), len(answers) + 1
        await until(lambda: _now(any(args[0] >= first_after for args in b.got("news"))))
        resumed = trio.current_time() - back
        nursery.cancel_scope.cancel()
    assert resumed < 2.0
    failed = sum(v.startswith("AdapterError") for v in answers.values())
    assert failed > 0
    assert (await a.call("do_info"))["stats"]["publish_errors"] >= failed
    await a.wait_for("news", len(answers))
    local = [args[0] for args in a.got("news")]
    assert local == list(range(len(local)))
    received = [args[0] for args in b.got("news")]
    assert received == sorted(set(received))  # no duplicates, in order


async def test_redis_down_raises_adapter_error_then_reconnects(
    cluster: list[ServerProcess], redis_server: RedisServer
) -> None:
    """Under a broadcast load, Redis stops and comes back: local delivery never stops, emits raise
    AdapterError meanwhile, requests fail fast, and cross-server delivery resumes within 2 s."""
    s0, s1, _s2 = cluster
    rf = room("rf")
    async with members((s0, "a", [rf]), (s1, "b", [rf])) as (a, b):
        baseline = {m.name: (await m.call("do_info"))["stats"]["handler_tasks"] for m in (a, b)}
        await broadcasts_survive_a_redis_outage(a, b, redis_server, rf)

        async def all_three_back() -> bool:
            # The third server resubscribes on its own backoff schedule (no client of it here).
            return bool((await b.call("do_info"))["server_count"] == 3)

        await until(all_three_back)
        for m in (a, b):  # nothing left behind by the outage (the "silent" handlers of another test run on)
            stats = (await m.call("do_info"))["stats"]
            assert stats["handler_tasks"] <= baseline[m.name]
            assert (stats["pending_requests"], stats["connected"]) == (0, 1)


# -- one link per server, pipelined publishes ---------------------------------------------------------
async def redis_clients(redis: Any, newer_than: int) -> list[dict[str, Any]]:
    """The connections of redis-server opened after connection id ``newer_than``."""
    return [dict(c) for c in await redis.client_list() if int(c["id"]) > newer_than]


def last_client_id(clients: list[dict[str, Any]], floor: int) -> int:
    return max([floor, *(int(c["id"]) for c in clients)])


def subscriptions(clients: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(channels, patterns) subscribed by each connection, in increasing order."""
    return sorted((int(c["sub"]), int(c["psub"])) for c in clients)


async def test_namespaces_share_one_publisher_and_one_subscriber(redis_url: str) -> None:
    """Every namespace of a server, static, added later or a dynamic child, is on one publishing and
    one subscribing connection (CLIENT LIST); a removed child's channels are unsubscribed."""
    import coredis

    key = f"test-{uuid.uuid4().hex[:8]}"
    async with coredis.Redis.from_url(redis_url) as redis:
        floor = last_client_id(await redis_clients(redis, 0), 0)
        s0 = ServerProcess("s0", redis_url, key, ("--namespaces", "/a,/b", "--dynamic", r"^/dyn-\w+$"))
        try:
            s0_clients = await redis_clients(redis, floor)
            s1 = ServerProcess("s1", redis_url, key)
        except BaseException:
            s0.stop()
            raise
        try:
            mine = {int(c["id"]) for c in s0_clients}

            async def s0_subscriptions() -> list[tuple[int, int]]:
                return subscriptions([c for c in await redis_clients(redis, floor) if int(c["id"]) in mine])

            # "/", "/a", "/b": a request and two response channels and a pattern each, on one connection;
            # the other connection publishes.
            assert len(mine) == 2
            assert await s0_subscriptions() == [(0, 0), (9, 3)]

            async def numsub(namespace: str) -> int:
                counts = await redis.pubsub_numsub(f"{key}-request#{namespace}#")
                return sum(int(v) for v in dict(counts).values())

            async with members((s0, "a", []), (s1, "b", [])) as (a, b):
                # a namespace added after start, on both servers: one more channel pair and pattern
                assert await a.call("do_add_namespace", "/late") == "ok"
                assert await b.call("do_add_namespace", "/late") == "ok"
                await until(lambda: _equals(s0_subscriptions(), [(0, 0), (12, 4)]))
                await until(lambda: _equals(numsub("/late"), 2))
                rl = room("late")
                async with (
                    member(s0, "la", [], namespace="/late") as la,
                    member(s1, "lb", [rl], namespace="/late") as lb,
                ):
                    assert await la.call("do_broadcast", [rl], [], "news", "late") == "ok"
                    await lb.wait_for("news")
                    assert lb.got("news") == [["late"]]
                # a dynamic child: subscribed while it has a socket, unsubscribed once removed
                async with member(s0, "d", [], namespace="/dyn-x") as d:
                    assert await d.call("do_broadcast", [], [], "news", "to myself") == "ok"
                    await d.wait_for("news")
                    await until(lambda: _equals(s0_subscriptions(), [(0, 0), (15, 5)]))
                    assert await numsub("/dyn-x") == 1
                await until(lambda: _equals(s0_subscriptions(), [(0, 0), (12, 4)]))
                assert await numsub("/dyn-x") == 0
                stats = await a.call("do_stats")
                assert set(stats) == {"/", "/a", "/b", "/late"}
                assert all(s["connected"] == 1 and s["connects"] == 1 for s in stats.values())
                # still two connections for the whole server
                assert len([c for c in await redis_clients(redis, floor) if int(c["id"]) in mine]) == 2
        finally:
            s1.stop()
            s0.stop()


async def _received(m: Member, event: str, count: int) -> bool:
    await trio.lowlevel.checkpoint()
    return len(m.got(event)) >= count


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def test_a_burst_of_pipelined_broadcasts_keeps_its_order(cluster: list[ServerProcess]) -> None:
    """5,000 broadcasts emitted as fast as one handler can: every server's clients get them all, once,
    in order, and they went out in fewer pipelines than messages."""
    s0, s1, s2 = cluster
    rb = room("burst")
    count = 5000
    async with members((s0, "sender", []), (s0, "a", [rb]), (s1, "b", [rb]), (s2, "c", [rb])) as (
        sender,
        a,
        b,
        c,
    ):
        before = (await sender.call("do_stats"))["/"]
        result = await sender.call("do_burst", [rb], "seq", count, 0)
        assert result == {"raised": []}
        for m in (a, b, c):
            await until(functools.partial(_received, m, "seq", count), timeout=30)
        await quiet()
        for m in (a, b, c):
            assert [args[0] for args in m.got("seq")] == list(range(count))
        after = (await sender.call("do_stats"))["/"]
        assert after["published"] - before["published"] >= count
        assert after["publish_errors"] == before["publish_errors"]
        assert after["publish_batches"] - before["publish_batches"] < count  # pipelined


async def test_redis_stopped_mid_burst(cluster: list[ServerProcess], redis_server: RedisServer) -> None:
    """Redis stops during a burst of pipelined broadcasts and comes back: emits raise AdapterError once
    the link is known down (and only then), every publish is counted as published or failed, local
    delivery never stops, order is kept and cross-server delivery resumes."""
    s0, s1, _s2 = cluster
    rf = room("burst")
    count, pause = 2000, 0.002
    async with members((s0, "sender", []), (s0, "a", [rf]), (s1, "b", [rf])) as (sender, a, b):
        before = (await sender.call("do_stats"))["/"]
        outcome = await burst_while_redis_restarts(sender, b, redis_server, rf, count, pause, seen=200)
        raised = outcome["raised"]
        assert raised, "no emit saw the link down"
        assert raised == list(range(raised[0], raised[-1] + 1))  # down from one emit until it is back
        assert raised[-1] < count - 1
        await until(lambda: _now(any(args[0] == count - 1 for args in b.got("seq"))), timeout=10)
        # local delivery never stopped; across Redis, what arrived is in order and once
        await a.wait_for("seq", count)
        assert [args[0] for args in a.got("seq")] == list(range(count))
        remote = [args[0] for args in b.got("seq")]
        assert remote == sorted(set(remote))
        assert not set(remote) & set(raised)

        async def settled() -> bool:
            stats = (await sender.call("do_stats"))["/"]
            done = (
                stats["published"] + stats["publish_errors"] - before["published"] - before["publish_errors"]
            )
            return bool(done == count)

        await until(settled)
        stats = (await sender.call("do_stats"))["/"]
        lost_after_return = stats["publish_errors"] - before["publish_errors"] - len(raised)
        assert lost_after_return >= 0
        assert stats["disconnects"] > before["disconnects"] and stats["connected"] == 1


async def two_servers_on_one_factory(factory: Callable[..., Any]) -> None:
    """Two servers of one process given one adapter factory are two cluster members: a broadcast of
    the first reaches a room of the second (both adapters' tests)."""
    a, b = Server(adapter=factory), Server(adapter=factory)

    @b.on("connection")
    async def join(socket: Socket) -> None:
        socket.join("r")

    async with (
        open_memory_server(a),
        open_memory_server(b) as listener,
        open_test_client(await listener.connect()) as client,
    ):
        await client.connect()
        with trio.fail_after(STEP):
            while await b.adapter.server_count() < 2:  # noqa: ASYNC110 - a Redis query, not a flag
                await trio.sleep(0.03)
            await a.to("r").emit("n", 1)
            packet = await client.receive()
        assert packet.data == ["n", 1]


async def test_one_factory_given_to_two_servers(redis_url: str) -> None:
    """The second server's namespace gets a link of its own."""
    await two_servers_on_one_factory(RedisAdapter.factory(redis_url, key=f"test-{uuid.uuid4().hex[:8]}"))


# -- the publisher, without Redis (virtual time) -------------------------------------------------------
async def _run_link(publisher: Publisher, send: SendBatch) -> None:
    """Run the publisher as the bus does: when a batch fails, the link is closed."""
    try:
        await publisher.run(send)
    except AdapterError as exc:
        publisher.close(str(exc))


async def test_publisher_pipelines_in_order(autojump_clock: trio.testing.MockClock) -> None:
    """Emits return at once; what is queued goes out as one batch per round trip, in order."""
    publisher, counts = Publisher(max_pending=10, publish_timeout=1.0, describe="Redis"), Counts()
    batches: list[list[bytes]] = []

    async def send(batch: Sequence[tuple[str, bytes]]) -> None:
        batches.append([data for _, data in batch])
        await trio.sleep(0.01)  # the round trip

    publisher.open()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run_link, publisher, send)
        for index in range(100):
            await publisher.publish("c", b"%d" % index, counts)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [data for batch in batches for data in batch] == [b"%d" % i for i in range(100)]
    assert len(batches) < 20 and max(map(len, batches)) <= 10
    assert (counts.published, counts.publish_errors, publisher.batches) == (100, 0, len(batches))


async def test_publisher_full_queue_waits_then_raises(autojump_clock: trio.testing.MockClock) -> None:
    """A full queue makes emits wait for room, in order, each at most publish_timeout."""
    publisher, counts = Publisher(max_pending=1, publish_timeout=1.0, describe="Redis"), Counts()
    returned: dict[str, tuple[str, float]] = {}
    start = trio.current_time()

    async def send(batch: Sequence[tuple[str, bytes]]) -> None:
        await trio.sleep(0.9)  # confirmed within publish_timeout

    async def emit(name: str) -> None:
        try:
            await publisher.publish("c", name.encode(), counts)
            returned[name] = ("queued", round(trio.current_time() - start, 6))
        except AdapterError as exc:
            assert "stayed full for 1.0 s" in str(exc)
            returned[name] = ("raised", round(trio.current_time() - start, 6))

    publisher.open()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run_link, publisher, send)
        for name in ("a", "b", "c"):
            nursery.start_soon(emit, name)
            await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    # a at once; b when a's batch is confirmed; c (behind b) gives up at its deadline
    assert returned == {"a": ("queued", 0.0), "b": ("queued", 0.9), "c": ("raised", 1.0)}
    assert (counts.published, counts.publish_errors) == (2, 1)


async def test_publisher_failure_counts_and_breaks_the_link(autojump_clock: trio.testing.MockClock) -> None:
    """A failed batch is counted with what was queued behind it; then emits raise until reopened."""
    publisher, counts = Publisher(max_pending=10, publish_timeout=1.0, describe="Redis at x"), Counts()
    with pytest.raises(AdapterError, match="not connected"):
        await publisher.publish("c", b"early", counts)  # never connected yet
    gate = trio.Event()

    async def send(batch: Sequence[tuple[str, bytes]]) -> None:
        await gate.wait()
        raise AdapterError("publish failed: connection lost")

    publisher.open()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run_link, publisher, send)
        await publisher.publish("c", b"in flight", counts)
        await trio.testing.wait_all_tasks_blocked()
        for index in range(3):
            await publisher.publish("c", b"queued %d" % index, counts)  # behind the batch in flight
        gate.set()
    with pytest.raises(AdapterError, match=r"not connected \(publish failed: connection lost\)"):
        await publisher.publish("c", b"after", counts)
    assert (counts.published, counts.publish_errors) == (0, 6)
    # a batch Redis never confirms is as good as failed
    publisher.open()

    async def silent(batch: Sequence[tuple[str, bytes]]) -> None:
        await trio.sleep_forever()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run_link, publisher, silent)
        await publisher.publish("c", b"unconfirmed", counts)
    assert trio.current_time() - start == pytest.approx(1.0)
    assert counts.publish_errors == 7
    with pytest.raises(AdapterError, match=r"not confirmed within 1\.0 s"):
        await publisher.publish("c", b"after", counts)


# -- the wire format ------------------------------------------------------------------------------------
def test_classic_broadcast_golden_value() -> None:
    packet = Packet(PacketType.EVENT, "/", ["news", 1, b"\x01"])
    opts = BroadcastOptions(frozenset({"r1"}), frozenset({"x"}), BroadcastFlags(volatile=True))
    data = BroadcastMessage("uid123", packet, opts).encode()
    assert msgpack.unpackb(data) == [
        "uid123",
        {"type": 2, "data": ["news", 1, b"\x01"], "nsp": "/"},
        {"rooms": ["r1"], "except": ["x"], "flags": {"volatile": True}},
    ]
    wire = ClassicWire("socket.io", "/")
    channel, ours = wire.broadcast(packet, opts)
    assert channel == "socket.io#/#r1#"
    # our own broadcast, back from Redis, is recognised without being decoded (its uid comes first)
    assert ours.startswith(b"\x93\xa6" + wire.uid.encode())
    assert wire.decode(channel.encode(), ours) is None
    theirs = ClassicWire("socket.io", "/").broadcast(packet, opts)[1]
    assert wire.decode(channel.encode(), theirs) is not None
    assert wire.broadcast(packet, BroadcastOptions())[0] == "socket.io#/#"
    assert wire.subscriptions()[:2] == ["socket.io-request#/#", "socket.io-response#/#"]
    assert wire.patterns() == ["socket.io#/#*"]
    assert wire.count_channel == "socket.io-request#/#"
    # a Node packet without nsp is for "/"
    node = msgpack.packb(["n", {"type": 2, "data": ["e"]}, {"rooms": [], "except": []}])
    inbound = wire.decode(b"socket.io#/#", node)
    assert (
        inbound is not None
        and isinstance(inbound.message, Broadcast)
        and inbound.message.packet == Packet(PacketType.EVENT, "/", ["e"])
    )


def test_classic_requests_and_responses() -> None:
    opts = BroadcastOptions(frozenset({"r"}), frozenset())
    fetch = json.loads(Request(RequestType.REMOTE_FETCH, "me", "q1", opts=opts).encode())
    assert fetch == {"type": 5, "uid": "me", "requestId": "q1", "opts": {"rooms": ["r"], "except": []}}
    join = json.loads(Request(RequestType.REMOTE_JOIN, "me", opts=opts, rooms=("x",)).encode())
    assert join == {"type": 2, "uid": "me", "opts": {"rooms": ["r"], "except": []}, "rooms": ["x"]}
    ack = Request(
        RequestType.BROADCAST, "me", "q2", opts=opts, packet=Packet(PacketType.EVENT, "/", ["q"])
    ).encode()
    assert ack[0] != 0x7B and msgpack.unpackb(ack)["type"] == 7
    assert json.loads(Response("q1", 8, {"clientCount": 2}).encode()) == {
        "type": 8,
        "requestId": "q1",
        "clientCount": 2,
    }
    assert msgpack.unpackb(Response("q1", 9, {"packet": b"\x00"}).encode()) == {
        "type": 9,
        "requestId": "q1",
        "packet": b"\x00",
    }
    # requests are read as JSON or msgpack, as Node reads them
    wire = ClassicWire("k", "/")
    as_json = wire.decode(b"k-request#/#", b'{"type":6,"uid":"o","data":["ev",1]}')
    as_msgpack = wire.decode(b"k-request#/#", msgpack.packb({"type": 6, "uid": "o", "data": ["ev", 1]}))
    assert as_json == as_msgpack and as_json is not None and isinstance(as_json.message, ServerSideEmit)
    for garbage in (b"", b"\xc1", b"{", msgpack.packb("str"), b'{"type":99}', b'{"type":7,"uid":"o"}'):
        with pytest.raises(MessageError):
            wire.decode(b"k-request#/#", garbage)


def test_sharded_messages() -> None:
    wire = ShardedWire("socket.io", "/", subscription_mode="dynamic")
    packet = Packet(PacketType.EVENT, "/", ["news"])
    channel, data = wire.broadcast(packet, BroadcastOptions(frozenset({"room"})))
    assert channel == "socket.io#/#room#"
    assert json.loads(data) == {
        "uid": wire.uid,
        "nsp": "/",
        "type": 3,
        "data": {
            "packet": {"type": 2, "data": ["news"], "nsp": "/"},
            "opts": {"rooms": ["room"], "except": [], "flags": {}},
        },
    }
    assert (
        wire.broadcast(packet, BroadcastOptions(frozenset({"x" * 20})))[0] == "socket.io#/#"
    )  # a Node socket id
    binary = ClusterMessage(
        MessageType.BROADCAST_ACK, "u", "/", {"requestId": "r", "packet": b"\x01"}
    ).encode()
    assert binary[0] != 0x7B
    assert ShardedWire("p", "/", subscription_mode="static").room_channel("room") is None
    with pytest.raises(ValueError):
        ShardedWire("p", "/", subscription_mode="sometimes")


def test_redis_adapter_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from trio_rooms import RedisAdapter
    from trio_rooms.adapter.redis import backend as redis_backend

    redis_backend.import_coredis.cache_clear()
    monkeypatch.setitem(sys.modules, "coredis", None)
    try:
        with pytest.raises(ImportError, match=re.escape("pip install -e '.[redis]' in a checkout")):
            RedisAdapter.factory("redis://127.0.0.1:1")
    finally:
        redis_backend.import_coredis.cache_clear()
    # Not on PyPI yet: what works from a checkout, then the name it will have once published.
    assert "pip install -e '.[redis]' in a checkout of trio_rooms" in INSTALL_HINT
    assert INSTALL_HINT.endswith("(pip install 'trio-rooms[redis]' once it is published)")


# -- sharded mode (Redis Cluster, SSUBSCRIBE/SPUBLISH) -----------------------------------------------
@pytest.fixture(scope="module", params=["dynamic", "static", "dynamic-private"])
def sharded_cluster(
    request: pytest.FixtureRequest, redis_cluster_urls: list[str]
) -> Iterator[list[ServerProcess]]:
    """Three servers in sharded mode, each connected through a different cluster node."""
    key = f"test-{uuid.uuid4().hex[:8]}"
    servers: list[ServerProcess] = []
    try:
        for index, url in enumerate(redis_cluster_urls):
            servers.append(ServerProcess(f"s{index}", url, key, ("--sharded", request.param)))
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_sharded_cluster_operations(sharded_cluster: list[ServerProcess]) -> None:
    s0, s1, s2 = sharded_cluster
    r1, r2, r3 = room("r1"), room("r2"), room("r3")
    async with members((s0, "a", [r1, r2]), (s1, "b", [r2]), (s2, "c", [r1, r3]), (s2, "d", [])) as (
        a,
        b,
        c,
        d,
    ):
        info = await d.call("do_info")
        assert info["server_count"] == 3 and info["stats"]["connected"] == 1
        assert await d.call("do_broadcast", [r1, r2], [], "news", "union") == "ok"
        assert await a.call("do_broadcast", [r3], [], "other", "only c") == "ok"  # a room's own channel
        assert await b.call("do_broadcast", [c.id], [], "private", "psst") == "ok"  # a private room
        assert await a.call("do_socket_to", r1, "private", "from a") == "ok"
        for m, event, count in (
            (a, "news", 1),
            (b, "news", 1),
            (c, "news", 1),
            (c, "other", 1),
            (c, "private", 2),
        ):
            await m.wait_for(event, count)
        await quiet()
        assert [len(m.got("news")) for m in (a, b, c, d)] == [1, 1, 1, 0]
        assert [len(m.got("other")) for m in (a, b, c, d)] == [0, 0, 1, 0]
        # from two servers: in no particular order (an emit returns before its publish is done)
        assert sorted(c.got("private")) == [["from a"], ["psst"]] and a.got("private") == []
        assert await b.call("do_ack_broadcast", [r1, r2], 3.0) == {
            "timeout": False,
            "answers": ["a", "b", "c"],
        }
        found = await b.call("do_fetch", [r1])
        assert [f["data"]["name"] for f in found] == ["a", "c"]
        assert await a.call("do_remote", d.id, "join", r3) == "ok"

        async def d_in_r3() -> bool:
            return [f["data"]["name"] for f in await b.call("do_fetch", [r3])] == ["c", "d"]

        await until(d_in_r3)
        assert await b.call("do_broadcast", [r3], [], "other", "r3 again") == "ok"
        await d.wait_for("other")
        result = await b.call("do_server_side_emit", "hello", True, 3.0, "ack?")
        assert result == {"timeout": False, "answers": ["hello from s0", "hello from s2"]}
        assert {r1, r2, r3} <= set((await a.call("do_info"))["all_rooms"])
        assert await c.call("do_sockets", "disconnect", [r2], False) == "ok"
        await until(lambda: _now(a.disconnects and b.disconnects))
        assert not c.disconnects and not d.disconnects
