"""The trio_rooms application behind the Admin UI tests: a small chat on "/" (join and leave rooms,
an echo) instrumented for the Socket.IO Admin UI (``trio_rooms.admin.instrument``).

Modes: ``dev`` (basic auth, development mode), ``readonly`` (no auth, read-only, development) and
``production`` (no auth, production mode). Run it by hand with
``python tests/interop/admin_app.py --port 3000 [--mode dev] [--ui]`` (``--ui`` also serves the
page of the installed ``@socket.io/admin-ui`` package at ``/admin-ui/``), then open the page and
connect to ``http://localhost:3000`` as ``admin`` / ``admin-password``.
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path

import bcrypt
import trio

import trio_rooms
from trio_rooms.admin import AdminInstrumentation, instrument, ui_files

__all__ = ["PASSWORD", "UI_DIST", "UI_PREFIX", "USERNAME", "build_server", "password_hash"]

USERNAME = "admin"
PASSWORD = "admin-password"
UI_DIST = Path(__file__).resolve().parent / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
UI_PREFIX = "/admin-ui/"
SERVER_ID = "trio-admin-test"


@cache
def password_hash() -> str:
    """The bcrypt hash of ``PASSWORD`` (cost 4: the tests log in many times)."""
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def build_server(
    mode: str = "dev",
    *,
    origins: list[str] | None = None,
    ui: bool = False,
    server_id: str = "trio-admin-test",
) -> tuple[trio_rooms.Server, AdminInstrumentation]:
    """The app in ``mode`` ("dev", "readonly" or "production")."""
    server = trio_rooms.Server(
        cors_allowed_origins=origins,
        fallback=ui_files(UI_DIST, UI_PREFIX) if ui else None,
    )

    @server.on("connection")
    async def connected(socket: trio_rooms.Socket) -> None:
        @socket.on("join")
        async def join(room: str) -> list[str]:
            socket.join(room)
            return sorted(socket.rooms)

        @socket.on("leave")
        async def leave(room: str) -> list[str]:
            socket.leave(room)
            return sorted(socket.rooms)

        @socket.on("rooms")
        async def rooms() -> list[str]:
            return sorted(socket.rooms)

        @socket.on("ping_me")
        async def ping_me(value: object) -> object:
            await socket.emit("pong_you", value)
            return value

    if mode == "dev":
        auth = {"type": "basic", "username": USERNAME, "password": password_hash()}
        admin = instrument(server, auth=auth, server_id=server_id)
    elif mode == "readonly":
        admin = instrument(server, read_only=True, server_id=server_id)
    elif mode == "production":
        admin = instrument(server, mode="production", server_id=server_id)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return server, admin


def main() -> None:  # pragma: no cover - by hand
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--mode", default="dev", choices=["dev", "readonly", "production"])
    parser.add_argument("--ui", action="store_true", help="serve the Admin UI's page at /admin-ui/")
    args = parser.parse_args()
    origins = [f"http://{args.host}:{args.port}", f"http://localhost:{args.port}", "https://admin.socket.io"]
    server, _ = build_server(args.mode, origins=origins, ui=args.ui)
    print(f"serving on http://{args.host}:{args.port}" + (f"{UI_PREFIX}" if args.ui else ""))
    trio.run(server.serve, args.host, args.port)


if __name__ == "__main__":  # pragma: no cover
    main()
