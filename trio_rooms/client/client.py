"""The Trio Socket.IO v5 client: ``async with open_client(url) as client``, one namespace, reconnection.

Rule: one manager task owns the connection (connect, serve, back off, reconnect) and alone moves its
state; the Engine.IO session lives in ``transport``; public calls raise bare exceptions, never groups.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from functools import partial
from types import TracebackType
from typing import Any, Final

import trio

from .._backoff import Backoff
from .._util import unwrap_group
from ..errors import AckTimeout, Disconnected, NamespaceRejected, RemoteProtocolError
from ..hooks import CatchAllListeners, HookedEmitter, OutgoingListeners
from ..protocol.socketio import Decoder, Packet, PacketType, ack_args, encode, event_packet
from ..types import Transport
from .handlers import H, HandlerRunner, HandlerTable
from .http import EngineClosed, TransportOptions, parse_target, request_extras
from .pending import Ack, Outbox, PendingAcks
from .state import FINAL_REASONS, ClientDisconnectReason, ClientState, ConnectionState, RecoveryState
from .transport import Engine

__all__ = ["Client"]

logger = logging.getLogger("trio_rooms.client")


DEFAULT_TRANSPORTS: Final = ("polling", "websocket")
DEFAULT_TIMEOUT: Final = 20.0
DEFAULT_WAIT_TIMEOUT: Final = 20.0
DEFAULT_MAX_BUFFERED_PACKETS: Final = 1000
DEFAULT_MAX_PENDING_ACKS: Final = 1024
DEFAULT_MAX_HANDLERS_IN_FLIGHT: Final = 64
DEFAULT_CLOSE_TIMEOUT: Final = 2.0
#: Events a server may send for our namespace before its CONNECT answer (a server restoring a session
#: sends the missed ones first, as Node does); they are handled once the namespace is connected.
MAX_EARLY_EVENTS: Final = 10_000


class _AttemptFailedError(Disconnected):
    """A connection attempt failed before the namespace connected (retryable; the connect_error)."""


class _ServerDisconnectError(Exception):
    """The server sent DISCONNECT for our namespace."""


class Client(HookedEmitter):
    """A Socket.IO client of one namespace, kept connected while its ``async with`` block runs.

    Use ``async with open_client(url, ...) as client`` (or ``async with Client(url, ...) as client``):
    entering connects (see ``open_client``), leaving disconnects. A client is entered once.

    Args:
        url: ``http(s)://host[:port]`` (or ``ws(s)://``), without path or query.
        namespace: the namespace to join (default ``"/"``).
        auth: the CONNECT payload, a dict (sent again on every reconnection); None sends none.
        transports: ``("polling", "websocket")`` by default: the first opens the Engine.IO session
            (long-polling), and a later ``"websocket"`` allows the upgrade to WebSocket;
            ``("websocket",)`` connects over WebSocket directly, ``("polling",)`` never upgrades.
        headers: extra HTTP headers for every Engine.IO request (polling GET and POST, WebSocket
            handshake and upgrade), reconnections included (Node's ``extraHeaders``).
        query: extra query parameters for those requests (Node's ``query``). Both printable ASCII,
            not the client's own (``Host``, ``Sec-WebSocket-*``, ``EIO``, ``sid``...), 8 KiB in all.
        reconnection: reconnect after an unexpected loss (default True; never after the server's
            "io server disconnect").
        reconnection_delay: the first delay before reconnecting, in seconds (default 1.0), doubled
            per attempt up to ``reconnection_delay_max``.
        reconnection_delay_max: the cap of the delay, in seconds (default 5.0).
        randomization_factor: each delay is moved by up to this fraction, up or down (default 0.5,
            between 0 and 1).
        reconnection_attempts: attempts after a loss before giving up (default None: no limit).
        timeout: seconds one attempt may take (handshake and namespace CONNECT; default 20.0); it
            also bounds each HTTP request and each write.
        wait_timeout: seconds the first connection may take, all attempts included (default 20.0).
        path: the Engine.IO path (default ``"/socket.io/"``).
        ssl_context: the TLS context for ``https``/``wss`` (None: the default context).
        max_buffered_packets: emits held while (re)connecting (default 1000); past it ``emit``
            raises.
        max_pending_acks: ``emit_with_ack`` calls waiting at once (default 1024; more wait for a
            slot).
        max_handlers_in_flight: event handlers running at once (default 64; then reading pauses).
        max_message_size: the largest message accepted from the server, in bytes (default
            10,000,000).
        max_attachments: binary attachments per packet (default 10).
        max_json_depth: nesting depth of a packet's JSON (default 32).
        close_timeout: seconds each step of a close may take (default 2.0).

    Raises:
        ValueError: an invalid URL, namespace, transport, bound, timeout, delay, header or query.
        TypeError: ``auth`` is not a dict, or ``headers``/``query`` not a mapping of str to str.

    Attributes:
        namespace: The namespace this client joins.

    Connection state recovery: when the server has it on, its CONNECT answer carries a private
    session id (pid), and each event it broadcasts ends with an offset. The client keeps the pid and
    the last offset, strips that offset from the event's arguments (events the server sent without
    asking for an ack, whose last argument is a string) so that handlers bind as before, and sends
    both back in its CONNECT payload when it reconnects: ``recovered`` then says whether the server
    gave the same socket back (with the events it missed, delivered before any new one).
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "/",
        auth: dict[str, Any] | None = None,
        transports: Sequence[str] = DEFAULT_TRANSPORTS,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
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
        names = tuple(transports)
        if not names or len(set(names)) != len(names) or not set(names) <= set(Transport):
            known = sorted(transport.value for transport in Transport)
            raise ValueError(f"transports must be distinct names among {known}: {names}")
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
        extra_headers, extra_query = request_extras(headers, query)
        self._target = parse_target(url, path, extra_query)
        self._auth = auth
        self._options = TransportOptions(
            transports=tuple(Transport(name) for name in names),
            headers=extra_headers,
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
        self._max_attachments = max_attachments
        self._max_json_depth = max_json_depth
        self._handlers = HandlerTable()
        self._any = CatchAllListeners()
        self._outgoing = OutgoingListeners()
        self._runner = HandlerRunner(self._handlers, max_handlers_in_flight, self._any)
        self._acks = PendingAcks(max_pending_acks)
        self._outbox = Outbox(max_buffered_packets)
        self._engine: Engine | None = None
        self._sid: str | None = None
        self._recovery = RecoveryState()
        self._state = ConnectionState()
        self._closing = False
        self._entered = False
        self._block: AbstractAsyncContextManager[Client] | None = None
        self._manager_scope = trio.CancelScope()
        self._stopped = trio.Event()

    def __repr__(self) -> str:
        state = self._state.state.name.lower()
        return f"<Client {self._url} nsp={self.namespace!r} id={self._sid} state={state}>"

    # -- the async with block ----------------------------------------------------------------------
    async def __aenter__(self) -> Client:
        """Connect (see ``open_client`` for what is raised) and start delivering events.

        Raises:
            RuntimeError: the client was entered before.
        """
        if self._entered:
            raise RuntimeError("a Client is entered once (make a new one to connect again)")
        self._entered = True
        self._block = self._lifetime()
        try:
            return await self._block.__aenter__()
        except BaseException:
            self._block = None
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        """Disconnect cleanly and cancel the handlers still running."""
        block, self._block = self._block, None
        assert block is not None, "__aexit__ without __aenter__"
        return await block.__aexit__(exc_type, exc, traceback)

    @asynccontextmanager
    async def _lifetime(self) -> AsyncIterator[Client]:
        with unwrap_group():
            async with trio.open_nursery() as nursery:
                self._runner.attach(nursery)
                await nursery.start(self._run)
                self._runner.open()
                try:
                    yield self
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(self._close_timeout * 3):
                        await self.disconnect()
                    nursery.cancel_scope.cancel()

    # -- state -------------------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The namespace socket id from the server's CONNECT answer (None while not connected)."""
        return self._sid if self._state.connected else None

    @property
    def connected(self) -> bool:
        """True while the namespace is connected."""
        return self._state.connected

    @property
    def recovered(self) -> bool:
        """True when the last (re)connection got the same socket back from the server (connection
        state recovery): the same id and rooms, and the events missed meanwhile."""
        return self._recovery.recovered

    @property
    def transport(self) -> Transport | None:
        """The Engine.IO transport in use ("polling" or "websocket"), None while not connected."""
        engine = self._engine
        return engine.transport if engine is not None and self.connected else None

    # -- handlers ----------------------------------------------------------------------------------
    def on(self, event: str) -> Callable[[H], H]:
        """Register ``async def handler(*args)`` for ``event`` (a later one replaces an earlier one).

        The handler's return value answers the server's ack, if it asked for one: None sends no
        argument, a tuple spreads into several, anything else is one argument. Reserved events:
        ``"connect"`` (no argument), ``"disconnect"`` (the reason: a ``ClientDisconnectReason``, which
        is a str) and ``"connect_error"`` (the CONNECT_ERROR payload of a refused namespace, or a
        ``Disconnected`` error for a connection attempt that failed).

        Raises:
            TypeError: not an ``async def``, or a reserved handler with the wrong signature.
            ValueError: a reserved name that has no client handler.
        """
        return self._handlers.register(event)

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove the handler of ``event`` (with ``handler``: only if it is that one)."""
        self._handlers.remove(event, handler)

    # -- emitting ----------------------------------------------------------------------------------
    def _encode_event(self, event: str, args: tuple[Any, ...], ack_id: int | None) -> list[str | bytes]:
        text, attachments = encode(event_packet(self.namespace, event, args, ack_id))
        return [text, *attachments]

    async def _transmit(
        self, messages: list[str | bytes], ack_id: int | None, data: list[Any], *, volatile: bool = False
    ) -> None:
        """Send now when connected (telling the outgoing listeners about ``data``: the event and its
        arguments); buffer (bounded) while connecting or reconnecting, or drop when ``volatile``."""
        engine = self._engine
        told = False  # the outgoing listeners heard of it (a failed send then buffered: not twice)
        if self._state.state is ClientState.CONNECTED and engine is not None:
            try:
                if self._outgoing:
                    self._outgoing.notify(data, self)
                    told = True
                await engine.send(messages)
                self._acks.mark_sent(ack_id)
                return
            except EngineClosed as exc:
                if not self._reconnection or self._closing:
                    raise Disconnected(exc.reason) from None
        if self._state.closed or self._closing:
            raise Disconnected(self._state.reason or ClientDisconnectReason.IO_CLIENT_DISCONNECT)
        if volatile:
            await trio.lowlevel.checkpoint()  # not connected now: a volatile packet is dropped
            return
        if self._outbox.full:
            raise Disconnected(f"not connected and the send buffer is full ({self._outbox.size} packets)")
        self._outbox.append(messages, ack_id, data if self._outgoing and not told else None)
        await trio.lowlevel.checkpoint()

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` (bytes anywhere in them travel as binary attachments).

        While the client connects or reconnects, the packet is buffered and sent, in order, once the
        namespace is connected again (as socket.io-client does).

        Raises:
            Disconnected: the client is closed, or the send buffer is full.
            ValueError: a reserved event name. TypeError: an argument JSON cannot carry.

        Cancellation: the packet may or may not have been queued.
        """
        await self._transmit(self._encode_event(event, args, None), None, [event, *args])

    async def emit_flagged(self, event: str, args: tuple[Any, ...], *, volatile: bool) -> None:
        """``emit`` for ``FlaggedEmitter`` (``volatile``: dropped, not buffered, while not connected)."""
        await self._transmit(self._encode_event(event, args, None), None, [event, *args], volatile=volatile)

    async def emit_with_ack_flagged(
        self, event: str, args: tuple[Any, ...], *, volatile: bool, timeout: float | None
    ) -> Any:
        """``emit_with_ack`` for ``FlaggedEmitter`` (a timeout of None: 5 s, as ``emit_with_ack``)."""
        return await self._emit_with_ack(event, args, 5.0 if timeout is None else timeout, volatile)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        """Send ``event`` and wait for the server's acknowledgement.

        Returns:
            None, the value, or a tuple, for an ack of 0, 1 or 2+ arguments.

        Raises:
            AckTimeout: no ack within ``timeout`` seconds (a still-buffered packet is dropped).
            Disconnected: the connection was lost after the packet was sent, or the client closed.

        Cancellation: the ack is forgotten (a late one is ignored); a still-buffered packet is dropped.
        """
        return await self._emit_with_ack(event, args, timeout, False)

    async def _emit_with_ack(self, event: str, args: tuple[Any, ...], timeout: float, volatile: bool) -> Any:
        ack_id = self._acks.next_id()
        messages = self._encode_event(event, args, ack_id)
        ack = Ack()
        try:
            with trio.move_on_after(timeout):
                async with self._acks.slots:
                    self._acks.add(ack_id, ack)
                    await self._transmit(messages, ack_id, [event, *args], volatile=volatile)
                    await ack.done.wait()
        finally:
            self._acks.forget(ack_id)
            if not ack.done.is_set():
                self._outbox.drop(ack_id)
        if ack.error is not None:
            raise ack.error
        if ack.done.is_set():
            return ack.value
        raise AckTimeout(f"no ack for {event!r} within {timeout} s")

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
        reason = ClientDisconnectReason.IO_CLIENT_DISCONNECT
        if engine is not None:
            with trio.move_on_after(self._close_timeout):
                if was_connected:
                    with suppress(EngineClosed):
                        await engine.send([encode(Packet(PacketType.DISCONNECT, self.namespace))[0]])
                await engine.aclose(reason)
            engine.close(reason)
        self._manager_scope.cancel()
        self._set_closed(reason)
        with trio.move_on_after(self._close_timeout):
            await self._stopped.wait()
        if was_connected:
            await self._runner.call("disconnect", reason)

    def _set_closed(self, reason: str) -> None:
        self._state.move_to(ClientState.CLOSED, reason)
        self._acks.fail(self._state.reason, sent_only=False)
        self._outbox.clear()

    # -- what the server sends ---------------------------------------------------------------------
    async def _dispatch(self, engine: Engine, packet: Packet) -> None:
        """Start the event's handler as a task (``HandlerRunner.dispatch``); it answers the ack."""
        event, *args = packet.data
        if packet.ack_id is None:
            self._recovery.strip(args)  # connection state recovery: the event's offset
            answer = None
        else:
            answer = partial(self._answer, engine, packet.ack_id, event)
        await self._runner.dispatch(event, args, answer)

    async def _answer(self, engine: Engine, ack_id: int, event: object, result: Any) -> None:
        """Send the ACK of a server's event, if that session is still the connected one."""
        if self._engine is engine and self.connected:
            text, attachments = encode(Packet(PacketType.ACK, self.namespace, ack_args(result), ack_id))
            try:
                await engine.send([text, *attachments])
            except EngineClosed:
                logger.debug("client: connection lost before the ack of %r was sent", event)

    def _on_ack(self, packet: Packet) -> None:
        assert packet.ack_id is not None
        if not self._acks.resolve(packet.ack_id, packet.data):
            logger.debug("client: ack %d is not pending (late or unknown); ignored", packet.ack_id)

    # -- the manager -------------------------------------------------------------------------------
    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, and reconnect until closed (the ``async with`` block runs it).

        ``started`` once the namespace is connected for the first time. Before that it raises
        ``NamespaceRejected`` (the server refused the namespace) or ``Disconnected`` (no connection
        within ``wait_timeout``, or after one attempt without reconnection).
        """
        try:
            with self._manager_scope:
                await self._manage(task_status)
        finally:
            if not self._state.closed:
                self._set_closed(self._state.reason or ClientDisconnectReason.IO_CLIENT_DISCONNECT)
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
                await self._runner.fire("connect_error", {"message": exc.message, "data": exc.data})
                return
            except _AttemptFailedError as exc:
                await self._runner.fire("connect_error", Disconnected(exc.reason))
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
            final = reason in FINAL_REASONS or not self._reconnection or self._closing
            if final:
                self._set_closed(reason)
            else:
                self._state.move_to(ClientState.RECONNECTING, reason)
                self._acks.fail(reason, sent_only=True)
            if not self._closing:
                await self._runner.fire("disconnect", reason)
            if final:
                return
            await trio.sleep(self._backoff.next_delay())

    async def _session(self, on_connected: Callable[[], None], deadline: float) -> ClientDisconnectReason:
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
                        await engine.aclose(ClientDisconnectReason.IO_CLIENT_DISCONNECT)

    async def _serve(
        self, nursery: trio.Nursery, engine: Engine, on_connected: Callable[[], None], deadline: float
    ) -> ClientDisconnectReason:
        decoder = Decoder(max_attachments=self._max_attachments, max_depth=self._max_json_depth)
        try:
            with trio.move_on_at(deadline) as scope:
                await nursery.start(engine.run)
                self._engine = engine
                connect = Packet(PacketType.CONNECT, self.namespace, self._recovery.payload(self._auth))
                await engine.send([encode(connect)[0]])
                sid, pid, early = await self._await_connect(engine, decoder)
            if scope.cancelled_caught:
                raise _AttemptFailedError("connection timed out")
        except EngineClosed as exc:
            raise _AttemptFailedError(str(exc)) from None
        except RemoteProtocolError as exc:
            raise _AttemptFailedError(f"parse error: {exc.message}") from None
        self._sid = sid
        self._recovery.connected(pid)
        self._state.move_to(ClientState.FLUSHING)
        on_connected()
        await self._runner.fire("connect")
        try:
            for missed in early:  # sent before the CONNECT answer: the missed events of a recovery
                await self._dispatch(engine, missed)
            del early
            while self._outbox:  # emits made meanwhile join the end of the buffer: order is kept
                messages, ack_id, data = self._outbox.popleft()
                if data is not None and self._outgoing:
                    self._outgoing.notify(data, self)
                await engine.send(messages)
                self._acks.mark_sent(ack_id)
            self._state.move_to(ClientState.CONNECTED)
            while True:
                packet = decoder.feed(await engine.receive())
                if packet is not None:
                    await self._handle(engine, packet)
        except EngineClosed as exc:
            return exc.reason
        except RemoteProtocolError as exc:
            logger.warning("client: closing the connection: %s", exc.message)
            return ClientDisconnectReason.PARSE_ERROR
        except _ServerDisconnectError:
            reason = ClientDisconnectReason.IO_SERVER_DISCONNECT
            self._state.move_to(ClientState.CLOSED, reason)
            await engine.aclose(reason)
            return reason

    async def _await_connect(self, engine: Engine, decoder: Decoder) -> tuple[str, str | None, list[Packet]]:
        """The CONNECT answer's sid and pid (None without recovery), and the events sent before it."""
        early: list[Packet] = []
        while True:
            packet = decoder.feed(await engine.receive())
            if packet is None or packet.nsp != self.namespace:
                continue
            if packet.type is PacketType.CONNECT:
                data = packet.data
                sid = data.get("sid") if isinstance(data, dict) else None
                if not isinstance(sid, str) or not sid:
                    raise RemoteProtocolError("CONNECT answer without a sid")
                pid = data.get("pid")
                return sid, pid if isinstance(pid, str) and pid else None, early
            if packet.type is PacketType.EVENT:
                if len(early) >= MAX_EARLY_EVENTS:
                    raise RemoteProtocolError(
                        f"more than {MAX_EARLY_EVENTS} events before the CONNECT answer"
                    )
                early.append(packet)
                continue
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
