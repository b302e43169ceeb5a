"""A trio_rooms server with the RedisAdapter, run as its own process by tests/test_redis_adapter.py.

Usage: ``python tests/helpers/cluster_server.py NAME REDIS_URL KEY [--sharded MODE] [--namespaces
/a,/b] [--dynamic REGEX] [--streams]``; ``--streams``: the RedisStreamsAdapter, on the stream KEY and
the channels KEY#...; prints ``PORT <n>`` once serving. Its clients drive it with events
("do_broadcast", "do_fetch", ...), each answered by ack, so a test can make any server act on the cluster
and see what every client receives. Every namespace has the same handlers: "/", the ``--namespaces``,
the children of the parent namespace ``--dynamic`` (removed once empty), those added by
"do_add_namespace".
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import Any

import trio

from trio_rooms import AckTimeout, AdapterError, Namespace, RedisAdapter, RedisStreamsAdapter, Server, Socket
from trio_rooms.adapter.redis import RedisAdapter as _RedisAdapterType


def build(
    name: str,
    url: str,
    key: str,
    sharded: bool,
    mode: str,
    namespaces: tuple[str, ...] = (),
    dynamic: str | None = None,
    streams: bool = False,
) -> Server:
    """The server of one cluster member named ``name``."""
    factory: Any
    if streams:
        factory = RedisStreamsAdapter.factory(
            url, stream_name=key, channel_prefix=key, request_timeout=2.0, reconnect_delay_max=0.5
        )
    else:
        factory = RedisAdapter.factory(
            url,
            key=key,
            sharded=sharded,
            subscription_mode=mode,
            request_timeout=2.0,
            reconnect_delay_max=0.5,
        )
    server = Server(
        adapter=factory,
        ping_interval=5,
        ping_timeout=5,
        cleanup_empty_child_namespaces=dynamic is not None,
    )
    server_events: list[Any] = []

    def adapter(ns: Namespace) -> _RedisAdapterType:
        found = ns.adapter
        assert isinstance(found, _RedisAdapterType)
        return found

    @server.on("hello")
    async def hello(*args: Any) -> Any:
        server_events.append(["hello", *args])
        return f"hello from {name}"

    @server.on("silent")
    async def silent(*args: Any) -> Any:
        server_events.append(["silent", *args])
        await trio.sleep_forever()

    async def connection(socket: Socket) -> None:
        ns = server.of(socket.nsp.name)  # the Namespace (a child of --dynamic included)
        auth = socket.handshake.auth
        socket.data["name"] = auth.get("name")
        socket.data["server"] = name
        socket.join(auth.get("rooms") or [])

        @socket.on("do_broadcast")
        async def do_broadcast(rooms: list[str], except_rooms: list[str], event: str, *args: Any) -> str:
            operator = ns.to(rooms) if rooms else ns.except_([])
            if except_rooms:
                operator = operator.except_(except_rooms)
            try:
                await operator.emit(event, *args)
            except AdapterError as exc:
                return f"AdapterError: {exc}"
            return "ok"

        @socket.on("do_local_broadcast")
        async def do_local_broadcast(event: str, *args: Any) -> str:
            await ns.local.emit(event, *args)
            return "ok"

        @socket.on("do_socket_to")
        async def do_socket_to(room: str, event: str, *args: Any) -> str:
            await socket.to(room).emit(event, *args)
            return "ok"

        @socket.on("do_ack_broadcast")
        async def do_ack_broadcast(rooms: list[str], timeout: float) -> Any:
            operator = ns.to(rooms) if rooms else ns.timeout(timeout)
            try:
                answers = await operator.timeout(timeout).emit_with_ack("question", name)
            except AckTimeout as exc:
                return {"timeout": True, "answers": sorted(map(str, exc.responses))}
            return {"timeout": False, "answers": sorted(map(str, answers))}

        @socket.on("do_fetch")
        async def do_fetch(rooms: list[str]) -> Any:
            operator = ns.in_(rooms) if rooms else ns.except_([])
            try:
                found = await operator.fetch_sockets()
            except AdapterError as exc:
                return f"AdapterError: {exc}"
            return sorted(
                (
                    {"id": s.id, "rooms": sorted(s.rooms), "data": s.data, "auth": s.handshake.auth}
                    for s in found
                ),
                key=lambda item: str(item["data"].get("name")),
            )

        @socket.on("do_remote")
        async def do_remote(sid: str, action: str, arg: Any) -> str:
            for found in await ns.in_(sid).fetch_sockets():
                if action == "emit":
                    await found.emit("private", arg)
                elif action == "join":
                    await found.join(arg)
                elif action == "leave":
                    await found.leave(arg)
                elif action == "disconnect":
                    await found.disconnect()
                return "ok"
            return "not found"

        @socket.on("do_sockets")
        async def do_sockets(action: str, rooms: list[str], arg: Any) -> str:
            operator = ns.in_(rooms)
            if action == "join":
                await operator.sockets_join(arg)
            elif action == "leave":
                await operator.sockets_leave(arg)
            elif action == "disconnect":
                await operator.disconnect_sockets(bool(arg))
            return "ok"

        @socket.on("do_server_side_emit")
        async def do_server_side_emit(event: str, with_ack: bool, timeout: float, *args: Any) -> Any:
            if not with_ack:
                await ns.server_side_emit(event, *args)
                return "ok"
            try:
                answers = await ns.server_side_emit_with_ack(event, *args, timeout=timeout)
            except AckTimeout as exc:
                return {"timeout": True, "answers": sorted(map(str, exc.responses))}
            return {"timeout": False, "answers": sorted(map(str, answers))}

        @socket.on("do_server_events")
        async def do_server_events() -> Any:
            return list(server_events)

        @socket.on("do_info")
        async def do_info() -> Any:
            try:
                count: Any = await adapter(ns).server_count()
                rooms: Any = sorted(await adapter(ns).all_rooms())
            except AdapterError as exc:
                count = rooms = f"AdapterError: {exc}"
            return {"server_count": count, "all_rooms": rooms, "stats": server.stats()["adapters"][ns.name]}

        @socket.on("do_stats")
        async def do_stats() -> Any:
            return server.stats()["adapters"]

        @socket.on("do_add_namespace")
        async def do_add_namespace(added: str) -> str:
            server.of(added).on("connection")(connection)
            return "ok"

        @socket.on("do_burst")
        async def do_burst(rooms: list[str], event: str, count: int, pause: float) -> Any:
            """``count`` broadcasts of ``event`` with 0, 1, ... to ``rooms``, ``pause`` s apart; the
            indices of those that raised AdapterError."""
            raised: list[int] = []
            for index in range(count):
                try:
                    await ns.to(rooms).emit(event, index)
                except AdapterError:
                    raised.append(index)
                if pause:
                    await trio.sleep(pause)
            return {"raised": raised}

    for each in ("/", *namespaces):
        server.of(each).on("connection")(connection)
    if dynamic is not None:
        server.of(re.compile(dynamic)).on("connection")(connection)
    return server


def option(flag: str) -> str | None:
    """The value after ``flag`` on the command line, if given."""
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else None


async def main() -> None:
    name, url, key = sys.argv[1:4]
    mode = option("--sharded")
    namespaces = tuple(filter(None, (option("--namespaces") or "").split(",")))
    streams = "--streams" in sys.argv
    server = build(
        name, url, key, mode is not None, mode or "dynamic", namespaces, option("--dynamic"), streams
    )
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        print(f"PORT {listeners[0].socket.getsockname()[1]}", flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main)
