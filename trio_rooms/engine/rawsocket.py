"""The one place that reaches into trio's private socket: the stdlib socket behind a plain TCP stream.

Rule: the fast lanes (one non-blocking ``send(2)`` per delivery, raw ``recv`` on WebSocket reads and
held polling GETs) need the stdlib socket itself; trio exposes it only as a private attribute of its
socket wrapper. Everything goes through ``raw_socket``, which answers None whenever that attribute is
absent or not a stdlib socket (another trio version, TLS, a memory stream): every caller then takes the
stream's public API, only slower.
"""

from __future__ import annotations

import socket as _stdlib_socket

import trio

__all__ = ["raw_socket"]


def raw_socket(stream: trio.abc.Stream) -> _stdlib_socket.socket | None:
    """The stdlib socket behind a plain ``trio.SocketStream``, or None (use the stream instead)."""
    if not isinstance(stream, trio.SocketStream):
        return None
    # trio's ``SocketType`` keeps the stdlib socket in ``_sock`` (trio 0.22 to 0.35 at least).
    raw = getattr(stream.socket, "_sock", None)
    return raw if isinstance(raw, _stdlib_socket.socket) else None
