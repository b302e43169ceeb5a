"""A mixed cluster: a Node socket.io 4.8 server with ``@socket.io/redis-adapter`` 8.3 and trio_rooms servers.

One Redis, separate processes: ``tests/interop/node_cluster_server.mjs`` (Node, "n0") and two
``tests/helpers/cluster_server.py`` (trio_rooms, "t0", "t1"), with the same test handlers, so that each check
runs in both directions: driven from the Node server with the effect on trio_rooms' clients
(``node->trio``) and driven from a trio_rooms server with the effect on Node's clients (``trio->node``).
Every mode: classic (``createAdapter``, PUBLISH/PSUBSCRIBE on the session's redis-server), sharded
(``createShardedAdapter``, SPUBLISH/SSUBSCRIBE on the 3-node Redis Cluster) in its three subscription
modes, and streams (``@socket.io/redis-streams-adapter`` 0.3 beside our ``RedisStreamsAdapter``, on the
session's redis-server). Every wait is bounded by ``trio.fail_after``.

Needs node and ``npm ci`` in tests/interop, and redis-server: without them the tests skip, except in
CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers.interop_harness import INTEROP_DIR, missing
from test_redis_adapter import (
    STEP,
    Member,
    ServerProcess,
    _empty,
    _now,
    member,
    members,
    quiet,
    room,
    until,
)

import trio_rooms
from trio_rooms import RedisAdapter, RedisStreamsAdapter, Server
from trio_rooms.adapter.redis import RedisAdapter as _RedisAdapterType

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

NODE_SCRIPT = INTEROP_DIR / "node_cluster_server.mjs"
PY_SCRIPT = Path(__file__).resolve().parent / "helpers" / "cluster_server.py"
NODE_ID_LENGTH = 20  # Node's socket ids (base64id); trio_rooms' have 22 characters
MODES = ["classic", "sharded-dynamic", "sharded-static", "sharded-dynamic-private", "streams"]


def require_node() -> str:
    """node, with the server packages installed in tests/interop; skip (fail on CI) otherwise."""
    node = shutil.which("node")
    if node is None:
        missing("node is not on PATH (install Node.js >= 18)")
    for package in ("socket.io", "@socket.io/redis-adapter", "@socket.io/redis-streams-adapter", "redis"):
        if not (INTEROP_DIR / "node_modules" / package).is_dir():
            missing(f"{INTEROP_DIR}/node_modules/{package} is missing: run `npm ci` in {INTEROP_DIR}")
    return node


def spawned(name: str, key: str, argv: list[str]) -> ServerProcess:
    """A cluster member process (Node or trio_rooms), started in tests/interop."""
    return ServerProcess(name, "", key, argv=argv, cwd=INTEROP_DIR)


@dataclass
class Mixed:
    """The cluster of one mode: the Node server and the two trio_rooms servers."""

    mode: str
    node: ServerProcess
    trio: list[ServerProcess]
    urls: list[str]

    @property
    def sharded(self) -> bool:
        return self.mode.startswith("sharded-")

    @property
    def streams(self) -> bool:
        return self.mode == "streams"

    def drivers(self, direction: str) -> tuple[ServerProcess, ServerProcess, ServerProcess]:
        """(the server that acts, the server of the other kind, a second trio_rooms server)."""
        t0, t1 = self.trio
        if direction == "node->trio":
            return self.node, t0, t1
        return t0, self.node, t1


def start_mixed(mode: str, urls: list[str]) -> Mixed:
    """A Node server and two trio_rooms servers on one key (classic: ``urls[0]``; sharded: the cluster)."""
    node = require_node()
    key = f"mixed-{uuid.uuid4().hex[:8]}"
    sharded = mode.startswith("sharded-")
    extra = ["--sharded", mode.removeprefix("sharded-")] if sharded else []
    if mode == "streams":
        extra = ["--streams"]
    started: list[ServerProcess] = []
    try:
        node_url = ",".join(urls) if sharded else urls[0]
        started.append(spawned("n0", key, [node, str(NODE_SCRIPT), "n0", node_url, key, *extra]))
        for index in range(2):
            url = urls[(index + 1) % len(urls)]
            argv = [sys.executable, str(PY_SCRIPT), f"t{index}", url, key, *extra]
            started.append(spawned(f"t{index}", key, argv))
    except BaseException:
        for server in started:
            server.stop()
        raise
    return Mixed(mode, started[0], started[1:], urls)


@pytest.fixture(scope="module", params=MODES)
def mixed(request: pytest.FixtureRequest) -> Iterator[Mixed]:
    """The mixed cluster of one mode (the Redis fixtures are requested lazily, by mode)."""
    mode: str = request.param
    require_node()
    if mode in ("classic", "streams"):
        urls = [request.getfixturevalue("redis_url")]
    else:
        urls = request.getfixturevalue("redis_cluster_urls")
    cluster = start_mixed(mode, urls)
    try:
        yield cluster
    finally:
        for server in (cluster.node, *cluster.trio):
            server.stop()


DIRECTIONS = ["node->trio", "trio->node"]


async def servers_see_each_other(cluster: Mixed, *clients: Member) -> None:
    """Wait until every server counts the three (a fresh subscription may take a moment)."""
    for m in clients:

        async def three(m: Member = m) -> bool:
            return bool((await m.call("do_info"))["server_count"] == 3)

        await until(three)


# -- broadcasts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_broadcasts_room_union_except(mixed: Mixed, direction: str) -> None:
    src, dst, other = mixed.drivers(direction)
    r1, r2, r3 = room("r1"), room("r2"), room("r3")
    async with members(
        (src, "a", [r1, r2]), (dst, "b", [r2]), (dst, "c", [r1, r3]), (other, "d", []), (dst, "e", [])
    ) as (a, b, c, d, e):
        await servers_see_each_other(mixed, a, b)
        # union of rooms: every member once, wherever it is (binary arguments too: msgpack bin)
        assert await a.call("do_broadcast", [r1, r2], [], "news", "union", {"bin": b"\x00\xff"}) == "ok"
        for m in (a, b, c):
            await m.wait_for("news")
        # one room: its own channel (classic, sharded dynamic modes)
        assert await a.call("do_broadcast", [r3], [], "other", "only c") == "ok"
        await c.wait_for("other")
        # everyone except a room
        assert await a.call("do_broadcast", [], [r2], "private", "not r2") == "ok"
        for m in (c, d, e):
            await m.wait_for("private")
        await quiet()
        assert [m.got("news") for m in (a, b, c, d, e)] == [[["union", {"bin": b"\x00\xff"}]]] * 3 + [[], []]
        assert [m.got("other") for m in (a, b, c, d, e)] == [[], [], [["only c"]], [], []]
        assert [len(m.got("private")) for m in (a, b, c, d, e)] == [0, 0, 1, 1, 1]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_socket_to_and_private_messages(mixed: Mixed, direction: str) -> None:
    src, dst, _other = mixed.drivers(direction)
    r1 = room("r1")
    async with members((src, "a", [r1]), (dst, "b", [r1]), (dst, "c", [])) as (a, b, c):
        await servers_see_each_other(mixed, a, b)
        # socket.to(room): the sender is left out, the members of the other kind of server get it
        assert await a.call("do_socket_to", r1, "news", "from a") == "ok"
        await b.wait_for("news")
        # a private message to a socket id of the other kind (Node ids 20 chars, ours 22)
        assert len(c.id) == (NODE_ID_LENGTH if dst is mixed.node else 22)
        assert await a.call("do_broadcast", [c.id], [], "private", "psst") == "ok"
        await c.wait_for("private")
        # and through fetch_sockets' remote socket
        assert await a.call("do_remote", c.id, "emit", "via remote socket") == "ok"
        await c.wait_for("private", 2)
        await quiet()
        assert a.got("news") == [] and b.got("news") == [["from a"]] and c.got("news") == []
        assert c.got("private") == [["psst"], ["via remote socket"]]
        assert a.got("private") == b.got("private") == []


# -- fetch_sockets / fetchSockets ----------------------------------------------------------------
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_fetch_sockets(mixed: Mixed, direction: str) -> None:
    src, dst, other = mixed.drivers(direction)
    r1 = room("r1")
    async with members((src, "a", [r1]), (dst, "b", [r1]), (other, "c", [])) as (a, b, _c):
        await servers_see_each_other(mixed, a, b)
        found = await a.call("do_fetch", [r1])
        assert [(f["id"], f["rooms"], f["data"], f["auth"]) for f in found] == [
            (a.id, sorted([a.id, r1]), {"name": "a", "server": src.name}, {"name": "a", "rooms": [r1]}),
            (b.id, sorted([b.id, r1]), {"name": "b", "server": dst.name}, {"name": "b", "rooms": [r1]}),
        ]
        everyone = await a.call("do_fetch", [])
        assert {(f["data"]["name"], f["data"]["server"]) for f in everyone} >= {
            ("a", src.name),
            ("b", dst.name),
            ("c", other.name),
        }
        if src is mixed.node:  # Node hands out the whole handshake of our sockets as it got it
            remote = next(f for f in found if f["id"] == b.id)["handshake"]
            assert remote["auth"] == {"name": "b", "rooms": [r1]}
            assert remote["query"]["EIO"] == "4" and remote["query"]["transport"] == "websocket"
            assert remote["address"] == "127.0.0.1" and remote["xdomain"] is False
            assert remote["secure"] is False and isinstance(remote["issued"], int)
            assert remote["url"].startswith("/socket.io/") and remote["headers"]["host"]
            assert isinstance(remote["time"], str) and remote["time"]


async def test_fetch_sockets_handshake_of_node_sockets(mixed: Mixed) -> None:
    """Our RemoteSocket of a Node socket: id, rooms, data and the handshake, field by field."""
    r1 = room("r1")
    factory: Any = RedisAdapter.factory(
        mixed.urls[0],
        key=mixed.node.key,
        sharded=mixed.sharded,
        subscription_mode=mixed.mode.removeprefix("sharded-") if mixed.sharded else "dynamic",
        request_timeout=2.0,
    )
    if mixed.streams:
        factory = RedisStreamsAdapter.factory(
            mixed.urls[0], stream_name=mixed.node.key, channel_prefix=mixed.node.key, request_timeout=2.0
        )
    server = Server(adapter=factory)
    async with member(mixed.node, "n", [r1]) as n, trio.open_nursery() as nursery:
        await nursery.start(server.serve, "127.0.0.1", 0)
        adapter = server.adapter
        assert isinstance(adapter, _RedisAdapterType)

        async def four() -> bool:
            return await adapter.server_count() == 4

        await until(four)
        with trio.fail_after(STEP):
            found = await server.in_(r1).fetch_sockets()
        assert [s.id for s in found] == [n.id]
        remote = found[0]
        assert isinstance(remote, trio_rooms.RemoteSocket)
        assert remote.rooms == {n.id, r1}
        assert remote.data == {"name": "n", "server": "n0"}
        hs = remote.handshake
        assert hs.auth == {"name": "n", "rooms": [r1]}
        assert hs.query["EIO"] == "4" and hs.query["transport"] == "websocket"
        assert hs.address == "127.0.0.1" and hs.xdomain is False and hs.secure is False
        assert hs.issued > 1_600_000_000_000 and hs.time  # Node: ms since the epoch; Date().toString()
        assert hs.url.startswith("/socket.io/") and hs.headers["host"].startswith("127.0.0.1:")
        # and it acts on the Node server
        with trio.fail_after(STEP):
            await remote.emit("private", "from an in-process trio_rooms server")
        await n.wait_for("private")
        nursery.cancel_scope.cancel()


# -- server_side_emit / serverSideEmit --------------------------------------------------------------
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_server_side_emit_with_and_without_ack(mixed: Mixed, direction: str) -> None:
    src, dst, other = mixed.drivers(direction)
    async with members((src, "a", []), (dst, "b", []), (other, "c", [])) as (a, b, c):
        await servers_see_each_other(mixed, a, b, c)
        marker = uuid.uuid4().hex
        assert await a.call("do_server_side_emit", "hello", False, 0, marker, 2, {"k": [1, None]}) == "ok"

        async def both_got_it() -> bool:
            return all(
                [["hello", marker, 2, {"k": [1, None]}] in await m.call("do_server_events") for m in (b, c)]
            )

        await until(both_got_it)
        assert not any(marker in str(event) for event in await a.call("do_server_events"))
        result = await a.call("do_server_side_emit", "hello", True, 3.0, "ack?")
        assert result == {"timeout": False, "answers": sorted([f"hello from {dst.name}", "hello from t1"])}
        if src is mixed.node and mixed.mode != "classic":
            return  # Node's cluster adapter waits a fixed 5 s: the partial list is checked elsewhere
        with trio.fail_after(STEP):
            result = await a.call("do_server_side_emit", "silent", True, 1.0)
        assert result == {"timeout": True, "answers": []}


# -- broadcast with acks across servers ---------------------------------------------------------------
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_broadcast_acks_across_servers(mixed: Mixed, direction: str) -> None:
    src, dst, other = mixed.drivers(direction)
    r1, r2 = room("r1"), room("r2")
    async with members((src, "a", [r1]), (dst, "b", [r1, r2]), (other, "c", [r2]), (dst, "d", [])) as (
        a,
        b,
        c,
        d,
    ):
        await servers_see_each_other(mixed, a, b, c)
        result = await a.call("do_ack_broadcast", [r1, r2], 3.0)
        assert result == {"timeout": False, "answers": ["a", "b", "c"]}
        result = await a.call("do_ack_broadcast", [], 3.0)
        assert result == {"timeout": False, "answers": ["a", "b", "c", "d"]}
        assert [len(m.got("question")) for m in (a, b, c, d)] == [2, 2, 2, 1]
        assert b.got("question")[0] == [src.name]
        # a member of the other kind that never answers: the partial list at the timeout
        async with member(dst, "mute", [r1], mute=True):
            with trio.fail_after(STEP):
                result = await a.call("do_ack_broadcast", [r1], 1.0)
            assert result == {"timeout": True, "answers": ["a", "b"]}


# -- sockets_join / sockets_leave / disconnect_sockets ---------------------------------------------------
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_sockets_join_leave_and_disconnect(mixed: Mixed, direction: str) -> None:
    src, dst, other = mixed.drivers(direction)
    r1, r7, r9 = room("r1"), room("r7"), room("r9")
    async with members(
        (src, "a", [r1]), (dst, "b", [r1]), (other, "c", []), (dst, "d", [r1]), (src, "z", [])
    ) as (a, b, c, d, z):
        await servers_see_each_other(mixed, a, b)
        assert await a.call("do_sockets", "join", [r1], r7) == "ok"

        async def r1_in_r7() -> bool:
            return [f["data"]["name"] for f in await c.call("do_fetch", [r7])] == ["a", "b", "d"]

        await until(r1_in_r7)
        # the room exists on the other kind of server now: a broadcast to it arrives (room channel)
        assert await a.call("do_broadcast", [r7], [], "news", "in r7") == "ok"
        await b.wait_for("news")
        assert await a.call("do_sockets", "leave", [r1], r7) == "ok"
        await until(lambda: _empty(c.call("do_fetch", [r7])))
        # a remote socket of the other kind joins, leaves, is disconnected
        assert await a.call("do_remote", b.id, "join", r9) == "ok"

        async def b_in_r9() -> bool:
            return [f["id"] for f in await c.call("do_fetch", [r9])] == [b.id]

        await until(b_in_r9)
        assert await a.call("do_remote", b.id, "leave", r9) == "ok"
        await until(lambda: _empty(c.call("do_fetch", [r9])))
        assert await a.call("do_remote", b.id, "disconnect", None) == "ok"
        await until(lambda: _now(b.disconnects))
        assert b.disconnects == ["io server disconnect"]
        # disconnect_sockets by room, across
        assert await z.call("do_sockets", "disconnect", [r1], False) == "ok"
        await until(lambda: _now(a.disconnects and d.disconnects))
        assert d.disconnects == ["io server disconnect"] and not c.disconnects and not z.disconnects
        await quiet()
        assert b.got("news") == [["in r7"]]


# -- server count, all rooms ----------------------------------------------------------------------------
async def test_server_count_and_all_rooms(mixed: Mixed) -> None:
    t0 = mixed.trio[0]
    r1 = room("r1")
    async with members((mixed.node, "n", [r1]), (t0, "t", [])) as (n, t):
        await servers_see_each_other(mixed, n, t)
        info = await t.call("do_info")
        assert info["stats"]["connected"] == 1 and info["stats"]["invalid"] == 0
        assert {r1, n.id, t.id} <= set(info["all_rooms"])  # ALL_ROOMS (classic) / fetch (sharded)
        if mixed.mode == "classic":  # Node's sharded and streams adapters have no allRooms
            assert {r1, n.id, t.id} <= set((await n.call("do_info"))["all_rooms"])


# -- examples/cluster, end to end -------------------------------------------------------------------
EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "cluster"
LISTENING = re.compile(rb"cluster member (\S+) listening on (http://127\.0\.0\.1:\d+) ")


def node_member_script(tmp_path: Path) -> Path:
    """examples/cluster/member.mjs, or (without ``npm ci --prefix examples/cluster``) a copy of it run
    beside tests/interop/node_modules, which pins the same packages and which CI installs."""
    require_node()
    if (EXAMPLE_DIR / "node_modules" / "@socket.io" / "redis-adapter").is_dir():
        return EXAMPLE_DIR / "member.mjs"
    copy = tmp_path / "member.mjs"
    shutil.copyfile(EXAMPLE_DIR / "member.mjs", copy)
    (tmp_path / "node_modules").symlink_to(INTEROP_DIR / "node_modules", target_is_directory=True)
    return copy


async def _listening(process: trio.Process) -> tuple[str, str]:
    """Read a member's stdout up to its "listening on" line: (its name, its URL)."""
    assert process.stdout is not None
    seen = b""
    while (match := LISTENING.search(seen)) is None:
        chunk = await process.stdout.receive_some()
        if not chunk:
            raise AssertionError(f"a member exited before listening; stdout: {seen!r}")
        seen += chunk
    return match.group(1).decode(), match.group(2).decode()


async def test_cluster_example_end_to_end(redis_url: str, tmp_path: Path) -> None:
    """The README's commands: two trio_rooms members and a Node member, then the chat client."""
    key = f"example-{uuid.uuid4().hex[:8]}"
    common = ["--port", "0", "--redis", redis_url, "--key", key]
    commands = [
        [sys.executable, str(EXAMPLE_DIR / "member.py"), "--name", "py-1", *common],
        [sys.executable, str(EXAMPLE_DIR / "member.py"), "--name", "py-2", *common],
        [require_node(), str(node_member_script(tmp_path)), "--name", "node-1", *common],
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes: list[trio.Process] = []
    stderr_paths = [tmp_path / f"member{index}.stderr" for index in range(len(commands))]
    try:
        urls: list[str] = []
        for command, stderr_path in zip(commands, stderr_paths, strict=True):
            with stderr_path.open("wb") as stderr, trio.fail_after(20):
                process = await trio.lowlevel.open_process(
                    command, stdout=subprocess.PIPE, stderr=stderr, env=env
                )
                processes.append(process)
                name, url = await _listening(process)
            assert name == command[command.index("--name") + 1]
            urls.append(url)
        with trio.fail_after(30):
            result = await trio.run_process(
                [sys.executable, str(EXAMPLE_DIR / "chat_across.py"), *urls],
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        out = result.stdout.decode()
        assert result.returncode == 0, f"{out}\n{result.stderr.decode()}"
        assert "cluster demo: OK" in out
        for line in (
            'alice@py-1 got "hi from carol" (said on node-1)',
            'carol@node-1 got "hi from alice" (said on py-1)',
            'carol@node-1 got "hi from bob" (said on py-2)',
            'bob@py-2 got "hi from alice" (said on py-1)',
        ):
            assert line in out, out
        # Ctrl-C stops every member cleanly
        for process in processes:
            process.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            codes = [await process.wait() for process in processes]
        errors = [path.read_text() for path in stderr_paths]
        assert codes == [0, 0, 0], errors
        assert not any("Traceback" in text for text in errors), errors
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
            assert process.stdout is not None
            await process.stdout.aclose()
