"""trio_rooms inside a Starlette application, on one port, under Hypercorn's trio worker.

Run it from the repository root (after ``pip install -e . "hypercorn[trio]" starlette``)::

    hypercorn -k trio --bind 127.0.0.1:8000 examples/asgi_starlette.py:app

- ``/socket.io/``: trio_rooms, with the room chat of ``examples/chat.py`` (``join``, ``leave``,
  ``say``; ``python examples/chat.py demo --url http://127.0.0.1:8000`` talks to it);
- ``GET /``: a page of the application;
- ``GET /api/rooms``: the chat rooms and their member counts, read from the server's adapter;
- ``POST /api/say`` with ``{"room": ..., "text": ...}``: says ``text`` in ``room`` as "api" (an HTTP
  route emitting to a room: Starlette's handlers run on the same Trio loop as trio_rooms).

``trio_rooms.ASGIApp(server, starlette_app)`` routes ``/socket.io/`` to trio_rooms and everything else
to Starlette, and forwards the lifespan to Starlette around the server's own (Starlette's startup
runs first, its shutdown after every socket was disconnected).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

import trio_rooms
from trio_rooms.__main__ import add_chat

__all__ = ["app", "server", "web"]

server = trio_rooms.Server()
add_chat(server.of("/"))


def chat_rooms() -> dict[str, int]:
    """The rooms of the main namespace that sockets joined (their own id rooms left out)."""
    namespace = server.of("/")
    return {
        room: len(sids) for room, sids in namespace.adapter.rooms.items() if room not in namespace.sockets
    }


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>trio_rooms + Starlette</title>"
        "<h1>trio_rooms + Starlette</h1><p>Socket.IO on <code>/socket.io/</code>; "
        '<a href="/api/rooms">/api/rooms</a>.</p>'
    )


async def rooms(request: Request) -> JSONResponse:
    return JSONResponse(chat_rooms())


async def say(request: Request) -> JSONResponse:
    body: Any = await request.json()
    room, text = body.get("room"), body.get("text")
    if not (isinstance(room, str) and isinstance(text, str)) or room not in chat_rooms():
        return JSONResponse({"error": "a room with members, and a text"}, status_code=400)
    await server.to(room).emit("said", {"room": room, "name": "api", "text": text})
    return JSONResponse({"ok": True})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # The application's own resources (a database pool, say) open here, before trio_rooms starts,
    # and close after it stopped: socket handlers may use them until the last disconnect.
    yield


web = Starlette(
    routes=[Route("/", home), Route("/api/rooms", rooms), Route("/api/say", say, methods=["POST"])],
    lifespan=lifespan,
)
app = trio_rooms.ASGIApp(server, web)
