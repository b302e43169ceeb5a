"""The WebSocket phase of the native front door: a connection accepted as a WebSocket, served by the
task that read its HTTP request, as a new session or as a polling session's upgrade.

Rule: the reading task hosts the session when it opened it (no task of its own for the session);
whatever ends it, the close frame goes out last, within ``close_timeout``.
"""

from __future__ import annotations

import trio

from ..protocol.engineio import encode_ws
from ..protocol.websocket import text_frame
from ..types import Transport
from .frontdoor import EngineCore, SessionHost, going_away
from .outbound import Outbound
from .session import Session
from .websocket import WebSocketReader, finish, probe, read_messages

__all__ = ["serve_upgrade", "serve_websocket_session"]


def _websocket_parts(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session
) -> tuple[Outbound, WebSocketReader]:
    outbound = Outbound(
        stream,
        nursery=engine.nursery,
        max_queued_bytes=engine.options.max_queued_bytes,
        on_overflow=session.close_slow_consumer,
        stats=engine.counters,
    )
    return outbound, WebSocketReader(stream, outbound, trailing, max_message=engine.options.max_payload)


async def serve_websocket_session(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session, host: SessionHost | None
) -> None:
    """A WebSocket session opened without polling: this task reads it, and hosts it if it has a host."""
    outbound, reader = _websocket_parts(engine, stream, trailing, session)
    scope = trio.CancelScope()
    session.attach_websocket(outbound, scope)
    outbound.write(text_frame(str(encode_ws(session.open_packet()))))
    try:
        if host is None:
            await read_messages(session, reader, scope)
        else:
            async with engine.hosting(session), host:
                await read_messages(session, reader, scope)
    finally:
        await finish(outbound, reader, engine.options.close_timeout, going_away(session))


async def serve_upgrade(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session
) -> None:
    """The WebSocket of a polling session's upgrade: the probe, then the session's messages."""
    outbound, reader = _websocket_parts(engine, stream, trailing, session)
    if session.transport is not Transport.POLLING or session.upgrading or session.closed:
        # A second WebSocket for an upgraded (or upgrading) session: accepted, then closed.
        await finish(outbound, reader, engine.options.close_timeout, False)
        return
    upgraded = False
    try:
        with trio.move_on_after(engine.options.upgrade_timeout) as probing:
            upgraded = await probe(session, outbound, reader)
        if probing.cancelled_caught:
            engine.counters.timed_out_requests += 1  # an upgrade handshake slower than its deadline
        if upgraded and not session.closed:
            scope = trio.CancelScope()
            session.attach_websocket(outbound, scope)
            await read_messages(session, reader, scope)
        elif upgraded and not session.closed_by_client:
            # Closed by the server mid-upgrade: the client waits on this WebSocket now, so the
            # last packets (a DISCONNECT, say) go here, then the close frame.
            for item in session.polling.take():
                outbound.deliver(item)
            session.set_final_delivered()
        else:
            session.abort_upgrade()
    finally:
        await finish(outbound, reader, engine.options.close_timeout, upgraded and going_away(session))
