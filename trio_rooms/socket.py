"""Socket: one client's membership of one namespace: rooms, handlers, emits and acks.

Rule: each socket runs in its own task (``run``); its event handlers run in its own nursery and
are cancelled with it; its membership is removed synchronously in that task's ``finally``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Set
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import trio

from ._util import check_async_callable, new_socket_id, rooms_arg
from .broadcast import BroadcastOperator
from .errors import AckTimeout, ConnectionRefused, Disconnected, DisconnectReason, LocalProtocolError
from .hooks import CatchAllListeners, HookedEmitter, OutgoingListeners, PacketMiddleware, PacketMiddlewares
from .protocol.encoded import Encoded
from .protocol.socketio import Packet, PacketType, ack_args, ack_value, event_packet
from .recovery import RECOVERABLE_REASONS, PersistedSession
from .socket_context import SocketHost, SocketNamespace, SocketOptions
from .types import Handshake, Room, RoomsView, SocketId

if TYPE_CHECKING:
    from .recovery import RestoredSession

__all__ = ["ConnectionHandler", "Middleware", "Socket", "SocketHost", "SocketNamespace", "SocketOptions"]

logger = logging.getLogger("trio_rooms")

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)

_TEARDOWN_EVENTS: Final = frozenset({"disconnecting", "disconnect"})
_UNREGISTERABLE: Final = frozenset({"connect", "connect_error", "newListener", "removeListener"})
#: The event whose handler receives the exceptions of ``use()`` middlewares (a client's is dropped).
_ERROR: Final = "error"

Middleware: TypeAlias = "Callable[[Socket], Awaitable[None]]"
"""``async def middleware(socket)``: raising ``ConnectionRefused`` refuses the connection."""
ConnectionHandler: TypeAlias = "Callable[[Socket], Awaitable[Any]]"
"""``async def handler(socket)``: runs once the socket is connected."""


class Socket(HookedEmitter):
    """A client connected to a namespace (created by the server, one per connection and namespace).

    Attributes:
        id: fresh, random and unguessable, per namespace.
        nsp: the namespace.
        handshake: what the client sent when connecting (recovery's ``pid``/``offset`` left out).
        data: a dict for the application.
        recovered: True for a dropped socket given back by connection state recovery (the same id,
            rooms and ``data``; the broadcasts it missed were sent first).
        conn: the Engine.IO connection under it (Node's ``socket.conn``), shared by the client's
            sockets in every namespace: ``conn.sid`` (sensitive: it lets its holder poll the
            session), ``conn.transport`` ("polling", then "websocket"), and ``conn.close()``,
            Node's forced close: synchronous, it ends the connection at once (as a network failure
            would; no DISCONNECT packet is sent), and each of its sockets disconnects with the
            reason "forced close". The client reconnects, and connection state recovery, when on,
            gives it its sockets back. ``disconnect(close=True)`` is the clean way out.
    """

    #: Write a pre-encoded packet to this client now (never awaits; the broadcast path):
    #: ``deliver(item, volatile=False) -> bool``, False when dropped. It is the session's
    #: ``deliver`` (on a WebSocket, its ``Outbound.deliver``), bound once, so that a broadcast makes
    #: one Python call per recipient down to the send.
    deliver: Callable[[Encoded, bool], bool]

    def __init__(
        self,
        namespace: SocketNamespace[Socket],
        host: SocketHost[Socket],
        handshake: Handshake,
        options: SocketOptions,
    ) -> None:
        self.id = new_socket_id()
        self.nsp = namespace
        self.handshake = handshake
        self.data: dict[str, Any] = {}
        self.recovered = False
        # The private session id (connection state recovery only): sent to this client alone.
        self._pid: str | None = new_socket_id() if namespace.recovery is not None else None
        # A restored session whose socket has not connected yet (saved again if it drops meanwhile).
        self._restoring: RestoredSession | None = None
        # Until the CONNECT ack, the rooms joined (True) or left (False) in middleware, last call
        # last; applied when the socket connects, dropped if it does not (None from then on).
        self._early: dict[Room, bool] | None = {}
        self._resume_offset = ""
        self._host = host
        self._options = options
        self.conn = self._session = host.session
        # A socket made before an upgrade keeps ``session.write``, which follows the upgrade.
        self.deliver = self._write = host.session.deliver
        self._any = CatchAllListeners()
        self._outgoing = OutgoingListeners()
        self._middlewares = PacketMiddlewares()
        self._handlers: dict[str, tuple[Handler, inspect.Signature]] = {}
        self._teardown_handlers: dict[str, list[Handler]] = {}
        self._acks: dict[int, tuple[Callable[[Any], None], Callable[[], None]]] = {}
        self._connected = False
        self._reason: DisconnectReason | None = None
        # The socket's nursery scope once ``run`` started; ``close`` before that is noted in _closing.
        self._scope: trio.CancelScope | None = None
        self._closing = False
        # Event handlers running now, and the event a full socket waits on (made when it is full).
        self._in_flight = 0
        self._slot_free: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<Socket {self.id} nsp={self.nsp.name!r} connected={self._connected}>"

    # -- state ------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True from the CONNECT ack until the disconnect starts."""
        return self._connected

    @property
    def rooms(self) -> Set[Room]:
        """The rooms this socket is in (read-only, live), its own id included once connected; in
        middleware, the rooms it will be in. ``-``, ``&``, ``|`` and ``^`` give a frozenset."""
        return RoomsView(self._room_set)

    def _room_set(self) -> Set[Room]:
        early = self._early
        if early is None:
            return self.nsp.adapter.sids.get(self.id, frozenset())
        kept = self._restoring.rooms if self._restoring is not None else ()
        return frozenset((*(r for r in kept if early.get(r, True)), *(r for r, j in early.items() if j)))

    def join(self, room_or_rooms: str | Iterable[str]) -> None:
        """Join ``room_or_rooms`` (a str is one room). In middleware, the socket is in them once
        it connects (not at all if it is refused). After a disconnect, nothing happens."""
        rooms = rooms_arg(room_or_rooms)
        if self._early is not None:
            for room in rooms:
                self._early.pop(room, None)
                self._early[room] = True
        elif self._connected:
            self.nsp.adapter.add_all(self.id, rooms)

    def leave(self, room: str) -> None:
        """Leave ``room`` (nothing happens if this socket is not in it); in middleware, undo a
        ``join`` there (or a recovered room) before the socket connects."""
        if not isinstance(room, str):
            raise TypeError(f"a room is a str, not {type(room).__name__}")
        if self._early is not None:
            self._early.pop(room, None)
            self._early[room] = False
        else:
            self.nsp.adapter.remove(self.id, room)

    # -- handlers ---------------------------------------------------------------------------------
    def on(self, event: str) -> Callable[[H], H]:
        """Register ``async def handler(*args)`` for ``event``; its return value is the ack.

        ``"disconnecting"`` (rooms still there) and ``"disconnect"`` (rooms gone) handlers take
        one argument, the reason. A later registration for the same event replaces the earlier one
        (the two reserved events keep every handler).
        """
        if not isinstance(event, str):
            raise TypeError("an event name is a str")
        if event in _UNREGISTERABLE:
            raise ValueError(f"{event!r} is reserved and has no socket handler")

        def register(handler: H) -> H:
            signature = check_async_callable(handler, f"handler for {event!r}")
            if event in _TEARDOWN_EVENTS:
                try:
                    signature.bind("reason")
                except TypeError:
                    raise TypeError(f"a {event!r} handler takes one argument, the reason") from None
                self._teardown_handlers.setdefault(event, []).append(handler)
            else:
                if event == _ERROR:
                    try:
                        signature.bind("exception")
                    except TypeError:
                        raise TypeError('an "error" handler takes one argument, the exception') from None
                self._handlers[event] = (handler, signature)
            return handler

        return register

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove the handler(s) of ``event`` (with ``handler``: only if it is that one)."""
        if event in _TEARDOWN_EVENTS:
            kept = [h for h in self._teardown_handlers.get(event, ()) if handler is not None and h != handler]
            self._teardown_handlers[event] = kept
            return
        entry = self._handlers.get(event)
        if entry is not None and (handler is None or entry[0] == handler):
            del self._handlers[event]

    def use(self, middleware: PacketMiddleware) -> PacketMiddleware:
        """Register ``async def middleware(event, args)``, run for each incoming event in registration
        order, after the catch-all listeners and before the handler; it may change the list ``args`` in
        place. Raising drops the packet: no further middleware nor handler runs, the client gets no
        answer and stays connected, and the ``"error"`` handler (``@socket.on("error")``) receives the
        exception (logged when there is none). Raises TypeError: not ``async def m(event, args)``."""
        return self._middlewares.add(middleware)

    def _outgoing_changed(self) -> None:  # the broadcast path pays for listeners only while there are some
        self.deliver = self._deliver_observed if self._outgoing else self._write

    def _deliver_observed(self, item: Encoded, volatile: bool) -> bool:
        """``deliver`` while outgoing listeners are registered: tell them, then write."""
        packet = item.packet
        if packet is not None and self._connected:
            self._outgoing.notify(packet.data, self)
        return self._write(item, volatile)

    # -- emitting ---------------------------------------------------------------------------------
    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to this client, waiting for queue space up to the server's send timeout.

        Raises:
            Disconnected: the socket is disconnected, or its queue stayed full past the timeout
                (the connection is then closed as a slow consumer).
        """
        packet = event_packet(self.nsp.name, event, args)
        await self._send(packet)

    async def emit_flagged(self, event: str, args: tuple[Any, ...], *, volatile: bool) -> None:
        """``emit`` for ``FlaggedEmitter``: a volatile packet is dropped, not waited for."""
        packet = event_packet(self.nsp.name, event, args)
        await (self._send_volatile(packet) if volatile else self._send(packet))

    async def emit_with_ack_flagged(
        self, event: str, args: tuple[Any, ...], *, volatile: bool, timeout: float | None
    ) -> Any:
        """``emit_with_ack`` for ``FlaggedEmitter`` (a timeout of None: 5 s, as ``emit_with_ack``)."""
        return await self._emit_with_ack(event, args, timeout or 5.0, volatile)

    async def _send_volatile(self, packet: Packet) -> None:
        if not self._connected:
            raise Disconnected(str(self._reason or "not connected"))
        await trio.lowlevel.checkpoint()
        if self._outgoing:
            self._outgoing.notify(packet.data, self)
        if self._connected:
            self._write(Encoded.of(packet), True)  # dropped when the queue is full

    async def _send(self, packet: Packet) -> None:
        if not self._connected:
            raise Disconnected(str(self._reason or "not connected"))
        if self._outgoing:
            self._outgoing.notify(packet.data, self)
        session = self._session
        if session.queued_bytes >= session.max_queued_bytes:
            with trio.move_on_after(self._options.send_timeout):
                await session.wait_writable()
            if session.queued_bytes >= session.max_queued_bytes:
                session.close_slow_consumer()
                raise Disconnected(str(DisconnectReason.SLOW_CONSUMER))
        else:
            await trio.lowlevel.checkpoint()
        if not self._connected or not self._session.send_packet(packet):
            raise Disconnected(str(self._reason or DisconnectReason.TRANSPORT_CLOSE))

    async def emit_with_ack(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        """Send ``event`` and wait for the client's ack.

        Returns:
            None, the value, or a tuple, for an ack of 0, 1 or 2+ arguments.

        Raises:
            AckTimeout: no ack within ``timeout`` seconds.
            Disconnected: the socket disconnected first.

        Cancellation: the pending ack is forgotten; a late ack is ignored.
        """
        return await self._emit_with_ack(event, args, timeout, False)

    async def _emit_with_ack(self, event: str, args: tuple[Any, ...], timeout: float, volatile: bool) -> Any:
        if len(self._acks) >= self._options.max_pending_acks:
            raise LocalProtocolError(f"{len(self._acks)} acks already pending on this socket")
        ack_id = self.nsp.next_ack_id()
        packet = event_packet(self.nsp.name, event, args)
        box: list[Any] = []
        done = trio.Event()
        counters = self.nsp.counters
        started = trio.current_time()

        def answer(value: Any) -> None:
            counters.observe_ack(trio.current_time() - started)
            box.append(value)
            done.set()

        self._acks[ack_id] = (answer, done.set)
        try:
            packet = Packet(packet.type, packet.nsp, packet.data, ack_id)
            await (self._send_volatile(packet) if volatile else self._send(packet))
            with trio.move_on_after(timeout):
                await done.wait()
        finally:
            self._acks.pop(ack_id, None)
        if box:
            return box[0]
        if done.is_set() or not self._connected:
            raise Disconnected(str(self._reason or DisconnectReason.TRANSPORT_CLOSE))
        raise AckTimeout(f"no ack for {event!r} within {timeout} s")

    def add_ack_callback(self, ack_id: int, answer: Callable[[Any], None], gone: Callable[[], None]) -> None:
        """Call ``answer(value)`` on the ack ``ack_id``, or ``gone()`` if the socket disconnects first."""
        self._acks[ack_id] = (answer, gone)

    def remove_ack_callback(self, ack_id: int) -> bool:
        """Forget the ack callback of ``ack_id``; False if it was not registered (any more)."""
        return self._acks.pop(ack_id, None) is not None

    # -- broadcasting from this socket (the sender is left out) -----------------------------------
    def to(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Target ``room_or_rooms``, leaving this socket out."""
        return self.broadcast.to(room_or_rooms)

    def in_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Alias of ``to``."""
        return self.to(room_or_rooms)

    def except_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Every socket of the namespace but this one and the members of ``room_or_rooms``."""
        return self.broadcast.except_(room_or_rooms)

    @property
    def broadcast(self) -> BroadcastOperator:
        """Every socket of the namespace but this one."""
        return BroadcastOperator(self.nsp.adapter, except_rooms=frozenset((self.id,)))

    # -- disconnecting ----------------------------------------------------------------------------
    async def disconnect(self, close: bool = False) -> None:
        """Disconnect this socket (the client gets a DISCONNECT packet).

        ``close=True`` disconnects every namespace of the connection and closes it.
        Cancellation: called from one of this socket's own handlers, the handler keeps running
        until its next checkpoint, where it is cancelled with the socket's other handlers.
        """
        if close:
            self._host.disconnect_all()
        else:
            self.close_from_server()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def close_from_server(self) -> None:
        """Send DISCONNECT and end the socket with reason "server namespace disconnect"."""
        if self._connected and self._reason is None:
            self._session.send_packet(Packet(PacketType.DISCONNECT, self.nsp.name))
        self.close(DisconnectReason.SERVER_NAMESPACE_DISCONNECT)

    def close(self, reason: DisconnectReason) -> None:
        """End this socket with ``reason`` (synchronous; the first reason is kept)."""
        if self._reason is None:
            self._reason = reason
        self._closing = True
        if self._scope is not None:
            self._scope.cancel()
        # From now on, a packet for this namespace finds no socket (as in Node).
        self._host.forget(self)

    # -- the socket's task ------------------------------------------------------------------------
    def on_ack(self, packet: Packet) -> None:
        """An ACK from the client (called by the connection's reader, never queued)."""
        assert packet.ack_id is not None
        callbacks = self._acks.pop(packet.ack_id, None)
        if callbacks is None:
            logger.debug(
                "socket %s: ack %d is not pending (late or unknown); ignored", self.id, packet.ack_id
            )
            return
        callbacks[0](ack_value(packet.data))

    async def run(self, inbox: trio.MemoryReceiveChannel[Packet]) -> None:
        """Connect (middleware, CONNECT ack, connection handlers), dispatch events, tear down."""
        nsp = self.nsp
        nsp.socket_started()
        try:
            # One nursery holds the middlewares, the connection handlers and the event handlers;
            # its scope is the socket's (``close`` cancels it).
            async with trio.open_nursery() as handlers:
                if self._closing:
                    handlers.cancel_scope.cancel()
                self._scope = handlers.cancel_scope
                recovery = nsp.recovery
                restored = await self._restore() if recovery is not None else None
                if restored is None or recovery is None or not recovery.skip_middlewares:
                    if not await self._run_middlewares():
                        self._restoring = None  # refused: its session is not saved again
                        return
                    if restored is not None:
                        restored = await self._catch_up(restored)
                # No checkpoint from the restore (or the catch-up) to the rooms joined here.
                self._connect(restored)
                for handler in nsp.connection_handlers:
                    try:
                        await handler(self)
                    except Exception:
                        logger.exception("connection handler %r failed on %r", handler, self)
                limit = self._options.max_events_in_flight
                async for packet in inbox:
                    while self._in_flight >= limit:
                        if self._slot_free is None:
                            self._slot_free = trio.Event()
                        await self._slot_free.wait()
                    self._in_flight += 1
                    handlers.start_soon(self._dispatch, packet)
                    del packet  # an idle socket keeps no payload alive (a megabyte, maybe)
        finally:
            with trio.CancelScope(shield=True) as teardown:
                teardown.deadline = trio.current_time() + self._options.teardown_timeout
                try:
                    await self._teardown()
                finally:
                    # Handlers are closures over this socket: without them, a closed socket holds
                    # no reference cycle and reference counting frees it at once.
                    self._handlers.clear()
                    self._teardown_handlers.clear()
                    self._any.remove()
                    self._outgoing.remove()
                    self._middlewares = PacketMiddlewares()
                    self.deliver = self._write
                    nsp.socket_ended()

    async def _run_middlewares(self) -> bool:
        """Run the namespace's middleware; False when it refused (CONNECT_ERROR sent)."""
        nsp = self.nsp
        try:
            for middleware in nsp.middlewares:
                await middleware(self)
        except ConnectionRefused as refusal:
            body: dict[str, Any] = {"message": refusal.message}
            if refusal.data is not None:
                body["data"] = refusal.data
            self._session.send_packet(Packet(PacketType.CONNECT_ERROR, nsp.name, body))
            return False
        except Exception:
            logger.exception("middleware failed on %r; connection refused", self)
            error = {"message": "server error"}
            self._session.send_packet(Packet(PacketType.CONNECT_ERROR, nsp.name, error))
            return False
        return True

    def _connect(self, restored: RestoredSession | None) -> None:
        """Join the namespace (its own room, the restored rooms, then those joined in middleware),
        answer the CONNECT, then write the missed packets: all at once, so that no broadcast can
        come between them."""
        nsp = self.nsp
        nsp.socket_connected(self)
        self._connected = True
        self._restoring = None
        early, self._early = self._early or {}, None
        kept = (r for r in (restored.rooms if restored is not None else ()) if early.get(r, True))
        nsp.adapter.add_all(self.id, (self.id, *kept, *(room for room, joined in early.items() if joined)))
        answer = {"sid": self.id} if self._pid is None else {"sid": self.id, "pid": self._pid}
        self._session.send_packet(Packet(PacketType.CONNECT, nsp.name, answer))
        for packet in restored.missed_packets if restored is not None else ():
            self._session.send_packet(packet)
        self._host.namespace_connected()

    async def _restore(self) -> RestoredSession | None:
        """Connection state recovery: take over the session the CONNECT payload's ``pid`` and
        ``offset`` name (both are left out of ``handshake.auth``)."""
        auth = self.handshake.auth
        pid, offset = auth.get("pid"), auth.get("offset")
        if "pid" in auth or "offset" in auth:
            own = {key: value for key, value in auth.items() if key not in ("pid", "offset")}
            self.handshake = dataclasses.replace(self.handshake, auth=own)
        if not isinstance(pid, str) or not isinstance(offset, str):
            return None
        return await self._take_over(pid, offset)

    async def _take_over(self, pid: str, offset: str) -> RestoredSession | None:
        """This socket becomes the session ``pid`` (its id, pid and data); else a new socket: None."""
        try:
            restored = await self.nsp.adapter.restore_session(pid, offset)
        except Exception:
            logger.exception("restoring a session failed on %r; connecting it as a new socket", self)
            restored = None
        if restored is None or restored.sid in self.nsp.sockets:
            self.id, self._pid, self._restoring = new_socket_id(), new_socket_id(), None
            self.recovered = False
            return None
        self.id, self._pid, self.data = SocketId(restored.sid), restored.pid, restored.data
        self.recovered, self._restoring, self._resume_offset = True, restored, offset
        return restored

    async def _catch_up(self, restored: RestoredSession) -> RestoredSession | None:
        """After the middleware of a restored socket: what was broadcast while it ran, by saving the
        session again and taking it over from the last packet it has (None: a new socket after all,
        as a gap would break the promise of recovery)."""
        missed = restored.missed_packets
        offset = missed[-1].data[-1] if missed else self._resume_offset
        await self._persist(restored.rooms)
        again = await self._take_over(restored.pid, offset)
        return again and dataclasses.replace(again, missed_packets=[*missed, *again.missed_packets])

    async def _dispatch(self, packet: Packet) -> None:
        try:
            event, *args = packet.data
            if event == _ERROR:
                logger.warning('socket %s: a client event named "error" is reserved; dropped', self.id)
                return
            if self._any:
                await self._any.run(event, args, self)
            if self._middlewares and not await self._middlewares.run(event, args, self._rejected):
                return
            entry = self._handlers.get(event)
            if entry is None:
                self._unhandled(event)
                return
            handler, signature = entry
            try:
                signature.bind(*args)
            except TypeError as exc:
                logger.warning("socket %s: arguments for %r do not bind (%s); dropped", self.id, event, exc)
                return
            try:
                result = await handler(*args)
            except Exception:
                logger.exception("handler for %r failed on %r", event, self)
                return
            if packet.ack_id is not None and self._connected:
                self._session.send_packet(
                    Packet(PacketType.ACK, self.nsp.name, ack_args(result), packet.ack_id)
                )
        finally:
            self._in_flight -= 1
            slot_free = self._slot_free
            if slot_free is not None:
                self._slot_free = None
                slot_free.set()

    async def _rejected(self, exc: Exception) -> None:
        """A ``use()`` middleware raised: the ``"error"`` handler gets ``exc`` (logged without one)."""
        entry = self._handlers.get(_ERROR)
        if entry is None:
            logger.error("a middleware rejected a packet on %r", self, exc_info=exc)
            return
        try:
            await entry[0](exc)
        except Exception:
            logger.exception('"error" handler failed on %r', self)

    def _unhandled(self, event: str) -> None:
        if self.nsp.server_side_handler(event) is None:
            logger.debug("socket %s: no handler for %r", self.id, event)
            return
        logger.warning(
            "socket %(sid)s: the client event %(event)r reached no handler of the socket; a server-level "
            "handler (@server.on(%(event)r)) receives server-side emits only: client events are handled "
            "on the socket (@socket.on(%(event)r) in a connection handler)",
            {"sid": self.id, "event": event},
        )

    async def _teardown(self) -> None:
        was_connected = self._connected
        self._connected = False
        self._early = None  # joins in middleware of a socket that never connected are dropped
        reason = self._reason or self._host.reason or DisconnectReason.SERVER_SHUTTING_DOWN
        self._reason = reason
        for _answer, gone in list(self._acks.values()):
            gone()
        self._acks.clear()
        recoverable = self._pid is not None and reason in RECOVERABLE_REASONS
        if not was_connected:
            restoring = self._restoring
            if restoring is not None and recoverable:  # dropped again before it connected
                await self._persist(restoring.rooms)
            return
        rooms: tuple[Room, ...] = ()
        try:
            await self._run_teardown_handlers("disconnecting", reason)
        finally:
            # Synchronous, so it runs even when the teardown deadline cancelled the handlers.
            rooms = tuple(self.rooms) if recoverable else ()
            self.nsp.adapter.remove_all(self.id)
            self.nsp.socket_disconnected(self)
        if recoverable:
            await self._persist(rooms)
        await self._run_teardown_handlers("disconnect", reason)

    async def _persist(self, rooms: tuple[Room, ...]) -> None:
        """Save this socket's session for connection state recovery (a failure is logged)."""
        assert self._pid is not None
        try:
            await self.nsp.adapter.persist_session(PersistedSession(self.id, self._pid, rooms, self.data))
        except Exception:
            logger.exception("saving the session of %r failed; it cannot be recovered", self)

    async def _run_teardown_handlers(self, event: str, reason: DisconnectReason) -> None:
        for handler in self._teardown_handlers.get(event, ()):
            try:
                await handler(str(reason))
            except Exception:
                logger.exception("%r handler failed on %r", event, self)
