"""The trio_rooms application that ``hooks_client.mjs`` talks to: every application hook of issue 15.

Rule: what the hooks saw is recorded per socket id and readable from the client (namespace
``/observer``, event ``"records"``), so that each check is decided end to end; what the engine
hooks saw (``connection_error``) is kept in ``HooksApp.errors`` for the tests that serve it in process.

On ``/`` each socket gets, in this order: the catch-all listeners ``any1``, ``any2`` (``on_any``),
then ``pre1``, ``pre2`` (``prepend_any``: so they run pre2, pre1, any1, any2), the middlewares
``use1`` (rejects "forbidden", upper-cases the str arguments of "rewrite") and ``use2``, an
``"error"`` handler, and with ``auth.outgoing`` an outgoing listener. Engine hooks: ``initial_headers``
sets two cookies (``sticky=1`` and ``second=2``), ``headers`` sets ``x-hooked: yes``.

Run it by hand with ``python tests/interop/hooks_app.py --port 3000``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

import trio_rooms
from trio_rooms.engine import ConnectionErrorEvent, HttpRequest

__all__ = ["HooksApp", "build_hooks_app"]

MAX_SOCKETS = 1_000
MAX_RECORDS = 1_000


def describe(value: Any) -> Any:
    """``value`` as JSON, each ``bytes`` as ``{"bytes": <hex>}``."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, Mapping):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]
    return value


@dataclass
class HooksApp:
    """The server, and what its hooks saw."""

    server: trio_rooms.Server
    #: Per socket id: what its hooks and handlers saw, in order.
    records: dict[str, list[Any]] = field(default_factory=dict)
    #: What the ``connection_error`` hook saw: (code, message, request target).
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    def record(self, sid: str) -> list[Any]:
        """The records of socket ``sid`` (made on first use; past the bound, the oldest are dropped)."""
        found = self.records.get(sid)
        if found is None:
            if len(self.records) >= MAX_SOCKETS:
                self.records.pop(next(iter(self.records)))
            found = self.records[sid] = []
        return found


def build_hooks_app() -> HooksApp:
    """Build the application (see the module's docstring)."""
    server = trio_rooms.Server()
    app = HooksApp(server)
    root = server.of("/")
    observer = server.of("/observer")

    def initial_headers(headers: dict[str, str | list[str]], request: HttpRequest) -> None:
        headers["set-cookie"] = ["sticky=1; Path=/", "second=2"]

    def every_answer(headers: dict[str, str | list[str]], request: HttpRequest) -> None:
        headers["x-hooked"] = "yes"

    def connection_error(err: ConnectionErrorEvent) -> None:
        if len(app.errors) < MAX_RECORDS:
            app.errors.append((int(err.code), err.message, err.request.target))

    server.engine.on("initial_headers", initial_headers)  # called with the function
    server.engine.on("headers")(every_answer)  # as a decorator
    server.engine.on("connection_error", connection_error)

    @server.on("server_only")
    async def server_only(*args: Any) -> None:
        """A server-level handler: it receives other servers' server-side emits, not client events."""
        await trio.lowlevel.checkpoint()

    @root.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        rec = app.record(socket.id)

        def keep(*entry: Any) -> None:
            if len(rec) < MAX_RECORDS:
                rec.append(list(entry))

        async def any1(event: str, *args: Any) -> None:
            keep("any1", event, describe(args))

        async def any2(event: str, *args: Any) -> None:
            keep("any2", event)

        async def pre1(event: str, *args: Any) -> None:
            keep("pre1", event)

        async def pre2(event: str, *args: Any) -> None:
            keep("pre2", event)

        socket.on_any(any1)
        socket.on_any(any2)
        socket.prepend_any(pre1)
        socket.prepend_any(pre2)

        @socket.use
        async def use1(event: str, args: list[Any]) -> None:
            keep("use1", event)
            if event == "forbidden":
                raise PermissionError("forbidden event")
            if event == "rewrite":
                args[:] = [a.upper() if isinstance(a, str) else a for a in args]

        @socket.use
        async def use2(event: str, args: list[Any]) -> None:
            keep("use2", event, describe(args))

        @socket.on("error")
        async def on_error(exc: Exception) -> None:
            keep("error", type(exc).__name__, str(exc))

        def outgoing(event: str, *args: Any) -> None:
            keep("out", event, describe(args))

        if socket.handshake.auth.get("outgoing"):
            socket.on_any_outgoing(outgoing)

        @socket.on("echo")
        async def echo(*args: Any) -> tuple[Any, ...]:
            keep("handler", "echo")
            return args

        @socket.on("forbidden")
        async def forbidden(*args: Any) -> str:
            keep("handler", "forbidden")
            return "the handler of a rejected event ran"

        @socket.on("rewrite")
        async def rewrite(*args: Any) -> tuple[Any, ...]:
            keep("handler", "rewrite", describe(args))
            return args

        async def not_echo(*args: Any) -> None:
            await trio.lowlevel.checkpoint()

        @socket.on("remove")
        async def remove(what: str) -> bool:
            if what == "off_echo_other":
                socket.off("echo", not_echo)  # not its handler: nothing happens
            elif what == "off_echo":
                socket.off("echo")
            elif what == "off_any1":
                socket.off_any(any1)
            elif what == "off_any_all":
                socket.off_any()
            elif what == "off_outgoing":
                socket.off_any_outgoing(outgoing)
            else:
                return False
            return True

        @socket.on("join")
        async def join(room: str) -> bool:
            socket.join(room)
            return True

        @socket.on("to_room")
        async def to_room(room: str, payload: Any) -> bool:
            await socket.to(room).emit("news", payload)
            return True

        @socket.on("server_to_room")
        async def server_to_room(room: str, payload: Any) -> bool:
            await server.to(room).emit("news", payload)
            return True

        @socket.on("emit_forms")
        async def emit_forms() -> list[Any]:
            await socket.emit("direct", 1)
            first = await socket.emit_with_ack("ask", 2, timeout=2)
            await socket.volatile.emit("vol", 3)
            second = await socket.timeout(2).emit_with_ack("ask", 4)
            try:
                third = await socket.timeout(0.3).emit_with_ack("ignore", 5)
            except trio_rooms.AckTimeout:
                third = "timeout"
            await socket.send("hello", 6)
            return [first, second, third]

        @socket.on("message")
        async def message(*args: Any) -> None:
            keep("handler", "message", describe(args))
            await socket.send("got", *args)

    @observer.on("connection")
    async def on_observer(socket: trio_rooms.Socket) -> None:
        @socket.on("records")
        async def records(sid: str) -> list[Any]:
            return list(app.records.get(sid, []))

    return app


async def _serve(host: str, port: int) -> None:
    app = build_hooks_app()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(app.server.serve, host, port)
        for listener in listeners:
            print("listening on", listener.socket.getsockname(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    trio.run(_serve, args.host, args.port)


if __name__ == "__main__":
    main()
