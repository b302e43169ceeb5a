"""The seam between the Engine.IO server and its front doors (the native HTTP server, ASGI).

Rule: a front door reads requests its own way and asks the server (``EngineCore``) what to do; the
steps every front door shares once it has a request or a body (a POST's packets) live here, so that
no front door has a copy of the polling or heartbeat logic.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from enum import Enum, auto
from types import TracebackType
from typing import Protocol

import trio

from ..errors import DisconnectReason, RemoteProtocolError
from ..protocol.encoded import control
from ..protocol.engineio import decode_payload, encode_ws
from ..stats import Counters
from ..types import Transport
from .hooks import EngineHooks
from .http import EngineErrorCode, HttpRequest
from .options import EngineOptions
from .routing import Route
from .session import Session, WebSocketSink
from .websocket import MessageReader, probe, read_messages

__all__ = [
    "EngineCore",
    "Finish",
    "PostOutcome",
    "SessionHost",
    "SessionOpener",
    "feed_post",
    "going_away",
    "hold_get",
    "poll_get_refusal",
    "poll_post_refusal",
    "poll_refusal_reported",
    "serve_upgrade",
    "serve_websocket_session",
]


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
    def hooks(self) -> EngineHooks:
        """The application's hooks: every front door builds its answers' headers with
        ``hooks.response_headers`` and reports each refused request to ``hooks.connection_error``."""
        ...

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


# -- long-polling: the checks of a request on a session, and the answer of a GET --------------------
def poll_get_refusal(session: Session) -> EngineErrorCode | None:
    """The error a long-polling GET on ``session`` gets before it may wait (None: it may), with its
    effect on the session: a GET after the pong deadline ends it ("ping timeout"), a second GET
    while one is pending ends it ("transport error"); a closed session answers one last GET only
    when it has last packets to collect."""
    if session.expired():
        session.close(DisconnectReason.PING_TIMEOUT)
        return EngineErrorCode.UNKNOWN_SID
    if session.closed and (not session.collectable or session.final_delivered):
        return EngineErrorCode.UNKNOWN_SID
    if session.get_pending:
        session.close(DisconnectReason.TRANSPORT_ERROR)
        return EngineErrorCode.BAD_REQUEST
    return None


def poll_refusal_reported(code: EngineErrorCode) -> bool:
    """Whether a long-polling refusal (``poll_get_refusal``, ``poll_post_refusal``) goes to the
    ``connection_error`` hooks: an unknown (closed or expired) session does, as a request Node's
    server fails to verify; a request overlapping a pending one (code 3) is a transport error of the
    session instead, as in Node."""
    return code is EngineErrorCode.UNKNOWN_SID


def poll_post_refusal(session: Session) -> EngineErrorCode | None:
    """The error a long-polling POST on ``session`` gets before its body is read (None: read it):
    a closed (or timed out) session, or a second POST while one is pending (which ends it)."""
    if session.expired():
        session.close(DisconnectReason.PING_TIMEOUT)
    if session.closed:
        return EngineErrorCode.UNKNOWN_SID
    if session.post_pending:
        session.close(DisconnectReason.TRANSPORT_ERROR)
        return EngineErrorCode.BAD_REQUEST
    return None


async def hold_get(session: Session, hold: Callable[[], Awaitable[bool]]) -> str | None:
    """Answer a long-polling GET that passed ``poll_get_refusal``: ``hold()`` waits (as the front door
    can: for packets, a close, an upgrade, while watching the client) and says whether the client is
    still there; once woken, it waits while a burst of packets is still growing (``PollBuffer.settle``,
    at most a few milliseconds); then the body is what the session has for it
    (``Session.polling_answer``). None when the client went away while held (the session is closed
    "transport close"; nothing to answer)."""
    session.get_pending = True
    try:
        if not (session.closed or session.upgrading):
            if not await hold():
                session.close(DisconnectReason.TRANSPORT_CLOSE)
                return None
            if not session.closed:
                await session.polling.settle()  # a burst under way goes out in this one answer
        return session.polling_answer()
    finally:
        session.get_pending = False


# -- WebSocket: a fresh session, and a polling session's upgrade ------------------------------------
Finish = Callable[[bool], Awaitable[None]]
"""The front door's way to close its WebSocket once the session is done with it: flush what is queued,
then the close frame (1001 when its argument, ``going_away``, is true), within the close deadline,
shielded from cancellation."""


async def serve_websocket_session(
    engine: EngineCore,
    session: Session,
    host: SessionHost | None,
    sink: WebSocketSink,
    reader: MessageReader,
    finish: Finish,
) -> None:
    """A WebSocket session opened without polling (``open_session`` made it): the open packet, then
    the client's messages until either side ends; this task hosts the session when it has a host."""
    scope = trio.CancelScope()
    session.attach_websocket(sink, scope)
    sink.deliver(control(str(encode_ws(session.open_packet()))))
    try:
        if host is None:
            await read_messages(session, reader, scope)
        else:
            async with engine.hosting(session), host:
                await read_messages(session, reader, scope)
    finally:
        await finish(going_away(session))


async def serve_upgrade(
    engine: EngineCore, session: Session, sink: WebSocketSink, reader: MessageReader, finish: Finish
) -> None:
    """The WebSocket of a polling session's upgrade: the probe ("2probe" -> "3probe", then "5") within
    ``upgrade_timeout``, then the session's messages on it. A second WebSocket for an upgraded (or
    upgrading, or closed) session is accepted, then closed; a failed probe leaves the session on
    polling; a session the server closed mid-upgrade sends its last packets here."""
    if session.transport is not Transport.POLLING or session.upgrading or session.closed:
        await finish(False)
        return
    upgraded = False
    try:
        with trio.move_on_after(engine.options.upgrade_timeout) as probing:
            upgraded = await probe(session, sink, reader)
        if probing.cancelled_caught:
            engine.counters.timed_out_requests += 1  # an upgrade handshake slower than its deadline
        if upgraded and not session.closed:
            scope = trio.CancelScope()
            session.attach_websocket(sink, scope)
            await read_messages(session, reader, scope)
        elif upgraded and not session.closed_by_client:
            # Closed by the server mid-upgrade: the client waits on this WebSocket now, so the
            # last packets (a DISCONNECT, say) go here, then the close frame.
            for item in session.polling.take():
                sink.deliver(item)
            session.set_final_delivered()
        else:
            session.abort_upgrade()
    finally:
        # A shutdown in the middle of the probe closes with 1001 too: the server goes away.
        shutting_down = trio.current_effective_deadline() == -math.inf
        await finish((upgraded or shutting_down) and going_away(session))
