"""The seam between the Engine.IO server and its front doors (the native HTTP server, ASGI).

Rule: a front door reads requests its own way and asks the server (``EngineCore``) what to do; the
steps every front door shares once it has a request or a body (a POST's packets) live here, so that
no front door has a copy of the polling or heartbeat logic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from enum import Enum, auto
from types import TracebackType
from typing import Protocol

import trio

from ..errors import DisconnectReason, RemoteProtocolError
from ..protocol.engineio import decode_payload
from ..stats import Counters
from ..types import Transport
from .http import HttpRequest
from .options import EngineOptions
from .routing import Route
from .session import Session

__all__ = ["EngineCore", "PostOutcome", "SessionHost", "SessionOpener", "feed_post"]


class SessionHost(Protocol):
    """Who hosts a session for its whole life (the Socket.IO server's connection): an async context
    manager entered by the task that serves the session, and the receiver of its messages."""

    async def on_message(self, message: str | bytes) -> None:
        """Handle one message of the session (called in order by the transport's task)."""
        ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None: ...


SessionOpener = Callable[[Session, HttpRequest], SessionHost]
"""Called synchronously with each new session and the request that opened it, before its transport
reads anything; returns the session's host."""


class EngineCore(Protocol):
    """What a front door uses of the Engine.IO server."""

    @property
    def options(self) -> EngineOptions: ...

    @property
    def counters(self) -> Counters: ...

    @property
    def sessions(self) -> Mapping[str, Session]: ...

    @property
    def nursery(self) -> trio.Nursery:
        """Where background work runs (writers of queued bytes, hosts of polling sessions)."""
        ...

    def route(self, request: HttpRequest, *, websocket: bool) -> Route: ...

    def client_address(self, peer: str, request: HttpRequest) -> str: ...

    async def allowed(self, request: HttpRequest) -> bool: ...

    def open_session(
        self, transport: Transport, request: HttpRequest, address: str, secure: bool
    ) -> tuple[Session, SessionHost | None]: ...

    async def run_session(self, session: Session, serving: Awaitable[object]) -> None: ...

    def hosting(self, session: Session) -> AbstractAsyncContextManager[None]:
        """Host ``session`` for the duration of the block (``run_session`` without a coroutine)."""
        ...


class PostOutcome(Enum):
    """What a long-polling POST's body came to."""

    ACCEPTED = auto()
    """Every packet was handed to the session: answer 200 "ok"."""
    BAD_REQUEST = auto()
    """A malformed body or a packet a client may not send: the session ended, answer 400 (code 3)."""


async def feed_post(session: Session, body: bytes) -> PostOutcome:
    """Decode a POST's body and feed its packets to ``session``, in order.

    A body that is not UTF-8 or not a valid payload ends the session ("parse error"), as does a
    packet a client may not send.
    """
    try:
        packets = decode_payload(body.decode("utf-8"))
    except (RemoteProtocolError, UnicodeDecodeError) as exc:
        error = exc if isinstance(exc, RemoteProtocolError) else RemoteProtocolError("body is not UTF-8")
        session.protocol_error(error)
        await trio.lowlevel.checkpoint()
        return PostOutcome.BAD_REQUEST
    for packet in packets:
        await session.feed(packet)
    if session.reason is DisconnectReason.PARSE_ERROR:
        return PostOutcome.BAD_REQUEST
    return PostOutcome.ACCEPTED


def going_away(session: Session) -> bool:
    """Whether a WebSocket's close frame says 1001 ("going away"): the server is shutting down."""
    return session.reason is None or session.reason is DisconnectReason.SERVER_SHUTTING_DOWN
