"""The Admin UI's instrumentation on a cluster: two trio_rooms servers sharing a real redis-server
through ``RedisAdapter``, both instrumented; the page (played by the trio_rooms client) is logged in
on server A, the users are on server B. The socket list, the stats, the live events and the commands
are cluster-wide. Needs redis-server (skip locally, fail in CI)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import trio
from test_admin import load_admin_app

import trio_rooms
from trio_rooms import RedisAdapter
from trio_rooms.admin import instrument
from trio_rooms.client import Client, open_client

STEP = 10.0


def _server(redis_url: str, key: str, server_id: str) -> trio_rooms.Server:
    server = trio_rooms.Server(adapter=RedisAdapter.factory(redis_url, key=key))

    @server.on("connection")
    async def connected(socket: trio_rooms.Socket) -> None:
        @socket.on("join")
        async def join(room: str) -> None:
            socket.join(room)

        @socket.on("rooms")
        async def rooms() -> list[str]:
            return sorted(socket.rooms)

    auth = {"type": "basic", "username": "admin", "password": load_admin_app().password_hash()}
    instrument(server, auth=auth, server_id=server_id)
    return server


def _recorder(client: Client, events: list[str]) -> list[tuple[str, tuple[Any, ...]]]:
    log: list[tuple[str, tuple[Any, ...]]] = []
    for event in events:

        def handler_for(name: str) -> Callable[..., Any]:
            async def record(*args: Any) -> None:
                log.append((name, args))
                await trio.lowlevel.checkpoint()

            return record

        client.on(event)(handler_for(event))
    return log


async def _serve(nursery: trio.Nursery, server: trio_rooms.Server) -> str:
    listeners = await nursery.start(server.serve, "127.0.0.1", 0)
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


async def _until(predicate: Callable[[], Any]) -> Any:
    """Poll ``predicate`` until it returns something truthy (the caller's deadline bounds it)."""
    while True:
        found = predicate()
        if found:
            return found
        await trio.sleep(0.02)


async def test_lists_stats_live_events_and_commands_are_cluster_wide(redis_url: str) -> None:
    key = f"admin-{uuid.uuid4().hex[:8]}"
    a, b = _server(redis_url, key, "A"), _server(redis_url, key, "B")
    app = load_admin_app()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url_a, url_b = [await _serve(nursery, server) for server in (a, b)]
            while await a.adapter.server_count() < 2:  # noqa: ASYNC110 - a Redis query, not a flag
                await trio.sleep(0.05)
            async with open_client(url_b, reconnection=False, transports=["websocket"]) as bob:
                await bob.emit_with_ack("join", "blue")
                page_auth = {"username": app.USERNAME, "password": app.PASSWORD}
                async with open_client(url_a, namespace="/admin", auth=page_auth, reconnection=False) as page:
                    log = _recorder(page, ["all_sockets", "server_stats", "socket_connected"])
                    await _check(log, page, bob, url_b)
            nursery.cancel_scope.cancel()


async def _check(log: list[tuple[str, tuple[Any, ...]]], page: Client, bob: Client, url_b: str) -> None:
    assert bob.id is not None
    with trio.fail_after(STEP):
        (sockets,) = await _until(lambda: next((args for name, args in log if name == "all_sockets"), None))
    mine = [s for s in sockets if s["id"] == bob.id]
    assert len(mine) == 1, "bob, on server B, is in server A's all_sockets"
    assert sorted(mine[0]["rooms"]) == sorted([bob.id, "blue"])
    assert len(mine[0]["clientId"]) == 12 and mine[0]["transport"] == "websocket"
    assert "_admin" not in mine[0]["data"]
    # server_stats of both servers reach the page on A.
    with trio.fail_after(STEP):
        await _until(lambda: {"A", "B"} <= {args[0]["serverId"] for n, args in log if n == "server_stats"})
    # A live event on B reaches the page on A.
    async with open_client(url_b, reconnection=False, transports=["websocket"]) as carol:
        with trio.fail_after(STEP):
            await _until(
                lambda: any(name == "socket_connected" and args[0]["id"] == carol.id for name, args in log)
            )
    # Commands from the page on A act on bob on B.
    got: list[tuple[Any, ...]] = []

    @bob.on("hello")
    async def hello(*args: Any) -> None:
        got.append(args)
        await trio.lowlevel.checkpoint()

    await page.emit("emit", "/", "blue", "hello", 1)
    await page.emit("join", "/", "green", bob.id)
    with trio.fail_after(STEP):
        await _until(lambda: got == [(1,)])
        while "green" not in await bob.emit_with_ack("rooms"):  # noqa: ASYNC110 - a query, not a flag
            await trio.sleep(0.05)
    await page.emit("_disconnect", "/", False, bob.id)
    with trio.fail_after(STEP):
        await _until(lambda: not bob.connected)
