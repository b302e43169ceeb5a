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

A client may give itself a name with the CONNECT auth payload ``{"name": "alice"}``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, Final

from .namespace import Namespace
from .runner import run, serve_until_signal
from .server import Server
from .socket import Socket

__all__ = [
    "add_chat",
    "add_echo",
    "build_demo_server",
    "configure_logging",
    "main",
    "run_server",
    "serve_until_signal",
]

logger = logging.getLogger("trio_rooms.demo")

MAX_ROOM_NAME: Final = 64
MAX_NAME: Final = 32
MAX_TEXT: Final = 2000


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


def build_demo_server(**options: Any) -> Server:
    """A Server (in-memory adapter) with the echo and chat events on "/"; ``options`` go to ``Server``."""
    server = Server(**options)
    add_echo(server.of("/"))
    add_chat(server.of("/"))
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
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging level (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line entry point; returns the exit code."""
    args = _parse_args(argv)
    configure_logging(args.log_level)
    return run_server(build_demo_server(metrics=args.metrics), args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
