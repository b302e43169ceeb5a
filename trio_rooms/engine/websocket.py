"""WebSocket on wsproto (server side): bounded message reading; writing goes through ``Outbound``.

Rule: wsproto parses what the client sends; what we send is pre-encoded frame bytes
(``protocol.websocket``), so that a broadcast frame is encoded once for every recipient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason

from ..errors import DisconnectReason, RemoteProtocolError
from ..protocol.encoded import control
from ..protocol.engineio import EnginePacketType, decode_ws
from .outbound import Outbound
from .rawsocket import raw_socket

if TYPE_CHECKING:
    from .session import Session, WebSocketSink

__all__ = ["MessageReader", "WebSocketReader", "finish", "probe", "read_messages"]

_RECEIVE_SIZE: Final = 64 * 1024
_PROBE_PONG: Final = control("3probe")
_EVENTS_PER_TURN: Final = 64
"""Frames handled between two checkpoints. One 64 KiB read can hold 10,000 tiny frames (pings, 1-byte
fragments) at several microseconds each in wsproto: handled in one go, they held the event loop for
100-400 ms (issue 11)."""


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

    __slots__ = (
        "_close_code",
        "_handled",
        "_outbound",
        "_pong",
        "_sock",
        "_stream",
        "_ws",
        "max_message",
        "reason",
    )

    def __init__(
        self, stream: trio.abc.Stream, outbound: Outbound, trailing: bytes, *, max_message: int
    ) -> None:
        self._stream = stream
        self._sock = raw_socket(stream)
        self._outbound = outbound
        self._ws = Connection(ConnectionType.SERVER, trailing_data=trailing)
        self._close_code = int(CloseReason.NORMAL_CLOSURE)
        self._handled = 0  # frames handled since the last checkpoint
        self._pong: Pong | None = None  # the answer to the latest ping, not sent yet
        self.max_message = max_message
        self.reason: DisconnectReason | None = None

    def _send_pong(self) -> None:
        pong, self._pong = self._pong, None
        if pong is not None and self._ws.state is ConnectionState.OPEN:
            self._outbound.write(self._ws.send(pong))

    async def receive(self) -> str | bytes | None:
        """The next complete message, or None once the WebSocket is closed (see ``reason``)."""
        ws = self._ws
        text_parts: list[str] = []
        byte_parts: list[bytes] = []
        size = 0
        while True:
            for event in ws.events():
                self._handled += 1
                if self._handled >= _EVENTS_PER_TURN:
                    self._send_pong()
                    self._handled = 0
                    await trio.lowlevel.checkpoint()
                if isinstance(event, TextMessage):
                    size += len(event.data)
                    text_parts.append(event.data)
                elif isinstance(event, BytesMessage):
                    size += len(event.data)
                    byte_parts.append(bytes(event.data))
                elif isinstance(event, Ping):
                    self._pong = event.response()
                    continue
                elif isinstance(event, CloseConnection):
                    self._send_pong()
                    if event.code in (CloseReason.NORMAL_CLOSURE, CloseReason.GOING_AWAY, 1005, 1006):
                        self.reason = DisconnectReason.TRANSPORT_CLOSE
                    else:
                        self._close_code = int(CloseReason.PROTOCOL_ERROR)
                        self.reason = DisconnectReason.TRANSPORT_ERROR
                    return None
                else:
                    continue
                if size > self.max_message:
                    self._close_code = int(CloseReason.MESSAGE_TOO_BIG)
                    self.reason = DisconnectReason.TRANSPORT_ERROR
                    return None
                if event.message_finished:
                    self._send_pong()
                    if text_parts:
                        return text_parts[0] if len(text_parts) == 1 else "".join(text_parts)
                    return byte_parts[0] if len(byte_parts) == 1 else b"".join(byte_parts)
            self._send_pong()
            data = await self._receive_some()
            self._handled = 0  # _receive_some checkpoints
            if not data:
                self.reason = DisconnectReason.TRANSPORT_CLOSE
                return None
            ws.receive_data(data)

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
        """The close frame to send last (empty when the WebSocket cannot send one any more)."""
        if self._ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return self._ws.send(CloseConnection(code=self._close_code))
        return b""

    def set_close_code(self, code: int) -> None:
        """Choose the code of the close frame we send (for example 1001 when shutting down)."""
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
