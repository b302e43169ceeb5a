"""An Engine.IO v4 session: heartbeat, inbound messages, and its current transport's outbound path.

Rule: a session starts on long-polling or on WebSocket and may upgrade once, from polling to
WebSocket, without losing or duplicating a packet. Whatever the transport, writes never await:
``write`` hands pre-encoded packets to the WebSocket's two lanes or to the polling buffer.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import trio

from ..errors import DisconnectReason, RemoteProtocolError
from ..protocol.engineio import EnginePacket, EnginePacketType, open_packet
from ..protocol.socketio import Packet
from ..stats import Counters
from .heartbeat import Heartbeats
from .http import HttpRequest
from .outbound import Outbound
from .polling import CLOSE_ITEM, NOOP_ITEM, PING_ITEM, Encoded, PollBuffer

__all__ = ["EngineSession", "Transport", "new_engine_sid"]

logger = logging.getLogger("trio_rooms")

#: Messages received but not yet taken by the session's consumer; then reading pauses.
INBOUND_SIZE: Final = 64


class Transport:
    POLLING: Final = "polling"
    WEBSOCKET: Final = "websocket"


def new_engine_sid() -> str:
    """A fresh, unguessable Engine.IO session id (120 bits, URL-safe)."""
    return secrets.token_urlsafe(15)


class EngineSession:
    """One Engine.IO session (one client connection, whatever its transport).

    ``async for message in session`` yields each message (str or bytes) until the session ends;
    ``send``/``write`` send. Created by the engine server, never by applications.
    """

    def __init__(
        self,
        *,
        transport: str,
        ping_interval: float,
        ping_timeout: float,
        max_payload: int,
        max_queued_bytes: int,
        upgrades: tuple[str, ...],
        counters: Counters,
    ) -> None:
        self.sid = new_engine_sid()
        self.transport = transport
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.upgrades = upgrades if transport == Transport.POLLING else ()
        self.counters = counters
        self.reason: DisconnectReason | None = None
        #: True when the client asked to close (a close packet): a pending GET then gets a noop.
        self.closed_by_client = False
        self.outbound: Outbound | None = None
        self.poll = PollBuffer(max_bytes=max_queued_bytes, counters=counters, on_overflow=self._overflow)
        self.get_pending = False
        self.post_pending = False
        self.upgrading = False
        self._closed = trio.Event()
        self._pong_deadline = math.inf
        self._hb_generation = 0
        self._heartbeats: Heartbeats | None = None
        # Messages go to the receiver when one is set (the Socket.IO server's), else to a channel
        # made on first use (``async for message in session``).
        self._receiver: Callable[[str | bytes], Awaitable[None]] | None = None
        self._inbound_send: trio.MemorySendChannel[str | bytes] | None = None
        self._inbound: trio.MemoryReceiveChannel[str | bytes] | None = None
        self._ws_scope: trio.CancelScope | None = None
        self._end_callbacks: list[Callable[[], None]] = []
        #: The request that opened the session (the Socket.IO server drops it once it has made the
        #: handshake from it), the client's address, and whether it came over TLS.
        self.request: HttpRequest | None = None
        self.address = ""
        self.secure = False
        self._final_delivered = False
        self._final_event: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<EngineSession {self.sid} {self.transport} reason={self.reason}>"

    # -- state ------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the session ended (``reason`` says why)."""
        return self.reason is not None

    def open_packet(self) -> EnginePacket:
        """The open packet of this session (exact milliseconds, sub-second values included)."""
        return open_packet(
            self.sid,
            upgrades=self.upgrades,
            ping_interval_ms=round(self.ping_interval * 1000),
            ping_timeout_ms=round(self.ping_timeout * 1000),
            max_payload=self.max_payload,
        )

    def expired(self) -> bool:
        """True when a ping went unanswered past its deadline (checked as requests arrive)."""
        return trio.current_time() >= self._pong_deadline

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting to be sent on the current transport."""
        return self.outbound.queued_bytes if self.outbound is not None else self.poll.queued_bytes

    @property
    def max_queued_bytes(self) -> int:
        """The slow-consumer bound."""
        return self.poll.max_bytes

    # -- writing ----------------------------------------------------------------------------------
    @property
    def deliver(self) -> Callable[[Encoded, bool], bool]:
        """What writes a pre-encoded packet now (never awaits; the broadcast path): ``write`` while
        the session polls, its WebSocket's ``Outbound.deliver`` once it has one (one call less)."""
        return self.outbound.deliver if self.outbound is not None else self.write

    def write(self, item: Encoded, volatile: bool = False) -> bool:
        """Send a pre-encoded packet on the current transport (never awaits); False when dropped.

        This is the broadcast path (``Socket.deliver`` is this method): keep it short.
        """
        outbound = self.outbound
        if outbound is not None:
            return outbound.write(item.frames, volatile)
        if self.reason is not None:
            return False
        return self.poll.write(item, volatile=volatile)

    def send_packet(self, packet: Packet) -> bool:
        """Encode and send one Socket.IO packet."""
        return self.write(Encoded.of(packet))

    async def wait_writable(self) -> None:
        """Wait until the current transport's queue is under the bound (or the session ends)."""
        while self.queued_bytes >= self.max_queued_bytes and self.reason is None:
            if self.outbound is not None:
                await self.outbound.wait_writable()
            else:
                await self.poll.wait_writable()
        await trio.lowlevel.checkpoint()

    async def send(self, message: str | bytes) -> None:
        """Send one Engine.IO message, waiting for queue space (the public Engine.IO API).

        Raises:
            trio.ClosedResourceError: the session is closed.
        """
        await self.wait_writable()
        if self.reason is not None:
            raise trio.ClosedResourceError(f"session closed: {self.reason}")
        self.write(Encoded(("4" + message,) if isinstance(message, str) else (bytes(message),)))

    # -- reading ----------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    def _channel(self) -> tuple[trio.MemorySendChannel[str | bytes], trio.MemoryReceiveChannel[str | bytes]]:
        if self._inbound_send is None or self._inbound is None:
            self._inbound_send, self._inbound = trio.open_memory_channel[str | bytes](INBOUND_SIZE)
            if self.reason is not None:
                self._inbound_send.close()
        return self._inbound_send, self._inbound

    async def _messages(self) -> AsyncIterator[str | bytes]:
        # After the session ended, what the client sent before ending it is still yielded (a
        # DISCONNECT followed by a close, say), then the iteration stops.
        _send, inbound = self._channel()
        while True:
            try:
                message = await inbound.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            yield message

    def set_receiver(self, receiver: Callable[[str | bytes], Awaitable[None]]) -> None:
        """Hand every message to ``await receiver(message)``, in order, from the task that reads it
        (the WebSocket's reader or the POST's), instead of ``async for``: the transport reads no
        further until it returns. Set it once, before the first message (the Socket.IO server does)."""
        self._receiver = receiver

    async def feed(self, packet: EnginePacket) -> None:
        """Handle one Engine.IO packet from the client (from a POST or the WebSocket).

        Waits while the consumer's queue is full (so reading pauses). A packet a client may not
        send closes the session with "parse error".
        """
        kind = packet.type
        if kind is EnginePacketType.MESSAGE:
            if self._receiver is not None:
                if self.reason is None:
                    await self._receiver(packet.data)
                else:
                    await trio.lowlevel.checkpoint()  # the session ended: the message is moot
                return
            # Closed meanwhile: the message is moot.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._channel()[0].send(packet.data)
        elif kind is EnginePacketType.PONG:
            if self._pong_deadline != math.inf:
                self._next_ping(trio.current_time())
            await trio.lowlevel.checkpoint()
        elif kind is EnginePacketType.CLOSE:
            self.closed_by_client = True
            self.end(DisconnectReason.TRANSPORT_CLOSE)
            await trio.lowlevel.checkpoint()
        elif kind is EnginePacketType.NOOP:
            await trio.lowlevel.checkpoint()
        else:
            self.protocol_error(RemoteProtocolError(f"a client may not send {kind.name} here"))
            await trio.lowlevel.checkpoint()

    def protocol_error(self, exc: RemoteProtocolError) -> None:
        """Count, log in one line and close with "parse error"."""
        self.counters.protocol_errors += 1
        logger.warning("closing Engine.IO session %s: %s: %s", self.sid, type(exc).__name__, exc.message)
        self.end(DisconnectReason.PARSE_ERROR)

    # -- closing ----------------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the session (reason "forced close"); what is queued is still flushed."""
        self.end(DisconnectReason.FORCED_CLOSE)
        await trio.lowlevel.checkpoint()

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (synchronously) when the session ends; at once if it has ended."""
        if self.reason is not None:
            callback()
        else:
            self._end_callbacks.append(callback)

    def end(self, reason: DisconnectReason) -> None:
        """End the session now (synchronous; the first reason is kept)."""
        if self.reason is not None:
            return
        self.reason = reason
        for callback in self._end_callbacks:
            callback()
        self._end_callbacks.clear()
        if self._inbound_send is not None:
            self._inbound_send.close()
        self._closed.set()
        if self._ws_scope is not None:
            self._ws_scope.cancel()
            self._ws_scope = None
        self.poll.close()
        # Drop what refers back to the session's owners, so that an ended session and its
        # connection hold no reference cycle: reference counting frees them at once.
        self._receiver = None

    async def wait_closed(self) -> DisconnectReason:
        """Wait until the session ends; return the reason."""
        await self._closed.wait()
        assert self.reason is not None
        return self.reason

    def _overflow(self) -> None:
        self.close_slow_consumer()

    def close_slow_consumer(self) -> None:
        """End the session as a slow consumer (counted once per session, whoever notices first)."""
        if self.reason is None:
            self.counters.slow_consumers_closed += 1
            self.end(DisconnectReason.SLOW_CONSUMER)

    @property
    def final_delivered(self) -> bool:
        """True once a GET (or the upgrade's WebSocket) took the last packets of the closed session."""
        return self._final_delivered

    def set_final_delivered(self) -> None:
        """The last packets of the closed session were taken."""
        self._final_delivered = True
        if self._final_event is not None:
            self._final_event.set()

    async def wait_final_delivered(self) -> None:
        """Wait until ``set_final_delivered``."""
        if self._final_delivered:
            await trio.lowlevel.checkpoint()
            return
        if self._final_event is None:
            self._final_event = trio.Event()
        await self._final_event.wait()

    def final_polling_item(self) -> Encoded:
        """What a pending GET gets once the session is closed: a noop when the client asked to
        close, else a close packet (after whatever was still queued)."""
        return NOOP_ITEM if self.closed_by_client else CLOSE_ITEM

    # -- heartbeat --------------------------------------------------------------------------------
    def start_heartbeat(self, heartbeats: Heartbeats) -> None:
        """Join the server's heartbeat schedule: the first ping is due ``ping_interval`` from now.

        The pong deadline counts from the moment the ping is queued, whether or not a GET is there
        to carry it.
        """
        self._heartbeats = heartbeats
        self._next_ping(trio.current_time())

    def _next_ping(self, now: float) -> None:
        heartbeats = self._heartbeats
        if heartbeats is None or self.reason is not None:
            return
        self._hb_generation += 1
        self._pong_deadline = math.inf
        heartbeats.schedule(self, now + self.ping_interval, self._hb_generation)

    def heartbeat_due(self, now: float, generation: int) -> None:
        """Called by the schedule: send the ping, or end the session when its pong is late."""
        heartbeats = self._heartbeats
        if generation != self._hb_generation or self.reason is not None or heartbeats is None:
            return  # superseded (a pong came, or the session ended)
        if self._pong_deadline == math.inf:
            self._hb_generation += 1
            self._pong_deadline = now + self.ping_timeout
            self.write(PING_ITEM)
            heartbeats.schedule(self, self._pong_deadline, self._hb_generation)
        else:
            self.end(DisconnectReason.PING_TIMEOUT)

    # -- transports -------------------------------------------------------------------------------
    def attach_websocket(self, outbound: Outbound, scope: trio.CancelScope) -> None:
        """Make ``outbound`` the session's transport (a fresh WebSocket session or an upgrade).

        On an upgrade, what waited for the next GET goes out first on the WebSocket, in order.
        ``scope`` (the WebSocket reader's) is cancelled when the session closes.
        """
        for item in self.poll.take():
            outbound.write(item.frames)
        self.outbound = outbound
        self.transport = Transport.WEBSOCKET
        self.upgrading = False
        self._ws_scope = scope
        self.poll.wake()  # a GET still pending gets its noop
        if self.reason is not None:
            scope.cancel()

    def start_upgrade(self) -> None:
        """The probe succeeded: a pending GET (and any until the upgrade ends) gets a noop now."""
        self.upgrading = True
        self.poll.wake()

    def abort_upgrade(self) -> None:
        """The upgrade failed: stay on polling."""
        self.upgrading = False
