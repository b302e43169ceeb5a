"""An Engine.IO v4 session over WebSocket: open packet, heartbeat, messages in, frames out.

Rule: one reader (``run``) and one writer (``Outbound.run_writer``) per session; everything else
writes pre-encoded frames through ``send_frames``, which never awaits.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from ..errors import DisconnectReason, RemoteProtocolError
from ..protocol.engineio import EnginePacketType, decode_ws, encode_ws, open_packet
from ..protocol.socketio import Packet, encode
from ..protocol.websocket import binary_frame, text_frame
from ..stats import Counters
from .outbound import Outbound
from .websocket import WebSocketReader

__all__ = ["EngineSession", "OnMessage", "encode_frames", "new_engine_sid"]

logger = logging.getLogger("trio_rooms")

OnMessage = Callable[[str | bytes], Awaitable[None]]

_PING_FRAME: Final = text_frame("2")
_PONG_PROBE_FRAME: Final = text_frame("3probe")


def new_engine_sid() -> str:
    """A fresh, unguessable Engine.IO session id (120 bits, URL-safe)."""
    return secrets.token_urlsafe(15)


def encode_frames(packet: Packet) -> bytes:
    """The WebSocket frames of one Socket.IO packet: a text frame "4..." then one per attachment."""
    text, attachments = encode(packet)
    frames = text_frame("4" + text)
    for attachment in attachments:
        frames += binary_frame(attachment)
    return frames


class EngineSession:
    """One Engine.IO session on one WebSocket.

    Args:
        reader: the WebSocket's message reader.
        outbound: the connection's outbound path.
        ping_interval: seconds between the server's pings.
        ping_timeout: seconds to wait for the pong after a ping was queued.
        max_payload: advertised ``maxPayload`` (also the reader's bound).
        counters: the server's counters.
    """

    __slots__ = (
        "_pong",
        "_reader",
        "_scope",
        "counters",
        "max_payload",
        "outbound",
        "ping_interval",
        "ping_timeout",
        "reason",
        "sid",
    )

    def __init__(
        self,
        reader: WebSocketReader,
        outbound: Outbound,
        *,
        ping_interval: float,
        ping_timeout: float,
        max_payload: int,
        counters: Counters,
    ) -> None:
        self.sid = new_engine_sid()
        self._reader = reader
        self.outbound = outbound
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.reason: DisconnectReason | None = None
        self.counters = counters
        self._scope = trio.CancelScope()
        self._pong = trio.Event()

    def send_frames(self, frames: bytes, *, volatile: bool = False) -> bool:
        """Write pre-encoded frames (never awaits); False when dropped."""
        return self.outbound.write(frames, volatile=volatile)

    def send_packet(self, packet: Packet) -> bool:
        """Encode and write one Socket.IO packet."""
        return self.outbound.write(encode_frames(packet))

    def close(self, reason: DisconnectReason) -> None:
        """End the session (synchronous): the first reason given is the one kept."""
        if self.reason is None:
            self.reason = reason
        self._scope.cancel()

    async def run(self, on_message: OnMessage) -> DisconnectReason:
        """Send the open packet, then read until the session ends; return the reason.

        ``on_message`` receives each Engine.IO message (str or bytes); while it waits, reading
        pauses. Cancellation: the session ends; the caller closes the stream.
        """
        opening = open_packet(
            self.sid,
            upgrades=(),
            ping_interval_ms=round(self.ping_interval * 1000),
            ping_timeout_ms=round(self.ping_timeout * 1000),
            max_payload=self.max_payload,
        )
        self.outbound.write(text_frame(str(encode_ws(opening))))
        with self._scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat)
                await self._read(on_message)
                nursery.cancel_scope.cancel()
        return self.reason or DisconnectReason.TRANSPORT_CLOSE

    async def _read(self, on_message: OnMessage) -> None:
        reader = self._reader
        while True:
            message = await reader.receive()
            if message is None:
                self.close(reader.reason or DisconnectReason.TRANSPORT_CLOSE)
                return
            try:
                packet = decode_ws(message)
            except RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            kind = packet.type
            if kind is EnginePacketType.MESSAGE:
                await on_message(packet.data)
            elif kind is EnginePacketType.PONG:
                self._pong.set()
            elif kind is EnginePacketType.CLOSE:
                self.close(DisconnectReason.TRANSPORT_CLOSE)
                return
            elif kind is EnginePacketType.PING:
                # Only "2probe" is meaningful here (an upgrade probe); answer it as the spec says.
                if packet.data == "probe":
                    self.outbound.write(_PONG_PROBE_FRAME)
            elif kind in (EnginePacketType.NOOP, EnginePacketType.UPGRADE):
                continue
            else:
                self._protocol_error(RemoteProtocolError(f"unexpected Engine.IO packet {packet!r}"))
                return

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self.counters.protocol_errors += 1
        logger.warning("closing Engine.IO session %s: %s: %s", self.sid, type(exc).__name__, exc.message)
        self.close(DisconnectReason.PARSE_ERROR)

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(self.ping_interval)
            self._pong = trio.Event()
            self.outbound.write(_PING_FRAME)
            with trio.move_on_after(self.ping_timeout):
                await self._pong.wait()
            if not self._pong.is_set():
                self.close(DisconnectReason.PING_TIMEOUT)
                return
