"""The Trio Socket.IO v5 client: ``async with open_client(url) as client``, one namespace, reconnection.

Rule: one manager task owns the connection (connect, serve, back off, reconnect); the Engine.IO
session lives in ``client_transport``; public calls raise bare exceptions, never exception groups.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from .._backoff import Backoff
from .._util import unwrap_group
from ..errors import AckTimeout, Disconnected, NamespaceRejected, RemoteProtocolError
from ..protocol.socketio import (
    MAX_ACK_ID,
    RESERVED_EVENTS,
    Decoder,
    Packet,
    PacketType,
    ack_args,
    ack_value,
    encode,
)
from .handlers import H, Handler, HandlerTable
from .transport import Engine, EngineClosed, EngineOptions, parse_target

__all__ = ["Client", "open_client"]

logger = logging.getLogger("trio_rooms.client")

TRANSPORTS: Final = frozenset({"polling", "websocket"})
DEFAULT_TRANSPORTS: Final = ("polling", "websocket")
DEFAULT_TIMEOUT: Final = 20.0
DEFAULT_WAIT_TIMEOUT: Final = 20.0
DEFAULT_MAX_BUFFERED_PACKETS: Final = 1000
DEFAULT_MAX_PENDING_ACKS: Final = 1024
DEFAULT_MAX_HANDLERS_IN_FLIGHT: Final = 64
DEFAULT_CLOSE_TIMEOUT: Final = 2.0
_FINAL_REASONS: Final = frozenset({"io server disconnect", "io client disconnect"})


class _AttemptFailedError(Disconnected):
    """A connection attempt failed before the namespace connected (retryable; the connect_error)."""


class _ServerDisconnectError(Exception):
    """The server sent DISCONNECT for our namespace."""


@dataclass(slots=True)
class _Ack:
    done: trio.Event = field(default_factory=trio.Event)
    value: Any = None
    error: Disconnected | None = None
    sent: bool = False


class Client:
    """A Socket.IO client of one namespace, kept connected. Build it with ``open_client``.

    Args:
        url: ``http(s)://host[:port]`` (or ``ws(s)://``), without path or query.
        namespace: The namespace to join.
        auth: The CONNECT payload (sent again on every reconnection).
        transports: The first opens the session; a later ``"websocket"`` allows the upgrade.
        reconnection: Reconnect after an unexpected loss (never after "io server disconnect").
        reconnection_delay: The first delay, doubled per attempt up to ``reconnection_delay_max``.
        reconnection_delay_max: The cap of the delay (seconds).
        randomization_factor: Each delay is moved by up to this fraction, up or down.
        reconnection_attempts: Attempts after a loss before giving up (None: no limit).
        timeout: Seconds one attempt may take (handshake and namespace CONNECT); also bounds each
            HTTP request and each write.
        wait_timeout: Seconds the first connection may take, all attempts included.
        path: The Engine.IO path. ssl_context: For ``https``/``wss``.
        max_buffered_packets: Emits held while (re)connecting; past it ``emit`` raises.
        max_pending_acks: ``emit_with_ack`` calls waiting at once (more wait for a slot).
        max_handlers_in_flight: Event handlers running at once (then reading pauses).
        max_message_size: The largest message accepted from the server, in bytes.
        max_attachments: Binary attachments per packet. max_json_depth: JSON nesting.
        close_timeout: Seconds each step of a close may take.

    Attributes:
        namespace: The namespace this client joins.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "/",
        auth: dict[str, Any] | None = None,
        transports: Sequence[str] = DEFAULT_TRANSPORTS,
        reconnection: bool = True,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        reconnection_attempts: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        path: str = "/socket.io/",
        ssl_context: ssl.SSLContext | None = None,
        max_buffered_packets: int = DEFAULT_MAX_BUFFERED_PACKETS,
        max_pending_acks: int = DEFAULT_MAX_PENDING_ACKS,
        max_handlers_in_flight: int = DEFAULT_MAX_HANDLERS_IN_FLIGHT,
        max_message_size: int = 10_000_000,
        max_attachments: int = 10,
        max_json_depth: int = 32,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        transports = tuple(transports)
        if not transports or len(set(transports)) != len(transports) or not set(transports) <= TRANSPORTS:
            raise ValueError(f"transports must be distinct names among {sorted(TRANSPORTS)}: {transports}")
        if not isinstance(namespace, str) or "," in namespace:
            raise ValueError(f"invalid namespace {namespace!r}")
        if auth is not None and not isinstance(auth, dict):
            raise TypeError("auth must be a dict or None")
        seconds = (timeout, wait_timeout, close_timeout, reconnection_delay, reconnection_delay_max)
        counts = (max_buffered_packets, max_pending_acks, max_handlers_in_flight, max_message_size)
        if not all(value > 0 for value in seconds) or not 0 <= randomization_factor <= 1:
            raise ValueError("timeouts and delays must be positive, randomization_factor in [0, 1]")
        if not all(isinstance(count, int) and count > 0 for count in counts):
            raise ValueError("the max_* bounds must be positive ints")
        self.namespace = namespace if namespace.startswith("/") else "/" + namespace
        self._url = url
        self._target = parse_target(url, path)
        self._auth = auth
        self._options = EngineOptions(
            transports=transports,
            ssl_context=ssl_context,
            connect_timeout=timeout,
            request_timeout=timeout,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
        )
        self._reconnection = reconnection
        self._backoff = Backoff(reconnection_delay, reconnection_delay_max, randomization_factor)
        self._max_attempts = math.inf if reconnection_attempts is None else reconnection_attempts
        self._timeout = timeout
        self._wait_timeout = wait_timeout
        self._close_timeout = close_timeout
        self._max_buffered = max_buffered_packets
        self._max_attachments = max_attachments
        self._max_json_depth = max_json_depth
        self._handlers = HandlerTable()
        self._handler_slots = trio.Semaphore(max_handlers_in_flight)
        self._ack_slots = trio.Semaphore(max_pending_acks)
        self._acks: dict[int, _Ack] = {}
        self._next_ack_id = 0
        self._buffer: deque[tuple[list[str | bytes], int | None]] = deque()
        self._engine: Engine | None = None
        self._sid: str | None = None
        self._state = "connecting"  # connecting, flushing, connected, reconnecting, closed
        self._reason = ""
        self._closing = False
        self._nursery: trio.Nursery | None = None
        self._manager_scope = trio.CancelScope()
        self._stopped = trio.Event()
        # Set when the ``async with`` block starts: handlers registered at its top see every event.
        self._ready = trio.Event()

    def __repr__(self) -> str:
        return f"<Client {self._url} nsp={self.namespace!r} id={self._sid} state={self._state}>"

    # -- state -------------------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The namespace socket id from the server's CONNECT answer (None while not connected)."""
        return self._sid if self._state in ("flushing", "connected") else None

    @property
    def connected(self) -> bool:
        """True while the namespace is connected."""
        return self._state in ("flushing", "connected")

    @property
    def transport(self) -> str | None:
        """The Engine.IO transport in use ("polling" or "websocket"), None while not connected."""
        engine = self._engine
        return engine.transport if engine is not None and self.connected else None

    # -- handlers ----------------------------------------------------------------------------------
    def on(self, event: str) -> Callable[[H], H]:
        """Register ``async def handler(*args)`` for ``event`` (a later one replaces an earlier one).

        The handler's return value answers the server's ack, if it asked for one: None sends no
        argument, a tuple spreads into several, anything else is one argument. Reserved events:
        ``"connect"`` (no argument), ``"disconnect"`` (the reason, a str) and ``"connect_error"``
        (the CONNECT_ERROR payload of a refused namespace, or a ``Disconnected`` error for a
        connection attempt that failed).

        Raises:
            TypeError: not an ``async def``, or a reserved handler with the wrong signature.
            ValueError: a reserved name that has no client handler.
        """
        return self._handlers.register(event)

    # -- emitting ----------------------------------------------------------------------------------
    def _encode_event(self, event: str, args: tuple[Any, ...], ack_id: int | None) -> list[str | bytes]:
        if not isinstance(event, str):
            raise TypeError("an event name is a str")
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        text, attachments = encode(Packet(PacketType.EVENT, self.namespace, [event, *args], ack_id))
        return [text, *attachments]

    async def _transmit(self, messages: list[str | bytes], ack_id: int | None) -> None:
        """Send now when connected; buffer (bounded) while connecting or reconnecting."""
        engine = self._engine
        if self._state == "connected" and engine is not None:
            try:
                await engine.send(messages)
                self._mark_sent(ack_id)
                return
            except EngineClosed as exc:
                if not self._reconnection or self._closing:
                    raise Disconnected(exc.reason) from None
        if self._state == "closed" or self._closing:
            raise Disconnected(self._reason or "io client disconnect")
        if len(self._buffer) >= self._max_buffered:
            raise Disconnected(f"not connected and the send buffer is full ({self._max_buffered} packets)")
        self._buffer.append((messages, ack_id))
        await trio.lowlevel.checkpoint()

    def _mark_sent(self, ack_id: int | None) -> None:
        if ack_id is not None and (ack := self._acks.get(ack_id)) is not None:
            ack.sent = True

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` (bytes anywhere in them travel as binary attachments).

        While the client connects or reconnects, the packet is buffered and sent, in order, once the
        namespace is connected again (as socket.io-client does).

        Raises:
            Disconnected: the client is closed, or the send buffer is full.
            ValueError: a reserved event name. TypeError: an argument JSON cannot carry.

        Cancellation: the packet may or may not have been queued.
        """
        await self._transmit(self._encode_event(event, args, None), None)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        """Send ``event`` and wait for the server's acknowledgement.

        Returns:
            None, the value, or a tuple, for an ack of 0, 1 or 2+ arguments.

        Raises:
            AckTimeout: no ack within ``timeout`` seconds (a still-buffered packet is dropped).
            Disconnected: the connection was lost after the packet was sent, or the client closed.

        Cancellation: the ack is forgotten (a late one is ignored); a still-buffered packet is dropped.
        """
        ack_id = self._next_ack_id
        self._next_ack_id = (ack_id + 1) % (MAX_ACK_ID + 1)
        messages = self._encode_event(event, args, ack_id)
        ack = _Ack()
        try:
            with trio.move_on_after(timeout):
                async with self._ack_slots:
                    self._acks[ack_id] = ack
                    await self._transmit(messages, ack_id)
                    await ack.done.wait()
        finally:
            self._acks.pop(ack_id, None)
            if not ack.done.is_set():
                self._drop_buffered(ack_id)
        if ack.error is not None:
            raise ack.error
        if ack.done.is_set():
            return ack.value
        raise AckTimeout(f"no ack for {event!r} within {timeout} s")

    def _drop_buffered(self, ack_id: int) -> None:
        for item in self._buffer:
            if item[1] == ack_id:
                self._buffer.remove(item)
                return

    # -- disconnecting -----------------------------------------------------------------------------
    async def disconnect(self) -> None:
        """Leave the namespace (DISCONNECT), close the Engine.IO session and stop reconnecting.

        Idempotent. The ``"disconnect"`` handler runs (awaited) with "io client disconnect" if the
        namespace was connected. Every wait is bounded by ``close_timeout``.

        Cancellation: the connection is still closed (abruptly if need be).
        """
        if self._closing:
            await self._stopped.wait()
            return
        self._closing = True
        was_connected = self.connected
        engine = self._engine
        if engine is not None:
            with trio.move_on_after(self._close_timeout):
                if was_connected:
                    with suppress(EngineClosed):
                        await engine.send([encode(Packet(PacketType.DISCONNECT, self.namespace))[0]])
                await engine.aclose("io client disconnect")
            engine.close("io client disconnect")
        self._manager_scope.cancel()
        self._set_closed("io client disconnect")
        with trio.move_on_after(self._close_timeout):
            await self._stopped.wait()
        if was_connected:
            await self._call_reserved("disconnect", "io client disconnect")

    def _set_closed(self, reason: str) -> None:
        if self._state != "closed":
            self._state, self._reason = "closed", reason
        self._fail_acks(self._reason, sent_only=False)
        self._buffer.clear()

    def _fail_acks(self, reason: str, *, sent_only: bool) -> None:
        """Fail waiting acks; after a loss, only those of sent packets (buffered ones still wait)."""
        for ack in self._acks.values():
            if (ack.sent or not sent_only) and not ack.done.is_set():
                ack.error = Disconnected(reason)
                ack.done.set()

    # -- handlers at work --------------------------------------------------------------------------
    async def _call_reserved(self, event: str, *args: Any) -> None:
        handler = self._handlers.reserved(event)
        if handler is not None:
            try:
                await handler(*args)
            except Exception:
                logger.exception("client %r handler failed", event)

    async def _fire(self, event: str, *args: Any) -> None:
        """Start a reserved handler as a task in the client's nursery, in order with events.

        Only "connect" waits for the ``async with`` block to start (no other handler exists before).
        """
        if event == "connect":
            await self._ready.wait()
        handler = self._handlers.reserved(event)
        if handler is not None and self._nursery is not None:
            await self._handler_slots.acquire()
            with trio.CancelScope(shield=True):  # started is its first step: this cannot block
                await self._nursery.start(self._run_handler, None, handler, event, args, None)

    async def _dispatch(self, engine: Engine, packet: Packet) -> None:
        """Start the event's handler as a task; it runs up to its first checkpoint before we go on."""
        await self._ready.wait()  # handlers registered at the top of the block see the first events
        event, *args = packet.data
        handler = self._handlers.for_event(event, args)
        if handler is None:
            return
        assert self._nursery is not None
        await self._handler_slots.acquire()
        await self._nursery.start(self._run_handler, engine, handler, event, args, packet.ack_id)

    async def _run_handler(
        self,
        engine: Engine | None,
        handler: Handler,
        event: str,
        args: Sequence[Any],
        ack_id: int | None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        try:
            try:
                result = await handler(*args)
            except Exception:
                logger.exception("client handler for %r failed", event)
                return
            if engine is not None and ack_id is not None and self._engine is engine and self.connected:
                answer = Packet(PacketType.ACK, self.namespace, ack_args(result), ack_id)
                text, attachments = encode(answer)
                try:
                    await engine.send([text, *attachments])
                except EngineClosed:
                    logger.debug("client: connection lost before the ack of %r was sent", event)
        finally:
            self._handler_slots.release()

    def _on_ack(self, packet: Packet) -> None:
        assert packet.ack_id is not None
        ack = self._acks.get(packet.ack_id)
        if ack is None or ack.done.is_set():
            logger.debug("client: ack %d is not pending (late or unknown); ignored", packet.ack_id)
            return
        ack.value = ack_value(packet.data)
        ack.done.set()

    # -- the manager -------------------------------------------------------------------------------
    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, and reconnect until closed (``open_client`` runs it).

        ``started`` once the namespace is connected for the first time. Before that it raises
        ``NamespaceRejected`` (the server refused the namespace) or ``Disconnected`` (no connection
        within ``wait_timeout``, or after one attempt without reconnection).
        """
        try:
            with self._manager_scope:
                await self._manage(task_status)
        finally:
            if self._state != "closed":
                self._set_closed(self._reason or "io client disconnect")
            self._engine = None
            self._stopped.set()

    async def _manage(self, task_status: trio.TaskStatus[None]) -> None:
        first = True
        deadline = trio.current_time() + self._wait_timeout

        def on_connected() -> None:
            nonlocal first
            self._backoff.reset()
            if first:
                first = False
                task_status.started()

        while True:
            try:
                attempt_deadline = trio.current_time() + self._timeout
                reason = await self._session(
                    on_connected, min(deadline, attempt_deadline) if first else attempt_deadline
                )
            except NamespaceRejected as exc:
                self._set_closed(f"namespace rejected: {exc.message}")
                if first:
                    raise
                await self._fire("connect_error", {"message": exc.message, "data": exc.data})
                return
            except _AttemptFailedError as exc:
                await self._fire("connect_error", Disconnected(exc.reason))
                delay = self._backoff.next_delay()
                gave_up = not self._reconnection or self._backoff.attempts > self._max_attempts
                if gave_up or (first and trio.current_time() + delay >= deadline):
                    self._set_closed(f"could not connect: {exc.reason}")
                    if first:
                        raise Disconnected(f"could not connect to {self._url}: {exc.reason}") from None
                    return
                await trio.sleep(delay)
                continue
            # The namespace was connected, then the session ended.
            self._sid = None
            final = reason in _FINAL_REASONS or not self._reconnection or self._closing
            if final:
                self._set_closed(reason)
            else:
                self._state = "reconnecting"
                self._reason = reason
                self._fail_acks(reason, sent_only=True)
            if not self._closing:
                await self._fire("disconnect", reason)
            if final:
                return
            await trio.sleep(self._backoff.next_delay())

    async def _session(self, on_connected: Callable[[], None], deadline: float) -> str:
        """One Engine.IO session: open, CONNECT, serve; returns why it ended after connecting.

        Raises ``_AttemptFailedError`` (ended before connecting) or ``NamespaceRejected``.
        """
        engine = Engine(self._target, self._options)
        with unwrap_group():
            async with trio.open_nursery() as nursery:
                try:
                    return await self._serve(nursery, engine, on_connected, deadline)
                finally:  # a graceful, bounded close while trio-websocket's reader still runs
                    self._engine = None
                    with trio.CancelScope(shield=True):
                        await engine.aclose("io client disconnect")

    async def _serve(
        self, nursery: trio.Nursery, engine: Engine, on_connected: Callable[[], None], deadline: float
    ) -> str:
        decoder = Decoder(max_attachments=self._max_attachments, max_depth=self._max_json_depth)
        try:
            with trio.move_on_at(deadline) as scope:
                await nursery.start(engine.run)
                self._engine = engine
                await engine.send([encode(Packet(PacketType.CONNECT, self.namespace, self._auth))[0]])
                sid = await self._await_connect(engine, decoder)
            if scope.cancelled_caught:
                raise _AttemptFailedError("connection timed out")
        except EngineClosed as exc:
            raise _AttemptFailedError(str(exc)) from None
        except RemoteProtocolError as exc:
            raise _AttemptFailedError(f"parse error: {exc.message}") from None
        self._sid = sid
        self._state = "flushing"
        on_connected()
        await self._fire("connect")
        try:
            while self._buffer:  # emits made meanwhile join the end of the buffer: order is kept
                messages, ack_id = self._buffer.popleft()
                await engine.send(messages)
                self._mark_sent(ack_id)
            self._state = "connected"
            while True:
                packet = decoder.feed(await engine.receive())
                if packet is not None:
                    await self._handle(engine, packet)
        except EngineClosed as exc:
            return exc.reason
        except RemoteProtocolError as exc:
            logger.warning("client: closing the connection: %s", exc.message)
            return "parse error"
        except _ServerDisconnectError:
            self._state = "closed"
            self._reason = "io server disconnect"
            await engine.aclose("io server disconnect")
            return "io server disconnect"

    async def _await_connect(self, engine: Engine, decoder: Decoder) -> str:
        while True:
            packet = decoder.feed(await engine.receive())
            if packet is None or packet.nsp != self.namespace:
                continue
            if packet.type is PacketType.CONNECT:
                sid = packet.data.get("sid") if isinstance(packet.data, dict) else None
                if not isinstance(sid, str) or not sid:
                    raise RemoteProtocolError("CONNECT answer without a sid")
                return sid
            if packet.type is PacketType.CONNECT_ERROR:
                data = packet.data
                if isinstance(data, dict):
                    raise NamespaceRejected(str(data.get("message", "")), data.get("data"))
                raise NamespaceRejected(str(data))
            logger.debug("client: %s packet before the CONNECT answer; ignored", packet.type.name)

    async def _handle(self, engine: Engine, packet: Packet) -> None:
        if packet.nsp != self.namespace:
            logger.debug("client: packet for namespace %r ignored", packet.nsp)
            return
        kind = packet.type
        if kind is PacketType.EVENT:
            await self._dispatch(engine, packet)
        elif kind is PacketType.ACK:
            self._on_ack(packet)
        elif kind is PacketType.DISCONNECT:
            raise _ServerDisconnectError
        else:
            raise RemoteProtocolError(f"unexpected {kind.name} packet while connected")


@asynccontextmanager
async def open_client(
    url: str,
    *,
    namespace: str = "/",
    auth: dict[str, Any] | None = None,
    transports: Sequence[str] = DEFAULT_TRANSPORTS,
    reconnection: bool = True,
    reconnection_delay: float = 1.0,
    reconnection_delay_max: float = 5.0,
    **options: Any,
) -> AsyncIterator[Client]:
    """Connect a ``Client`` to ``url`` and keep it connected for the block (arguments: ``Client``).

    The first connection: one attempt without reconnection; with it, attempts with the backoff until
    ``wait_timeout``. Leaving the block disconnects cleanly (DISCONNECT, Engine.IO close, socket
    closed) and cancels the handlers still running. Events that arrive before the block starts wait
    for it, so handlers registered at its top see them (and the first "connect").

    Raises:
        NamespaceRejected: the server refused the namespace (CONNECT_ERROR) on the first connection.
        Disconnected: no connection could be made (the message says why).
        The block's own exceptions, bare. An exception group escapes only if the block and a client
        task fail together (client tasks do not fail by design: handler errors are logged).

    Cancellation: the client is still disconnected, abruptly if the close cannot finish in time.
    """
    client = Client(
        url,
        namespace=namespace,
        auth=auth,
        transports=transports,
        reconnection=reconnection,
        reconnection_delay=reconnection_delay,
        reconnection_delay_max=reconnection_delay_max,
        **options,
    )
    with unwrap_group():
        async with trio.open_nursery() as nursery:
            client._nursery = nursery
            await nursery.start(client._run)
            client._ready.set()
            try:
                yield client
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(client._close_timeout * 3):
                    await client.disconnect()
                nursery.cancel_scope.cancel()
