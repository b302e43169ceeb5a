"""The WebSocket phase of the native front door: a connection accepted as a WebSocket, served by the
task that read its HTTP request, as a new session or as a polling session's upgrade.

Rule: what is native here is the socket's writer (``Outbound``) and reader (``WebSocketReader``); the
steps of a session on a WebSocket are the ones every front door shares (``frontdoor``). The reading
task hosts the session when it opened it (no task of its own for the session); whatever ends it, the
close frame goes out last, within ``close_timeout``.
"""

from __future__ import annotations

from collections.abc import Coroutine
from functools import partial
from typing import Any

import trio

from . import frontdoor
from .frontdoor import EngineCore, Finish, SessionHost
from .outbound import Outbound
from .session import Session
from .websocket import WebSocketReader, finish

__all__ = ["serve_upgrade", "serve_websocket_session"]


def _websocket_parts(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session
) -> tuple[Outbound, WebSocketReader, Finish]:
    outbound = Outbound(
        stream,
        nursery=engine.nursery,
        max_queued_bytes=engine.options.max_queued_bytes,
        on_overflow=session.close_slow_consumer,
        stats=engine.counters,
    )
    reader = WebSocketReader(stream, outbound, trailing, max_message=engine.options.max_payload)
    return outbound, reader, partial(finish, outbound, reader, engine.options.close_timeout)


def serve_websocket_session(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session, host: SessionHost | None
) -> Coroutine[Any, Any, None]:
    """A WebSocket session opened without polling, for the connection's task to await: it reads the
    session, and hosts it if it has a host. (The shared step's coroutine itself, not a wrapper's: one
    frame fewer kept alive per connection.)"""
    outbound, reader, done = _websocket_parts(engine, stream, trailing, session)
    return frontdoor.serve_websocket_session(engine, session, host, outbound, reader, done)


def serve_upgrade(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session
) -> Coroutine[Any, Any, None]:
    """The WebSocket of a polling session's upgrade, for the connection's task to await: the probe,
    then the session's messages."""
    outbound, reader, done = _websocket_parts(engine, stream, trailing, session)
    return frontdoor.serve_upgrade(engine, session, outbound, reader, done)
