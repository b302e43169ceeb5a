"""``python -m trio_rooms``: serve the demo application (echo + room chat, in-memory adapter).

Rule: the demo's handlers live here as plain functions that register on a namespace, so that
``examples/echo.py`` and ``examples/chat.py`` serve exactly the same events as the demo.

Events of the demo (main namespace "/"):

- ``"echo", *args``: emits ``"echo", *args`` back to the sender and acks with ``*args``.
- ``"join", room``: joins ``room``, tells the room ``"joined", {room, name}``; acks ``{rooms}``.
- ``"leave", room``: tells the room ``"left", {room, name, reason: "leave"}``, leaves; acks ``{rooms}``.
- ``"say", {room, text}``: emits ``"said", {room, name, text}`` to the room, sender included;
  acks ``{ok: true}`` (``{error}`` when the sender is not in the room).
- on disconnect, each of the socket's rooms gets ``"left", {room, name, reason}``.
- ``"members", {room, members: [{id, name}], count}`` goes to a room whenever someone joins or
  leaves it (disconnections included): its members on this server, sorted by name, at most
  ``MAX_MEMBERS`` of them (``count`` says how many there are). Changes that come together are sent
  once, in their latest state.
- ``"members", room``: acks the same ``{room, members, count}`` (``{error}`` when the sender is not
  in the room).
- ``"private", {to, text}``: sends ``"private", {from, name, text}`` to the socket ``to`` only (a
  socket id of this namespace, on this server, sharing a room with the sender); acks
  ``{ok: true, to: {id, name}}`` (``{error}`` otherwise).

A client may give itself a name with the CONNECT auth payload ``{"name": "alice"}``. Names are not
unique: the socket id tells two alices apart.

The demo also serves a chat page at ``/`` (``trio_rooms.chat_page``) that uses these events with the
stock ``socket.io-client`` browser bundle, found with ``--client-dist DIR`` or in the checkout
(``npm ci --prefix examples/browser`` installs it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import trio

from .chat_page import BUNDLE, INSTALL_HINT, chat_page, find_client_dist
from .namespace import Namespace
from .runner import run, serve_until_signal
from .server import Server
from .socket import Socket
from .types import SocketId

__all__ = [
    "add_chat",
    "add_echo",
    "add_member_lists",
    "add_private_messages",
    "build_demo_server",
    "configure_logging",
    "main",
    "member_list",
    "run_server",
    "serve_until_signal",
]

logger = logging.getLogger("trio_rooms.demo")

MAX_ROOM_NAME: Final = 64
MAX_NAME: Final = 32
MAX_TEXT: Final = 2000
MAX_MEMBERS: Final = 100
MAX_ROOMS: Final = 32  # chat rooms one socket may be in
MAX_SOCKET_ID: Final = 64


def add_echo(namespace: Namespace) -> None:
    """Register the echo event on ``namespace``: ``"echo"`` is emitted back and acked with its arguments."""

    @namespace.on("connection")
    async def on_connection(socket: Socket) -> None:
        @socket.on("echo")
        async def echo(*args: Any) -> tuple[Any, ...]:
            await socket.emit("echo", *args)
            return args  # a tuple is spread: the ack carries exactly the arguments received


def _rooms_of(socket: Socket) -> list[str]:
    """The chat rooms of ``socket`` (its own id-room left out), sorted."""
    return sorted(room for room in socket.rooms if room != socket.id)


def _room_error(socket: Socket, room: object) -> str | None:
    """Why ``room`` cannot be a chat room (None when it can)."""
    if not isinstance(room, str) or not 0 < len(room) <= MAX_ROOM_NAME:
        return f"a room is a string of 1 to {MAX_ROOM_NAME} characters"
    if room in socket.nsp.sockets:
        return "a socket id is not a chat room"  # or anyone could read another socket's private room
    if room not in socket.rooms and len(socket.rooms) > MAX_ROOMS:  # its own id-room is one of them
        return f"a socket is in at most {MAX_ROOMS} chat rooms"
    return None


def add_chat(namespace: Namespace) -> None:
    """Register the room chat on ``namespace``: ``join``, ``leave``, ``say`` and departure notices."""

    @namespace.on("connection")
    async def on_connection(socket: Socket) -> None:
        name = socket.handshake.auth.get("name")
        socket.data["name"] = name[:MAX_NAME] if isinstance(name, str) and name else socket.id[:8]
        logger.info("%s connected as %r", socket.id, socket.data["name"])

        @socket.on("join")
        async def join(room: Any) -> dict[str, Any]:
            error = _room_error(socket, room)
            if error is not None:
                return {"error": error}
            socket.join(room)
            await socket.nsp.to(room).emit("joined", {"room": room, "name": socket.data["name"]})
            return {"rooms": _rooms_of(socket)}

        @socket.on("leave")
        async def leave(room: Any) -> dict[str, Any]:
            if isinstance(room, str) and room in socket.rooms and room != socket.id:
                await socket.nsp.to(room).emit(
                    "left", {"room": room, "name": socket.data["name"], "reason": "leave"}
                )
                socket.leave(room)
            return {"rooms": _rooms_of(socket)}

        @socket.on("say")
        async def say(message: Any) -> dict[str, Any]:
            room = message.get("room") if isinstance(message, dict) else None
            text = message.get("text") if isinstance(message, dict) else None
            if not isinstance(text, str) or len(text) > MAX_TEXT:
                return {"error": f"text is a string of at most {MAX_TEXT} characters"}
            if not isinstance(room, str) or room == socket.id or room not in socket.rooms:
                return {"error": "join the room first"}
            await socket.nsp.to(room).emit("said", {"room": room, "name": socket.data["name"], "text": text})
            return {"ok": True}

        @socket.on("disconnecting")
        async def disconnecting(reason: str) -> None:
            # The rooms are still there: tell each one (the departing socket is left out).
            for room in _rooms_of(socket):
                await socket.to(room).emit(
                    "left", {"room": room, "name": socket.data["name"], "reason": reason}
                )

        @socket.on("disconnect")
        async def disconnect(reason: str) -> None:
            logger.info("%s (%r) disconnected: %s", socket.id, socket.data["name"], reason)


def _name_of(socket: Socket) -> str:
    name = socket.data.get("name")
    return name if isinstance(name, str) else socket.id[:8]


def member_list(namespace: Namespace, room: str) -> dict[str, Any]:
    """``{room, members: [{id, name}], count}``: the members of ``room`` on this server, sorted by name
    (at most ``MAX_MEMBERS``; ``count`` is their number)."""
    found = (namespace.sockets.get(sid) for sid in namespace.adapter.rooms.get(room, ()))
    people = sorted(
        ({"id": s.id, "name": _name_of(s)} for s in found if s), key=lambda m: (m["name"], m["id"])
    )
    return {"room": room, "members": people[:MAX_MEMBERS], "count": len(people)}


def _is_chat_room(socket: Socket, room: object) -> bool:
    return isinstance(room, str) and room != socket.id and room in socket.rooms


def add_member_lists(server: Server, namespace: Namespace) -> None:
    """Send ``"members"`` to a room of ``namespace`` when its members change, and answer the
    ``"members", room`` request (the events: this module's docstring).

    The adapter's ``join-room``/``leave-room`` events mark the room; a service of ``server`` sends the
    list of each marked room, computed when it sends (the latest state, once per burst of changes).
    """
    changed: dict[str, None] = {}  # the marked rooms, in order; at most the rooms that existed
    wake = trio.Event()

    def mark(room: str, sid: str) -> None:
        if room != sid:  # a socket's own room, joined at connection: no chat room
            changed[room] = None
            wake.set()

    async def announce(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal wake
        task_status.started()
        while True:
            await wake.wait()
            wake = trio.Event()
            while changed:
                room = next(iter(changed))
                del changed[room]
                try:
                    await namespace.to(room).emit("members", member_list(namespace, room))
                except Exception:  # a failed emit must not stop the server
                    logger.exception("the member list of %r could not be sent", room)

    namespace.adapter.on("join-room", mark)
    namespace.adapter.on("leave-room", mark)
    server.add_service(announce)

    @namespace.on("connection")
    async def on_connection(socket: Socket) -> None:
        @socket.on("members")
        async def members(room: Any) -> dict[str, Any]:
            if not _is_chat_room(socket, room):
                return {"error": "join the room first"}
            return member_list(namespace, room)


def add_private_messages(namespace: Namespace) -> None:
    """Register ``"private", {to, text}`` on ``namespace``: a message to one socket that shares a room
    with the sender (the event: this module's docstring)."""

    @namespace.on("connection")
    async def on_connection(socket: Socket) -> None:
        @socket.on("private")
        async def private(message: Any) -> dict[str, Any]:
            to = message.get("to") if isinstance(message, dict) else None
            text = message.get("text") if isinstance(message, dict) else None
            if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
                return {"error": f"text is a string of 1 to {MAX_TEXT} characters"}
            target = (
                namespace.sockets.get(SocketId(to))
                if isinstance(to, str) and len(to) <= MAX_SOCKET_ID
                else None
            )
            if target is None:
                return {"error": "to is the id of a socket connected here"}
            if target is socket:
                return {"error": "write to someone else"}
            if not any(_is_chat_room(target, room) for room in _rooms_of(socket)):
                return {"error": "you share no room with that socket"}
            await target.emit("private", {"from": socket.id, "name": _name_of(socket), "text": text})
            return {"ok": True, "to": {"id": target.id, "name": _name_of(target)}}


def build_demo_server(**options: Any) -> Server:
    """A Server (in-memory adapter) with the demo's events on "/" (echo, chat, member lists, private
    messages); ``options`` go to ``Server`` (``fallback=chat_page(...)`` serves the page)."""
    server = Server(**options)
    add_echo(server.of("/"))
    add_chat(server.of("/"))
    add_member_lists(server, server.of("/"))
    add_private_messages(server.of("/"))
    return server


def run_server(server: Server, host: str, port: int, *, title: str = "trio_rooms demo") -> int:
    """``trio_rooms.run(server, host, port)``; returns the exit code (0, or 1 when it cannot listen)."""
    try:
        run(server, host, port, title=title)
    except OSError as exc:  # the listen failed (address in use, unknown host, ...)
        print(f"{title}: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0


def configure_logging(level: str) -> None:
    """Log to stderr at ``level`` ("debug", "info", "warning" or "error")."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m trio_rooms",
        description=(
            "Serve the trio_rooms demo (echo + room chat, in-memory adapter): Socket.IO v5 over Engine.IO v4,"
            " HTTP long-polling and WebSocket with the upgrade between them. Ctrl-C or SIGTERM stops it"
            " gracefully; a second one exits at once."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=3000, help="port to listen on; 0 picks one (default: %(default)s)"
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics at GET /metrics (needs prometheus_client: "
        "pip install -e '.[metrics]' from a checkout)",
    )
    parser.add_argument(
        "--client-dist",
        metavar="DIR",
        type=Path,
        help=f"the dist directory of the npm package socket.io-client, whose {BUNDLE} the chat page at / "
        "loads (default: examples/browser's node_modules, then tests/interop's, in the checkout)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging level (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.client_dist is not None and not (args.client_dist / BUNDLE).is_file():
        parser.error(f"--client-dist {args.client_dist}: no {BUNDLE} there (the dist of socket.io-client)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """The command line entry point; returns the exit code."""
    args = _parse_args(argv)
    configure_logging(args.log_level)
    client_dist = args.client_dist or find_client_dist()
    if client_dist is None:
        print(f"chat page at /: the socket.io-client bundle is missing; {INSTALL_HINT}", flush=True)
    else:
        print(f"chat page at /, with {client_dist / BUNDLE}", flush=True)
    server = build_demo_server(metrics=args.metrics, fallback=chat_page(client_dist))
    return run_server(server, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
