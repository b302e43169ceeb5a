"""One Engine.IO v4 session: its state, heartbeat, inbound messages and its transport's outbound path.

Rule: a session starts on long-polling or on WebSocket and may upgrade once, from polling to
WebSocket, without losing or duplicating a packet. Its state moves one way (``SessionState``), by
the methods below only. Whatever the transport, writes never await: ``write`` hands pre-encoded
packets to the WebSocket's sink or to the polling buffer. The session knows no front door: the native
HTTP server and any other feed it packets and attach sinks the same way.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from enum import Enum, auto
from typing import Final, Protocol

import trio

from ..errors import DisconnectReason, LocalProtocolError, RemoteProtocolError
from ..protocol.encoded import CLOSE_ITEM, NOOP_ITEM, PING_ITEM, Encoded, polling_payload
from ..protocol.engineio import EnginePacket, EnginePacketType, open_packet
from ..protocol.socketio import Packet
from ..stats import Counters
from ..types import Transport
from .heartbeat import Heartbeats
from .observe import TrafficMeter
from .polling import HeldGets, PollBuffer

__all__ = ["Receiver", "Session", "SessionState", "WebSocketSink", "new_engine_sid"]

logger = logging.getLogger("trio_rooms")

Receiver = Callable[[str | bytes], Awaitable[None]]
"""Takes each message of a session, in order, from the task that read it."""

#: Server-decided closes after which a polling session stays findable until a GET has collected its
#: last packets (as the reference server drains its buffer before closing). Any other close (an
#: error, a ping timeout, the client's own close) forgets the session at once.
_COLLECTABLE: Final = frozenset(
    {
        DisconnectReason.FORCED_CLOSE,
        DisconnectReason.FORCED_SERVER_CLOSE,
        DisconnectReason.SERVER_SHUTTING_DOWN,
    }
)


class SessionState(Enum):
    """Where a session is in its life. It only moves down this list (UPGRADING may go back to OPEN
    when an upgrade fails)."""

    OPEN = auto()
    """Open on its transport (``Session.transport``)."""
    UPGRADING = auto()
    """On long-polling, the WebSocket probe answered: a pending GET gets a noop, the client's "5" is
    awaited on the WebSocket."""
    CLOSED = auto()
    """Ended (``Session.reason`` says why)."""


class WebSocketSink(Protocol):
    """Where a WebSocket session's packets go (the native front door's ``Outbound``, or another)."""

    @property
    def queued_bytes(self) -> int: ...

    def deliver(self, item: Encoded, volatile: bool = False) -> bool:
        """Send a pre-encoded packet, in order, never awaiting; False when dropped."""
        ...

    async def wait_writable(self) -> None:
        """Wait until the queued bytes are under the bound (or the sink closed)."""
        ...


#: A schedule entry firing this little before the due time is on time (the schedule rounds due times
#: to ticks with a relative slack of 1e-6 of a tick).
_EARLY_TOLERANCE: Final = 1e-6


def new_engine_sid() -> str:
    """A fresh, unguessable Engine.IO session id (120 bits, URL-safe)."""
    return secrets.token_urlsafe(15)


async def _ignore_message(message: str | bytes) -> None:
    await trio.lowlevel.checkpoint()


class Session:
    """One Engine.IO session (one client connection, whatever its transport).

    Args:
        transport: the transport it opens on.
        ping_interval: seconds between pings (after each pong).
        ping_timeout: seconds a pong may take.
        max_payload: the largest message or polling body accepted.
        max_queued_bytes: the slow-consumer bound of its outbound path.
        upgrades: what a polling session may upgrade to.
        counters: the server's counters.
        address: the client's address.
        secure: whether it came over TLS.
        held_gets: the server's registry of GETs held without watching their connection.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        ping_interval: float,
        ping_timeout: float,
        max_payload: int,
        max_queued_bytes: int,
        upgrades: tuple[Transport, ...],
        counters: Counters,
        address: str = "",
        secure: bool = False,
        held_gets: HeldGets | None = None,
    ) -> None:
        self.sid = new_engine_sid()
        self.transport = transport
        self.state = SessionState.OPEN
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.upgrades = upgrades if transport is Transport.POLLING else ()
        self.counters = counters
        self.address = address
        self.secure = secure
        self.reason: DisconnectReason | None = None
        #: True when the client asked to close (a close packet): a pending GET then gets a noop.
        self.closed_by_client = False
        self.sink: WebSocketSink | None = None
        self._max_queued_bytes = max_queued_bytes
        #: What waits for the next GET: a polling session's (a WebSocket session never polls).
        self.poll: PollBuffer | None = None
        if transport is Transport.POLLING:
            self.poll = PollBuffer(
                max_bytes=max_queued_bytes, counters=counters, on_overflow=self._overflow, held=held_gets
            )
        self.get_pending = False
        self.post_pending = False
        self._receiver: Receiver = _ignore_message
        self._closed = trio.Event()
        self._pong_deadline = math.inf
        #: When the next heartbeat action is due (a ping, or the end of a pong's wait), and when this
        #: session's earliest entry in the schedule fires: one entry at a time, however often a pong
        #: moves the due time later (a stale, earlier entry re-arms for the real one when it fires).
        self._hb_due = math.inf
        self._hb_armed = math.inf
        self._heartbeats: Heartbeats | None = None
        self._ws_scope: trio.CancelScope | None = None
        self._end_callbacks: list[Callable[[], None]] = []
        self._final_delivered = False
        self._final_event: trio.Event | None = None
        #: Counts this session's messages (set by the engine at its opening when it meters traffic;
        #: None: nothing is counted and writes go straight to the transport).
        self.meter: TrafficMeter | None = None
        #: Called once when the session moves from long-polling to WebSocket (the engine's
        #: ``upgrade`` observers), if set.
        self.on_upgrade: Callable[[Session], None] | None = None

    def __repr__(self) -> str:
        return f"<Session {self.sid} {self.transport} {self.state.name} reason={self.reason}>"

    # -- state ------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the session ended (``reason`` says why)."""
        return self.state is SessionState.CLOSED

    @property
    def upgrading(self) -> bool:
        """True between a successful probe and the end of the upgrade."""
        return self.state is SessionState.UPGRADING

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
        if self.sink is not None:
            return self.sink.queued_bytes
        return self.poll.queued_bytes if self.poll is not None else 0

    @property
    def max_queued_bytes(self) -> int:
        """The slow-consumer bound."""
        return self._max_queued_bytes

    @property
    def polling(self) -> PollBuffer:
        """The buffer of a polling session (or a session that upgraded from polling).

        Raises:
            LocalProtocolError: the session opened on WebSocket: it never polls.
        """
        if self.poll is None:
            raise LocalProtocolError("a WebSocket session has no long-polling buffer")
        return self.poll

    def set_receiver(self, receiver: Receiver) -> None:
        """Hand every message to ``await receiver(message)``, in order, from the task that reads it
        (the WebSocket's reader or the POST's): the transport reads no further until it returns.
        Set once by the engine when it opens the session, before the transport reads anything."""
        self._receiver = receiver

    # -- writing ----------------------------------------------------------------------------------
    @property
    def deliver(self) -> Callable[[Encoded, bool], bool]:
        """What writes a pre-encoded packet now (never awaits; the broadcast path): ``write`` while
        the session polls, its WebSocket sink's ``deliver`` once it has one (one call less); with a
        traffic meter, the metered write (which follows an upgrade too)."""
        if self.meter is not None:
            return self._metered_write
        return self.sink.deliver if self.sink is not None else self.write

    def _metered_write(self, item: Encoded, volatile: bool = False) -> bool:
        """``write``, counting what was taken on the session's meter."""
        sink = self.sink
        taken = sink.deliver(item, volatile) if sink is not None else self.write(item, volatile)
        if taken and self.meter is not None:
            self.meter.count_out(item)
        return taken

    def write(self, item: Encoded, volatile: bool = False) -> bool:
        """Send a pre-encoded packet on the current transport (never awaits); False when dropped."""
        sink = self.sink
        if sink is not None:
            return sink.deliver(item, volatile)
        if self.reason is not None or self.poll is None:
            return False
        return self.poll.write(item, volatile=volatile)

    def send_packet(self, packet: Packet) -> bool:
        """Encode and send one Socket.IO packet (counted in the server's ``deliveries``)."""
        item = Encoded.of(packet)
        if self._metered_write(item) if self.meter is not None else self.write(item):
            self.counters.delivered(1, len(item.frames))
            return True
        return False

    async def wait_writable(self) -> None:
        """Wait until the current transport's queue is under the bound (or the session ends)."""
        while self.queued_bytes >= self.max_queued_bytes and self.reason is None:
            if self.sink is not None:
                await self.sink.wait_writable()
            elif self.poll is not None:
                await self.poll.wait_writable()
            else:  # pragma: no cover - a WebSocket session has its sink from the start
                break
        await trio.lowlevel.checkpoint()

    # -- reading ----------------------------------------------------------------------------------
    async def feed(self, packet: EnginePacket) -> None:
        """Handle one Engine.IO packet from the client (from a POST or the WebSocket).

        A packet a client may not send closes the session with "parse error".
        """
        kind = packet.type
        if kind is EnginePacketType.MESSAGE:
            if self.reason is None:
                if self.meter is not None:
                    self.meter.count_in(packet.data)
                await self._receiver(packet.data)
            else:
                await trio.lowlevel.checkpoint()  # the session ended: the message is moot
        elif kind is EnginePacketType.PONG:
            if self._pong_deadline != math.inf:
                self._next_ping(trio.current_time())
            await trio.lowlevel.checkpoint()
        elif kind is EnginePacketType.CLOSE:
            self.closed_by_client = True
            self.close(DisconnectReason.TRANSPORT_CLOSE)
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
        self.close(DisconnectReason.PARSE_ERROR)

    # -- closing ----------------------------------------------------------------------------------
    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (synchronously) when the session ends; at once if it has ended."""
        if self.reason is not None:
            callback()
        else:
            self._end_callbacks.append(callback)

    def close(self, reason: DisconnectReason = DisconnectReason.FORCED_CLOSE) -> None:
        """End the session now (synchronous: it runs in ``finally`` and in cancelled scopes; the
        first reason is kept). What is queued is still flushed by the transport."""
        if self.reason is not None:
            return
        self.reason = reason
        self.state = SessionState.CLOSED
        for callback in self._end_callbacks:
            callback()
        self._end_callbacks.clear()
        self._closed.set()
        if self._ws_scope is not None:
            self._ws_scope.cancel()
            self._ws_scope = None
        if self.poll is not None:
            self.poll.close()
        # Drop what refers back to the session's owners, so that an ended session and its
        # connection hold no reference cycle: reference counting frees them at once.
        self._receiver = _ignore_message

    def close_slow_consumer(self) -> None:
        """End the session as a slow consumer (counted once per session, whoever notices first)."""
        if self.reason is None:
            self.counters.slow_consumers_closed += 1
            self.close(DisconnectReason.SLOW_CONSUMER)

    async def wait_closed(self) -> DisconnectReason:
        """Wait until the session ends; return the reason."""
        await self._closed.wait()
        assert self.reason is not None
        return self.reason

    def _overflow(self) -> None:
        self.close_slow_consumer()

    # -- the last packets of a closed polling session -----------------------------------------------
    @property
    def collectable(self) -> bool:
        """Whether this closed polling session keeps its last packets for the next GET (a close
        decided by the server, not by the client)."""
        return self.reason in _COLLECTABLE and not self.closed_by_client

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

    def polling_answer(self) -> str:
        """The body of the answer to a GET that waited (or needed not wait): what is queued; a noop
        during an upgrade or after it; for a closed session, the last packets and then a close packet
        (a noop when the client asked to close)."""
        poll = self.polling
        if self.closed:
            if self.closed_by_client:
                return NOOP_ITEM.polling
            items = poll.take()
            items.append(CLOSE_ITEM)
            self.set_final_delivered()
            return polling_payload(items)
        if self.upgrading or self.transport is not Transport.POLLING:
            return NOOP_ITEM.polling
        return poll.payload()

    # -- heartbeat --------------------------------------------------------------------------------
    def start_heartbeat(self, heartbeats: Heartbeats) -> None:
        """Join the server's heartbeat schedule: the first ping is due ``ping_interval`` from now.

        The pong deadline counts from the moment the ping is queued, whether or not a GET is there
        to carry it.
        """
        self._heartbeats = heartbeats
        self._next_ping(trio.current_time())

    def _arm(self, when: float) -> None:
        self._hb_due = when
        heartbeats = self._heartbeats
        if when < self._hb_armed and heartbeats is not None:
            self._hb_armed = when
            heartbeats.schedule(self, when, 0)

    def _next_ping(self, now: float) -> None:
        if self._heartbeats is None or self.reason is not None:
            return
        self._pong_deadline = math.inf
        self._arm(now + self.ping_interval)

    def heartbeat_due(self, now: float, generation: int) -> None:
        """Called by the schedule: send the ping, or end the session when its pong is late."""
        self._hb_armed = math.inf
        if self.reason is not None or self._heartbeats is None:
            return
        if self._hb_due - now > _EARLY_TOLERANCE:
            self._arm(self._hb_due)  # an entry of an earlier due time (a pong came since)
            return
        if self._pong_deadline == math.inf:
            self._pong_deadline = now + self.ping_timeout
            self.write(PING_ITEM)
            self._arm(self._pong_deadline)
        else:
            self.close(DisconnectReason.PING_TIMEOUT)

    # -- transports -------------------------------------------------------------------------------
    def attach_websocket(self, sink: WebSocketSink, scope: trio.CancelScope) -> None:
        """Make ``sink`` the session's transport (a fresh WebSocket session or an upgrade).

        On an upgrade, what waited for the next GET goes out first on the WebSocket, in order.
        ``scope`` (the WebSocket reader's) is cancelled when the session closes.
        """
        if self.transport is Transport.WEBSOCKET and self.sink is not None:
            raise LocalProtocolError("the session already has its WebSocket")
        if self.poll is not None:
            for item in self.poll.take():
                sink.deliver(item)
        upgraded = self.transport is Transport.POLLING
        self.sink = sink
        self.transport = Transport.WEBSOCKET
        if self.state is SessionState.UPGRADING:
            self.state = SessionState.OPEN
        self._ws_scope = scope
        if self.poll is not None:
            self.poll.wake()  # a GET still pending gets its noop
        if self.reason is not None:
            scope.cancel()
        elif upgraded and self.on_upgrade is not None:
            self.on_upgrade(self)

    def start_upgrade(self) -> None:
        """The probe succeeded: a pending GET (and any until the upgrade ends) gets a noop now."""
        if self.state is SessionState.OPEN and self.transport is Transport.POLLING:
            self.state = SessionState.UPGRADING
        self.polling.wake()

    def abort_upgrade(self) -> None:
        """The upgrade failed: stay on polling."""
        if self.state is SessionState.UPGRADING:
            self.state = SessionState.OPEN
