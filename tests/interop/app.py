"""The trio_rooms application that the interop scripts in this folder talk to.

Rule: every server-side behaviour a script checks is observable from the client, through an event's
ack, an emitted event or a record of what the disconnect handlers saw.

Run it by hand with ``python tests/interop/app.py --port 3000``, then point a script at it
(see README.md beside this file).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import Any

import trio

import trio_rooms

__all__ = ["build_server", "describe"]

MAX_RECORDS = 10_000


def describe(value: Any) -> Any:
    """Return ``value`` as JSON with every ``bytes`` replaced by ``{"bytes": <hex>}``.

    The scripts compare it with what they sent, which proves the server decoded the attachments into
    real bytes at the right places (an echo alone would not).
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, Mapping):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]
    return value


def _answer(value: Any) -> dict[str, Any]:
    """Describe what ``emit_with_ack`` returned: None, one value or a tuple of 2+ values."""
    if value is None:
        return {"n": 0, "args": []}
    if isinstance(value, tuple):
        return {"n": len(value), "args": [describe(v) for v in value]}
    return {"n": 1, "args": [describe(value)]}


def _rooms_arg(value: Any) -> str | list[str]:
    """A room argument as sent by a script: one room (str) or a list of rooms."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(r, str) for r in value):
        return list(value)
    raise TypeError(f"rooms must be a string or a list of strings, not {value!r}")


def build_server() -> trio_rooms.Server:
    """Build the interop application: namespaces "/", "/admin" and the dynamic ``/dyn-<digits>``."""
    server = trio_rooms.Server()
    root = server.of("/")
    admin = server.of("/admin")
    dyn = server.of(re.compile(r"^/dyn-\d+$"))

    # What the "disconnecting" and "disconnect" handlers saw, by socket id, for "last_disconnect".
    records: dict[str, dict[str, Any]] = {}

    def record(sid: str, **fields: Any) -> None:
        if sid not in records and len(records) >= MAX_RECORDS:
            records.pop(next(iter(records)))
        records.setdefault(sid, {}).update(fields)

    @root.use
    async def refuse_bad_token(socket: trio_rooms.Socket) -> None:
        if socket.handshake.auth.get("token") == "bad":
            raise trio_rooms.ConnectionRefused("not authorized", {"code": 42})

    @root.on("connection")
    async def on_root_connection(socket: trio_rooms.Socket) -> None:
        sid = socket.id

        @socket.on("handshake")
        async def handshake() -> dict[str, Any]:
            return {
                "id": socket.id,
                "auth": describe(socket.handshake.auth),
                "query": describe(dict(socket.handshake.query)),
                "rooms": sorted(socket.rooms),
            }

        @socket.on("join")
        async def join(rooms: Any) -> list[str]:
            socket.join(_rooms_arg(rooms))
            return sorted(socket.rooms)

        @socket.on("leave")
        async def leave(room: str) -> list[str]:
            socket.leave(room)
            return sorted(socket.rooms)

        @socket.on("rooms")
        async def rooms() -> list[str]:
            return sorted(socket.rooms)

        @socket.on("to_rooms")
        async def to_rooms(rooms: Any, except_rooms: Any, payload: Any) -> bool:
            op = server.to(_rooms_arg(rooms))
            if except_rooms:
                op = op.except_(_rooms_arg(except_rooms))
            await op.emit("msg", payload)
            return True

        @socket.on("socket_to")
        async def socket_to(rooms: Any, payload: Any) -> bool:
            await socket.to(_rooms_arg(rooms)).emit("msg", payload)
            return True

        @socket.on("socket_broadcast")
        async def socket_broadcast(payload: Any) -> bool:
            await socket.broadcast.emit("msg", payload)
            return True

        @socket.on("server_emit")
        async def server_emit(payload: Any) -> bool:
            await server.emit("msg", payload)
            return True

        @socket.on("private")
        async def private(target: str, payload: Any) -> bool:
            await server.to(target).emit("private", payload, sid)
            return True

        @socket.on("admin_to")
        async def admin_to(rooms: Any, except_rooms: Any, payload: Any) -> bool:
            op = server.of("/admin").to(_rooms_arg(rooms))
            if except_rooms:
                op = op.except_(_rooms_arg(except_rooms))
            await op.emit("admin_msg", payload)
            return True

        @socket.on("dyn_broadcast")
        async def dyn_broadcast(payload: Any) -> bool:
            await dyn.emit("dyn_msg", payload)
            return True

        @socket.on("echo")
        async def echo(*args: Any) -> tuple[Any, ...]:
            return args

        @socket.on("ack_none")
        async def ack_none() -> None:
            return None

        @socket.on("echo_binary")
        async def echo_binary(*args: Any) -> tuple[Any, ...]:
            return args

        @socket.on("describe")
        async def describe_args(*args: Any) -> Any:
            return describe(list(args))

        @socket.on("send_binary")
        async def send_binary() -> bool:
            await socket.emit(
                "binary",
                {"a": b"\x00\x01\x02", "nested": [b"\xff", {"deep": b"trio"}], "text": "t"},
                b"",
                b"last",
            )
            return True

        @socket.on("burst")
        async def burst(count: int) -> bool:
            for i in range(count):
                if i % 3 == 0:
                    await socket.emit("burst", i, i.to_bytes(4, "big"))
                else:
                    await socket.emit("burst", i)
            return True

        @socket.on("paced_burst")
        async def paced_burst(count: int, gap: float) -> bool:
            # Spread over time (to span a transport upgrade): "seq" i, with i as 4 bytes every third.
            for i in range(min(count, 1000)):
                if i:
                    await trio.sleep(min(gap, 0.1))
                if i % 3 == 0:
                    await socket.emit("seq", i, i.to_bytes(4, "big"))
                else:
                    await socket.emit("seq", i)
            return True

        # The numbers this socket sent with "record", in the order the handlers ran.
        recorded: list[Any] = []

        @socket.on("record")
        async def record_number(number: Any) -> None:
            if len(recorded) < MAX_RECORDS:
                recorded.append(number)

        @socket.on("recorded")
        async def get_recorded() -> list[Any]:
            return list(recorded)

        @socket.on("ask_client")
        async def ask_client(question: Any, seconds: float) -> dict[str, Any]:
            try:
                answer = await socket.emit_with_ack("question", question, timeout=seconds)
            except trio_rooms.AckTimeout:
                return {"timeout": True}
            return _answer(answer)

        @socket.on("ask_room")
        async def ask_room(rooms: Any, question: Any, seconds: float) -> dict[str, Any]:
            op = server.to(_rooms_arg(rooms)).timeout(seconds)
            try:
                answers = await op.emit_with_ack("question", question)
            except trio_rooms.AckTimeout as exc:
                return {"timeout": True, "responses": describe(exc.responses)}
            return {"timeout": False, "responses": describe(answers)}

        @socket.on("fetch_sockets")
        async def fetch_sockets(rooms: Any) -> list[dict[str, Any]]:
            found = await server.in_(_rooms_arg(rooms)).fetch_sockets()
            return sorted(({"id": s.id, "rooms": sorted(s.rooms)} for s in found), key=lambda d: d["id"])

        @socket.on("sockets_join")
        async def sockets_join(rooms: Any, new_rooms: Any) -> bool:
            await server.in_(_rooms_arg(rooms)).sockets_join(_rooms_arg(new_rooms))
            return True

        @socket.on("sockets_leave")
        async def sockets_leave(rooms: Any, old_rooms: Any) -> bool:
            await server.in_(_rooms_arg(rooms)).sockets_leave(_rooms_arg(old_rooms))
            return True

        @socket.on("disconnect_sockets")
        async def disconnect_sockets(rooms: Any) -> bool:
            await server.in_(_rooms_arg(rooms)).disconnect_sockets()
            return True

        @socket.on("boom")
        async def boom() -> None:
            raise RuntimeError("boom (raised on purpose by the interop app)")

        @socket.on("server_disconnect_me")
        async def server_disconnect_me() -> None:
            await socket.disconnect()

        @socket.on("last_disconnect")
        async def last_disconnect(target: str) -> dict[str, Any] | None:
            found = records.get(target)
            if found is None or "disconnect_reason" not in found:
                return None
            return dict(found)

        @socket.on("disconnecting")
        async def on_disconnecting(reason: str) -> None:
            record(sid, disconnecting_reason=str(reason), disconnecting_rooms=sorted(socket.rooms))

        @socket.on("disconnect")
        async def on_disconnect(reason: str) -> None:
            record(sid, disconnect_reason=str(reason), disconnect_rooms=sorted(socket.rooms))

    @admin.use
    async def admins_only(socket: trio_rooms.Socket) -> None:
        if socket.handshake.auth.get("role") != "admin":
            raise trio_rooms.ConnectionRefused("admins only")

    @admin.on("connection")
    async def on_admin_connection(socket: trio_rooms.Socket) -> None:
        await socket.emit("welcome", "/admin", socket.id)

        @socket.on("whoami")
        async def whoami() -> dict[str, Any]:
            return {"nsp": "/admin", "id": socket.id, "auth": describe(socket.handshake.auth)}

        @socket.on("join")
        async def join(rooms: Any) -> list[str]:
            socket.join(_rooms_arg(rooms))
            return sorted(socket.rooms)

    @dyn.on("connection")
    async def on_dyn_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("whoami")
        async def whoami() -> dict[str, Any]:
            return {"nsp": "dyn", "id": socket.id}

    return server


async def _serve(host: str, port: int) -> None:
    server = build_server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, host, port)
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
