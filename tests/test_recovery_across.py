"""Connection state recovery across servers (Redis Streams adapter), end to end with the stock JavaScript
socket.io-client 4.8 (tests/interop/recovery_across.mjs).

A cluster on one stream of the session's redis-server: two trio_rooms servers
(``tests/helpers/cluster_server.py --streams --recovery``) and a Node socket.io 4.8 server with
``@socket.io/redis-streams-adapter`` 0.3 (``node_cluster_server.mjs --streams --recovery``). The client
connects through a switching proxy (here, in process) to server A; the script switches the proxy to B
and closes the transport; the client reconnects by itself, through the same URL, to B, where it
recovers: same id, rooms and data, the ticks broadcast meanwhile (by a third server) once and in order.
Directions: trio -> trio, Node -> trio and trio -> Node; the same with the Trio ``Client``.

Needs node, ``npm ci`` in tests/interop and redis-server: without them the tests skip, except in CI
(``CI=true``), where they fail.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio
from helpers.interop_harness import INTEROP_DIR, Run, check_run
from test_mixed_cluster import NODE_SCRIPT, PY_SCRIPT, require_node, spawned
from test_redis_adapter import STEP, ServerProcess

from trio_rooms import open_client

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

SCRIPT = "recovery_across.mjs"
SCRIPT_TIMEOUT = 60.0
CHECKS = 2
MAX_DISCONNECTION = 5.0  # seconds
SWITCH = b"GET /__switch"


@dataclass
class Cluster:
    """The three members, by name: "t0", "t1" (trio_rooms) and "n0" (Node)."""

    members: dict[str, ServerProcess]


@pytest.fixture(scope="module")
def cluster(redis_url: str) -> Iterator[Cluster]:
    node = require_node()
    key = f"across-{uuid.uuid4().hex[:8]}"
    started: dict[str, ServerProcess] = {}
    try:
        started["n0"] = spawned(
            "n0", key, [node, str(NODE_SCRIPT), "n0", redis_url, key, "--streams", "--recovery", "5000"]
        )
        for name in ("t0", "t1"):
            argv = [sys.executable, str(PY_SCRIPT), name, redis_url, key, "--streams"]
            started[name] = spawned(name, key, [*argv, "--recovery", str(MAX_DISCONNECTION)])
        yield Cluster(started)
    finally:
        for server in started.values():
            server.stop()


@dataclass
class SwitchingProxy:
    """A TCP proxy: new connections go to ``backends[0]``; a connection that opens with ``GET
    /__switch`` moves on to the next backend, cuts every open connection, and is answered 200."""

    backends: list[int]
    current: int = 0
    switches: int = 0
    connections: list[int] = field(default_factory=list)  # the backend of each connection
    _open: set[trio.CancelScope] = field(default_factory=set)

    async def serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            first = await stream.receive_some(65536)
            if first.startswith(SWITCH):
                self.current = min(self.current + 1, len(self.backends) - 1)
                self.switches += 1
                for scope in list(self._open):
                    scope.cancel()
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                return
            port = self.backends[self.current]
            self.connections.append(port)
            with trio.CancelScope() as scope:
                self._open.add(scope)
                try:
                    upstream = await trio.open_tcp_stream("127.0.0.1", port)
                    async with upstream, trio.open_nursery() as nursery:
                        await upstream.send_all(first)
                        nursery.start_soon(_pipe, stream, upstream, nursery.cancel_scope)
                        nursery.start_soon(_pipe, upstream, stream, nursery.cancel_scope)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                finally:
                    self._open.discard(scope)


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    done.cancel()


async def run_script(node: str, a: ServerProcess, b: ServerProcess, control: ServerProcess, mode: str) -> Run:
    proxy = SwitchingProxy([a.port, b.port])
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, proxy.serve, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}"
        try:
            with trio.move_on_after(SCRIPT_TIMEOUT) as scope:
                result = await trio.run_process(
                    [node, SCRIPT, url, control.url, mode],
                    cwd=INTEROP_DIR,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        finally:
            nursery.cancel_scope.cancel()
    if scope.cancelled_caught:
        return Run(-1, "", "", timed_out=True)
    assert proxy.switches == 1, "the script switched the proxy once"
    assert a.port in proxy.connections and b.port in proxy.connections, "both servers were used"
    return Run(
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
        timed_out=False,
    )


DIRECTIONS = {
    "trio->trio": ("t0", "t1", "n0"),
    "node->trio": ("n0", "t0", "t1"),
    "trio->node": ("t0", "n0", "t1"),
}


@pytest.mark.parametrize("mode", ["default", "polling", "websocket"])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_js_client_recovers_on_another_server(cluster: Cluster, direction: str, mode: str) -> None:
    node = require_node()
    a, b, control = (cluster.members[name] for name in DIRECTIONS[direction])
    run = trio.run(run_script, node, a, b, control, mode)
    check_run(f"{SCRIPT} {direction} {mode}", run, min_ok=CHECKS, timeout=SCRIPT_TIMEOUT)


async def _trio_client_run(a: ServerProcess, b: ServerProcess, control_server: ServerProcess) -> None:
    proxy = SwitchingProxy([a.port, b.port])
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, proxy.serve, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}"
        options: dict[str, Any] = {"transports": ("websocket",), "randomization_factor": 0.0}
        async with (
            open_client(control_server.url, reconnection=False, **options) as control,
            open_client(
                url, auth={"name": "trio", "rooms": ["r"]}, reconnection_delay=0.5, **options
            ) as client,
        ):
            ticks: list[Any] = []

            @client.on("tick")
            async def tick(*args: Any) -> None:
                ticks.append(args)

            async def tick_range(start: int, stop: int) -> None:
                for n in range(start, stop):
                    assert (
                        await control.emit_with_ack("do_broadcast", ["r"], [], "tick", n, timeout=STEP)
                        == "ok"
                    )

            async def until(check: Any) -> None:
                with trio.fail_after(STEP):
                    while not await check():  # noqa: ASYNC110 - another process's state
                        await trio.sleep(0.02)

            async def gone() -> bool:
                return not await control.emit_with_ack("do_fetch", [sid], timeout=STEP)

            async def ticked(count: int) -> bool:
                await trio.lowlevel.checkpoint()
                return len(ticks) >= count

            sid = client.id
            assert sid is not None and not client.recovered
            await tick_range(0, 1)
            await until(lambda: ticked(1))
            stream = await trio.open_tcp_stream("127.0.0.1", listener.socket.getsockname()[1])
            async with stream:  # the switch cuts the client's connection: it reconnects, to B
                await stream.send_all(SWITCH + b" HTTP/1.1\r\nhost: x\r\n\r\n")
                assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 200")
            await until(gone)
            await tick_range(1, 4)

            async def back() -> bool:
                await trio.lowlevel.checkpoint()
                return client.connected and len(ticks) >= 4

            await until(back)
            assert client.recovered and client.id == sid
            await tick_range(4, 5)
            await until(lambda: ticked(5))
            await trio.sleep(0.3)
            assert list(ticks) == [(n,) for n in range(5)]  # the Client strips the offsets
            found = await control.emit_with_ack("do_fetch", [sid], timeout=STEP)
            assert [(f["id"], f["rooms"], f["data"]["name"]) for f in found] == [
                (sid, sorted([sid, "r"]), "trio")
            ]
        assert proxy.connections[-1] == b.port
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_trio_client_recovers_on_another_server(cluster: Cluster, direction: str) -> None:
    a, b, control = (cluster.members[name] for name in DIRECTIONS[direction])
    trio.run(_trio_client_run, a, b, control)
