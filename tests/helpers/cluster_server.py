"""A trio_rooms server with the RedisAdapter, run as its own process by tests/test_redis_adapter.py.

Usage: ``python tests/helpers/cluster_server.py NAME REDIS_URL KEY [--sharded MODE] [--namespaces
/a,/b] [--dynamic REGEX] [--streams] [--recovery SECONDS] [--lag-probe PATH]``. ``--streams``: the
RedisStreamsAdapter, on the stream KEY and the channels KEY#...; ``--recovery``: connection state
recovery on, with that ``max_disconnection_duration`` (a recovered socket keeps its data and rooms: the
handler sets them on a first connection only); ``--lag-probe``: log the event loop's late wake-ups and
long task steps to PATH (see ``probe_lag``); prints ``PORT <n>`` once serving. Its clients drive it with
events ("do_broadcast", "do_fetch", ...), each answered by ack, so a test can make any server act on the
cluster and see what every client receives. Every namespace has the same handlers: "/", the
``--namespaces``, the children of the parent namespace ``--dynamic`` (removed once empty), those added
by "do_add_namespace".
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from typing import Any

import trio

from trio_rooms import (
    AckTimeout,
    AdapterError,
    ConnectionStateRecovery,
    Namespace,
    RedisAdapter,
    RedisStreamsAdapter,
    Server,
    Socket,
)
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
    recovery: float | None = None,
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
        connection_state_recovery=(
            None if recovery is None else ConnectionStateRecovery(max_disconnection_duration=recovery)
        ),
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
        if not socket.recovered:  # a recovered socket has its data and rooms back
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


async def probe_lag(path: str, every: float = 0.005, report: float = 0.02) -> None:
    """Append ``<monotonic> <late s> <cpu s>`` to ``path`` whenever a ``every``-second sleep of the event
    loop ends more than ``report`` s late: ``cpu`` is this thread's CPU time meanwhile (close to
    ``late`` when the loop was held by work, near 0 when the process was not given a CPU)."""
    with open(path, "a") as out:  # noqa: ASYNC230 - a small local file, written rarely

        class LongSteps(trio.abc.Instrument):
            """Log each task step over ``report`` s: its task and where it stopped."""

            def before_task_step(self, task: trio.lowlevel.Task) -> None:
                self.started = time.perf_counter()

            def after_task_step(self, task: trio.lowlevel.Task) -> None:
                took = time.perf_counter() - self.started
                if took > report:
                    frames = []
                    coro: Any = task.coro
                    while coro is not None and getattr(coro, "cr_frame", None) is not None:
                        frame = coro.cr_frame
                        frames.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                        coro = coro.cr_await
                    out.write(f"# step {took * 1000:.1f} ms {task.name} {' > '.join(frames[-4:])}\n")

        trio.lowlevel.add_instrument(LongSteps())
        while True:
            start, cpu = time.monotonic(), time.thread_time()
            await trio.sleep(every)
            late = time.monotonic() - start - every
            if late > report:
                out.write(f"{time.monotonic():.6f} {late:.6f} {time.thread_time() - cpu:.6f}\n")
                out.flush()


async def main() -> None:
    name, url, key = sys.argv[1:4]
    mode = option("--sharded")
    namespaces = tuple(filter(None, (option("--namespaces") or "").split(",")))
    streams = "--streams" in sys.argv
    recovery = option("--recovery")
    server = build(
        name,
        url,
        key,
        mode is not None,
        mode or "dynamic",
        namespaces,
        option("--dynamic"),
        streams,
        None if recovery is None else float(recovery),
    )
    async with trio.open_nursery() as nursery:
        lag_probe = option("--lag-probe")
        if lag_probe is not None:
            nursery.start_soon(probe_lag, lag_probe)
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        print(f"PORT {listeners[0].socket.getsockname()[1]}", flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main)
