"""WebSocket (server side): bounded message reading; writing goes through ``Outbound``.

Rule: ``protocol.wsread.FrameReader`` parses what the client sends, this module only moves the bytes;
what we send is pre-encoded frame bytes (``protocol.websocket``), so that a broadcast frame is encoded
once for every recipient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

import trio

from ..errors import DisconnectReason, RemoteProtocolError
from ..protocol.encoded import control
from ..protocol.engineio import EnginePacketType, decode_ws
from ..protocol.websocket import close_frame, pong_frame
from ..protocol.wsread import FrameReader, ReadEvent
from .outbound import Outbound
from .rawsocket import raw_socket

if TYPE_CHECKING:
    from .session import Session, WebSocketSink

__all__ = ["MessageReader", "WebSocketReader", "finish", "probe", "read_messages"]

_RECEIVE_SIZE: Final = 64 * 1024
_PROBE_PONG: Final = control("3probe")
_EVENTS_PER_TURN: Final = 64
"""Frames handled between two checkpoints. One 64 KiB read can hold 10,000 tiny frames (pings, 1-byte
fragments): handled in one go, they held the event loop for 100-400 ms with wsproto (issue 11), and
still 6-10 ms with ``FrameReader`` (issue 13)."""
_NORMAL_CLOSURE: Final = 1000
_PROTOCOL_ERROR: Final = 1002
_CLEAN_CLOSE_CODES: Final = frozenset({1000, 1001, 1005})
"""A client's close codes that end the session as "transport close" (1005: a close frame with no code);
any other valid code is a "transport error", answered with 1002 (as with wsproto before issue 13)."""


class MessageReader(Protocol):
    """What reads a WebSocket's messages for ``read_messages`` and ``probe``, whichever front door
    accepted it (``WebSocketReader`` here, the ASGI front door's reader)."""

    @property
    def reason(self) -> DisconnectReason | None:
        """Why the WebSocket ended, once ``receive`` returned None."""
        ...

    async def receive(self) -> str | bytes | None:
        """The next complete message, or None once the WebSocket is closed."""
        ...


class WebSocketReader:
    """Reads whole messages from one server-side WebSocket, at most ``max_message`` bytes each.

    Control frames are answered through ``outbound``; pings are answered as RFC 6455 5.5.3 allows, one
    pong for the pings handled in a row (the latest's). Whatever a read holds, the reader yields to the
    other tasks every ``_EVENTS_PER_TURN`` frames. After ``receive`` returned None, ``reason`` tells why
    the connection ended and ``closing_frame()`` gives the frame to send last.
    """

    __slots__ = ("_close_code", "_frames", "_outbound", "_sock", "_stream", "reason")

    def __init__(
        self, stream: trio.abc.Stream, outbound: Outbound, trailing: bytes, *, max_message: int
    ) -> None:
        self._stream = stream
        self._sock = raw_socket(stream)
        self._outbound = outbound
        self._frames = FrameReader(max_message=max_message, pause_every=_EVENTS_PER_TURN)
        if trailing:
            self._frames.receive_data(trailing)
        self._close_code: int | None = _NORMAL_CLOSURE  # None once the close frame was given
        self.reason: DisconnectReason | None = None

    @property
    def max_message(self) -> int:
        """The largest message accepted, in bytes (past it: close 1009)."""
        return self._frames.max_message

    @max_message.setter
    def max_message(self, value: int) -> None:
        self._frames.max_message = value

    def _send_pong(self, ping: bytes) -> None:
        self._frames.ping = None
        if self._close_code is not None:
            self._outbound.write(pong_frame(ping))

    async def receive(self) -> str | bytes | None:
        """The next complete message, or None once the WebSocket is closed (see ``reason``)."""
        frames = self._frames
        while True:
            event = frames.next_message()
            ping = frames.ping
            if not isinstance(event, ReadEvent):
                if ping is not None:
                    self._send_pong(ping)
                return event
            if event is ReadEvent.NEED_DATA:
                if ping is not None:
                    self._send_pong(ping)
                data = await self._receive_some()
                if not data:
                    self.reason = DisconnectReason.TRANSPORT_CLOSE
                    return None
                frames.receive_data(data)
            elif event is ReadEvent.PAUSE:
                if ping is not None:
                    self._send_pong(ping)
                await trio.lowlevel.checkpoint()
            elif event is ReadEvent.CLOSED:
                frames.ping = None  # the client is closing: no pong any more
                if frames.close_code in _CLEAN_CLOSE_CODES:
                    self.reason = DisconnectReason.TRANSPORT_CLOSE
                else:
                    self._set_code(_PROTOCOL_ERROR)
                    self.reason = DisconnectReason.TRANSPORT_ERROR
                return None
            else:  # FAILED: close with its code (1002, 1007 or 1009)
                if ping is not None:
                    self._send_pong(ping)
                self._set_code(frames.close_code)
                self.reason = DisconnectReason.TRANSPORT_ERROR
                return None

    async def _receive_some(self) -> bytes:
        """The next bytes from the peer; b"" once it closed or the connection broke.

        On a plain TCP stream the socket is read directly (one ``recv`` per wake-up, and a
        checkpoint when the bytes were already there), without the stream's wrappers.
        """
        sock = self._sock
        try:
            if sock is None:
                return bytes(await self._stream.receive_some(_RECEIVE_SIZE))
            try:
                data = sock.recv(_RECEIVE_SIZE)
            except BlockingIOError:
                pass
            else:
                await trio.lowlevel.checkpoint()
                return data
            while True:
                await trio.lowlevel.wait_readable(sock)
                try:
                    return sock.recv(_RECEIVE_SIZE)
                except BlockingIOError:
                    continue
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    def closing_frame(self) -> bytes:
        """The close frame to send last, once (empty when it was given already)."""
        code, self._close_code = self._close_code, None
        if code is None:
            return b""
        return close_frame(code)

    def set_close_code(self, code: int) -> None:
        """Choose the code of the close frame we send (for example 1001 when shutting down)."""
        self._set_code(code)

    def _set_code(self, code: int) -> None:
        if self._close_code is not None:
            self._close_code = code


async def finish(outbound: Outbound, reader: WebSocketReader, close_timeout: float, going_away: bool) -> None:
    """Close the WebSocket: the close frame goes out after what was queued, within ``close_timeout``
    (shielded, so that a server shutdown still flushes); ``going_away``: code 1001."""
    if going_away:
        reader.set_close_code(1001)
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + close_timeout
        outbound.close(reader.closing_frame(), scope.deadline)
        await outbound.wait_flushed()
    outbound.abort()


async def read_messages(session: Session, reader: MessageReader, scope: trio.CancelScope) -> None:
    """Feed the session every packet the client sends until either side ends (``scope`` is the
    session's way to stop this reader when it closes)."""
    with scope:
        while True:
            message = await reader.receive()
            if message is None:
                session.close(reader.reason or DisconnectReason.TRANSPORT_CLOSE)
                return
            try:
                packet = decode_ws(message)
            except RemoteProtocolError as exc:
                session.protocol_error(exc)
                return
            await session.feed(packet)


async def probe(session: Session, outbound: WebSocketSink, reader: MessageReader) -> bool:
    """The upgrade handshake on a polling session's new WebSocket: "2probe" -> "3probe", then "5".

    Returns True once "5" arrived; False when the client sent anything else or went away.
    """
    probing = True
    while True:
        message = await reader.receive()
        if message is None:
            return False
        try:
            packet = decode_ws(message)
        except RemoteProtocolError:
            return False
        if probing and packet.type is EnginePacketType.PING and packet.data == "probe":
            outbound.deliver(_PROBE_PONG)
            session.start_upgrade()
            probing = False
        elif not probing and packet.type is EnginePacketType.UPGRADE:
            return True
        elif packet.type is not EnginePacketType.NOOP:
            return False
