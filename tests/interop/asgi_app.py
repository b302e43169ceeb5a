"""The interop application (app.py) as an ASGI application, beside an application route of its own.

Serve it with Hypercorn's trio worker, from this folder::

    hypercorn -k trio --bind 127.0.0.1:3000 asgi_app:app

``/socket.io/`` is trio_rooms (``trio_rooms.ASGIApp``); every other path goes to ``own_app``, a plain
ASGI application: ``GET /hello`` answers ``hello from the application``, anything else 404. Its
lifespan records ``startup`` and ``shutdown`` (forwarded by ``ASGIApp``).

With the environment variable ``TRIO_ROOMS_EVENTS`` set to a file name, the app appends one line to
that file per event the tests look for after the server stopped: ``lifespan startup``, ``lifespan
shutdown``, and ``disconnect <reason>`` per socket of the main namespace.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app import build_server  # type: ignore[import-not-found, unused-ignore]

import trio_rooms

__all__ = ["app", "own_app"]

EVENTS = os.environ.get("TRIO_ROOMS_EVENTS")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def record(line: str) -> None:
    if EVENTS:
        with open(EVENTS, "a", encoding="utf-8") as f:
            f.write(line + "\n")


async def own_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The application's own routes (a stand-in for Starlette or Quart-Trio)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                record("lifespan startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                record("lifespan shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    found = scope["path"] == "/hello"
    body = b"hello from the application" if found else b"Not Found"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200 if found else 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build_app() -> trio_rooms.ASGIApp:
    server = build_server()

    @server.on("connection")
    async def log_disconnects(socket: trio_rooms.Socket) -> None:
        @socket.on("disconnect")
        async def on_disconnect(reason: str) -> None:
            record(f"disconnect {reason}")

    return trio_rooms.ASGIApp(server, own_app)


app = build_app()
