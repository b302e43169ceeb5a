"""trio_rooms inside a Quart-Trio application, on one port, under Hypercorn's trio worker.

Run it from the repository root (after ``pip install -e . "hypercorn[trio]" quart-trio``)::

    hypercorn -k trio --bind 127.0.0.1:8000 examples/asgi_quart_trio.py:app

- ``/socket.io/``: trio_rooms, with the room chat of ``examples/chat.py`` (``join``, ``leave``,
  ``say``; ``python examples/chat.py demo --url http://127.0.0.1:8000`` talks to it);
- ``GET /``: a page of the application;
- ``GET /api/rooms``: the chat rooms and their member counts, read from the server's adapter;
- ``POST /api/say`` with ``{"room": ..., "text": ...}``: says ``text`` in ``room`` as "api" (a Quart
  route emitting to a room, on the same Trio loop as trio_rooms).

``trio_rooms.ASGIApp(server, quart_app)`` routes ``/socket.io/`` to trio_rooms and everything else to
Quart-Trio, and forwards the lifespan to Quart around the server's own (``before_serving`` runs
before trio_rooms starts, ``after_serving`` after every socket was disconnected).
"""

from __future__ import annotations

from typing import Any

from quart import request
from quart_trio import QuartTrio

import trio_rooms
from trio_rooms.__main__ import add_chat

__all__ = ["app", "server", "web"]

server = trio_rooms.Server()
add_chat(server.of("/"))
web = QuartTrio(__name__)


def chat_rooms() -> dict[str, int]:
    """The rooms of the main namespace that sockets joined (their own id rooms left out)."""
    namespace = server.of("/")
    return {
        room: len(sids) for room, sids in namespace.adapter.rooms.items() if room not in namespace.sockets
    }


@web.route("/")
async def home() -> str:
    return (
        "<!doctype html><title>trio_rooms + Quart-Trio</title>"
        "<h1>trio_rooms + Quart-Trio</h1><p>Socket.IO on <code>/socket.io/</code>; "
        '<a href="/api/rooms">/api/rooms</a>.</p>'
    )


@web.route("/api/rooms")
async def rooms() -> dict[str, int]:
    return chat_rooms()


@web.route("/api/say", methods=["POST"])
async def say() -> tuple[dict[str, Any], int]:
    body: Any = await request.get_json(force=True)
    room, text = body.get("room"), body.get("text")
    if not (isinstance(room, str) and isinstance(text, str)) or room not in chat_rooms():
        return {"error": "a room with members, and a text"}, 400
    await server.to(room).emit("said", {"room": room, "name": "api", "text": text})
    return {"ok": True}, 200


app = trio_rooms.ASGIApp(server, web)
