"""The Socket.IO Admin UI watching the demo server (echo + room chat), with the page served here.

Usage::

    python examples/admin_ui.py server [--host 127.0.0.1] [--port 3000] [--ui-dist DIR]
    python examples/admin_ui.py demo

``server`` serves the demo events of ``python -m trio_rooms``, instrumented with
``trio_rooms.admin.instrument`` (basic auth: user ``admin``, the password from the
``ADMIN_PASSWORD`` environment variable, else a random one printed at start), and the Admin UI's
own page at ``/admin-ui/`` when the npm package is installed (``--ui-dist``, by default
``tests/interop/node_modules/@socket.io/admin-ui/ui/dist``, which ``npm ci`` in tests/interop
installs; nothing of the page is in this repository). Open ``http://127.0.0.1:3000/admin-ui/``,
give it ``http://127.0.0.1:3000`` and log in. The hosted page, https://admin.socket.io, is allowed
too (``cors_allowed_origins``).

``demo`` runs the server on a free loopback port and a chat user, plays the page with the trio_rooms
client (login, ``config``, ``all_sockets``, a live ``room_joined``, the ``_disconnect`` command) and
fetches the page's ``index.html`` when the package is installed; it exits 0 when every check passes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import bcrypt
import trio

import trio_rooms
from trio_rooms.__main__ import build_demo_server, configure_logging, run_server
from trio_rooms.admin import instrument, ui_files
from trio_rooms.client import open_client

__all__ = ["build_server"]

ROOT: Final = Path(__file__).resolve().parent.parent
UI_DIST: Final = ROOT / "tests" / "interop" / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
DEMO_TIMEOUT: Final = 20.0


def build_server(password: str, ui_dist: Path | None) -> trio_rooms.Server:
    """The demo server, instrumented for the Admin UI, serving the page from ``ui_dist`` if given."""
    server = build_demo_server(
        # The page served here is same-origin; the hosted one runs on its own origin.
        cors_allowed_origins=lambda origin: origin == "https://admin.socket.io",
        fallback=ui_files(ui_dist) if ui_dist is not None else None,
    )
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    instrument(server, auth={"type": "basic", "username": "admin", "password": hashed})
    return server


async def run_demo(server_url: str, password: str, with_page: bool) -> bool:
    ok = True

    def check(name: str, passed: bool, detail: object = "") -> None:
        nonlocal ok
        ok = ok and passed
        print(f"ok   {name}" if passed else f"FAIL {name}: {detail}", flush=True)

    seen: dict[str, list[tuple[Any, ...]]] = {}
    async with open_client(server_url, reconnection=False, transports=["websocket"]) as user:
        page_auth = {"username": "admin", "password": password}
        async with open_client(server_url, namespace="/admin", auth=page_auth, reconnection=False) as page:
            for event in ("config", "all_sockets", "room_joined"):

                def recorder(name: str) -> Any:
                    async def record(*args: Any) -> None:
                        seen.setdefault(name, []).append(args)
                        await trio.lowlevel.checkpoint()

                    return record

                page.on(event)(recorder(event))
            with trio.move_on_after(5):
                while "all_sockets" not in seen:  # noqa: ASYNC110 - the page's handlers fill it
                    await trio.sleep(0.02)
            check(
                "the page logged in and got config",
                "EMIT" in seen.get("config", [({},)])[0][0].get("supportedFeatures", []),
                seen.get("config"),
            )
            listed = [s["id"] for s in seen.get("all_sockets", [([],)])[0][0]]
            check("all_sockets lists the chat user", user.id in listed, listed)
            await user.emit_with_ack("join", "a")
            with trio.move_on_after(5):
                while not any(args[1] == "a" for args in seen.get("room_joined", [])):  # noqa: ASYNC110
                    await trio.sleep(0.02)
            check("room_joined arrived live", any(a[1] == "a" for a in seen.get("room_joined", [])), seen)
            await page.emit("_disconnect", "/", False, user.id)
            with trio.move_on_after(5):
                while user.connected:  # noqa: ASYNC110 - the client's state
                    await trio.sleep(0.02)
            check("the page's _disconnect disconnected the user", not user.connected)
    if with_page:
        async with await trio.open_tcp_stream("127.0.0.1", int(server_url.rsplit(":", 1)[1])) as stream:
            await stream.send_all(b"GET /admin-ui/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
        check("the page is served at /admin-ui/", b"200" in answer[:20] and b"Socket.IO Admin UI" in answer)
    return ok


async def demo() -> int:
    password = secrets.token_urlsafe(12)
    with_page = UI_DIST.is_dir()
    with trio.move_on_after(DEMO_TIMEOUT):
        async with trio.open_nursery() as nursery:
            server = build_server(password, UI_DIST if with_page else None)
            listeners: list[trio.SocketListener] = await nursery.start(server.serve, "127.0.0.1", 0)
            ok = await run_demo(
                f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", password, with_page
            )
            nursery.cancel_scope.cancel()
        print("admin demo: OK" if ok else "admin demo: FAILED", flush=True)
        return 0 if ok else 1
    print(f"admin demo: not done within {DEMO_TIMEOUT} s", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the Socket.IO Admin UI watching the trio_rooms demo server")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="serve until Ctrl-C")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=3000)
    server.add_argument("--ui-dist", type=Path, default=UI_DIST, help="the page's files (ui/dist)")
    commands.add_parser("demo", help="the server, a user and the page played by a client, with checks")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return trio.run(demo)
    configure_logging("info")
    password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    if "ADMIN_PASSWORD" not in os.environ:
        print(f"Admin UI login: admin / {password}", flush=True)
    ui_dist = args.ui_dist if args.ui_dist.is_dir() else None
    if ui_dist is None:
        print("the page's files are not installed (npm ci in tests/interop): use https://admin.socket.io")
    else:
        print(f"the page: http://{args.host}:{args.port}/admin-ui/")
    return run_server(build_server(password, ui_dist), args.host, args.port, title="admin UI example")


if __name__ == "__main__":
    sys.exit(main())
