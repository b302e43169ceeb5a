"""Connection: one Engine.IO session seen from Socket.IO: packet decoding, namespaces, timeouts.

Rule: this is the session's only reader of Socket.IO packets. CONNECT starts a socket task;
events are queued to that socket (reading pauses when its queue is full); ACKs are handled at
once; anything malformed closes the connection with one ``RemoteProtocolError`` log line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from .engine.heartbeat import Heartbeats
from .errors import ConnectionRefused, DisconnectReason, RemoteProtocolError
from .protocol.socketio import Decoder, Packet, PacketType
from .socket import Socket, SocketOptions
from .stats import Counters
from .types import Handshake, js_date_string

if TYPE_CHECKING:
    from .engine.http import HttpRequest
    from .engine.session import Session
    from .namespace import Namespace

__all__ = ["Connection", "ConnectionOptions", "NamespaceDirectory", "handshake_of"]

logger = logging.getLogger("trio_rooms")

#: Events queued per socket before the connection's reading pauses.
INBOX_SIZE: Final = 64
_INVALID_NAMESPACE: Final = {"message": "Invalid namespace"}


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """The server's limits that apply to each connection (see ``Server``)."""

    max_attachments: int
    max_json_depth: int
    max_namespaces: int
    connect_timeout: float
    socket: SocketOptions


class NamespaceDirectory(Protocol):
    """Where a connection finds the namespace a CONNECT names (the server)."""

    def namespace_may_exist(self, name: str) -> bool:
        """Whether a CONNECT to ``name`` may succeed (False: refused at once)."""
        ...

    async def resolve_namespace(self, name: str, auth: dict[str, Any]) -> Namespace | None:
        """The namespace ``name`` (made when a parent admits it), or None.

        Raises:
            ConnectionRefused: the CONNECT is refused with this message.
        """
        ...


@dataclasses.dataclass(slots=True)
class _Slot:
    """One namespace of this connection: its inbox, and its socket once built."""

    inbox: trio.MemorySendChannel[Packet]
    socket: Socket | None = None
    #: While the namespace is resolved (no socket yet): what ends that wait.
    resolving: trio.CancelScope | None = None
    #: Ended before it had a socket (the client left, or disconnected the namespace).
    ended: bool = False


class Connection:
    """The Socket.IO side of one Engine.IO session (Node's ``Client``).

    Args:
        session: the Engine.IO session.
        handshake: the socket handshake details of the session's first request (``auth`` is set
            per namespace from its CONNECT).
        directory: where CONNECTs find their namespace.
        options: the limits.
        counters: the server's counters.
        schedule: the server's heartbeat schedule (it keeps the connect deadline too).
    """

    def __init__(
        self,
        session: Session,
        handshake: Handshake,
        *,
        directory: NamespaceDirectory,
        options: ConnectionOptions,
        counters: Counters,
        schedule: Heartbeats,
    ) -> None:
        self.session = session
        self.handshake = handshake
        self._directory = directory
        self._options = options
        self._counters = counters
        self._schedule = schedule
        self._decoder = Decoder(max_attachments=options.max_attachments, max_depth=options.max_json_depth)
        self._slots: dict[str, _Slot] = {}
        self._nursery: trio.Nursery | None = None
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._connected_once = False
        self._joined = False
        self._early: list[tuple[str, dict[str, Any], _Slot, trio.MemoryReceiveChannel[Packet]]] = []

    @property
    def reason(self) -> DisconnectReason | None:
        """Why the connection ended (None while it is open)."""
        return self.session.reason

    @property
    def sockets(self) -> list[Socket]:
        """The sockets of this connection (one per connected namespace)."""
        return [slot.socket for slot in self._slots.values() if slot.socket is not None]

    async def run(self) -> DisconnectReason:
        """Serve the session until it ends (a polling session's task); every socket has been torn
        down when this returns. Cancellation: each socket is torn down with reason "server shutting
        down"."""
        async with self:
            await self.session.wait_closed()
        return self.session.reason or DisconnectReason.TRANSPORT_CLOSE

    async def __aenter__(self) -> Connection:
        """Start hosting the connection's sockets: a WebSocket session's reading task enters this
        around its reading, so that the connection costs no task of its own. The session's transport
        hands each message to ``on_message``, in order."""
        self._manager = trio.open_nursery()
        nursery = self._nursery = await self._manager.__aenter__()
        for early in self._early:
            nursery.start_soon(self._run_namespace, *early)
        self._early.clear()
        if not self._joined:
            # The connect deadline is kept by the server's heartbeat schedule (no timer task).
            self._schedule.schedule(self, trio.current_time() + self._options.connect_timeout, 0)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        """The session ended (or the host is cancelled): end every socket, then wait for their tasks."""
        manager = self._manager
        assert manager is not None
        if exc is None:
            reason = self.session.reason or DisconnectReason.TRANSPORT_CLOSE
            for slot in list(self._slots.values()):
                self._end_slot(slot, reason)
            self._slots.clear()
        try:
            return bool(await manager.__aexit__(exc_type, exc, tb))
        finally:
            self._nursery = self._manager = None

    def heartbeat_due(self, now: float, generation: int) -> None:
        """The connect deadline (called by the heartbeat schedule): no namespace yet, then close."""
        if not self._joined and self.session.reason is None:
            logger.info("closing connection %s: no namespace joined in time", self.session.sid)
            self.close(DisconnectReason.FORCED_CLOSE)

    def close(self, reason: DisconnectReason) -> None:
        """Close the whole connection (synchronous)."""
        self.session.close(reason)

    def disconnect_all(self) -> None:
        """Disconnect every namespace (DISCONNECT packets), then close the connection."""
        for slot in list(self._slots.values()):
            if slot.socket is not None:
                slot.socket.close_from_server()
        self.close(DisconnectReason.FORCED_SERVER_CLOSE)

    def namespace_connected(self) -> None:
        """A namespace connected: the connect timeout no longer applies."""
        self._joined = True

    def forget(self, socket: Socket) -> None:
        """``socket`` is closing: its namespace takes no more packets on this connection."""
        for name, slot in self._slots.items():
            if slot.socket is socket:
                del self._slots[name]
                slot.inbox.close()
                return

    def _end_slot(self, slot: _Slot, reason: DisconnectReason) -> None:
        slot.inbox.close()
        if slot.socket is not None:
            slot.socket.close(reason)
            return
        slot.ended = True
        if slot.resolving is not None:
            slot.resolving.cancel()

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self._counters.protocol_errors += 1
        logger.warning("closing connection %s: %s: %s", self.session.sid, type(exc).__name__, exc.message)
        self.close(DisconnectReason.PARSE_ERROR)

    async def on_message(self, message: str | bytes) -> None:
        """Handle one message of the session (its receiver: called in order by the transport)."""
        try:
            packet = self._decoder.feed(message)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        if packet is None:
            return
        kind = packet.type
        slot = self._slots.get(packet.nsp)
        if kind is PacketType.EVENT or kind is PacketType.BINARY_EVENT:
            if slot is None:
                self._protocol_error(
                    RemoteProtocolError(f"event for namespace {packet.nsp!r} before CONNECT")
                )
                return
            # A closed inbox means the socket is gone (refused or disconnecting): the event is moot.
            # Queued without a checkpoint while there is room (the transport's read checkpoints),
            # so that a burst of messages read at once costs no scheduler round each.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                try:
                    slot.inbox.send_nowait(packet)
                except trio.WouldBlock:
                    await slot.inbox.send(packet)
        elif kind is PacketType.ACK or kind is PacketType.BINARY_ACK:
            if slot is None or slot.socket is None:
                self._protocol_error(RemoteProtocolError(f"ack for namespace {packet.nsp!r} before CONNECT"))
                return
            slot.socket.on_ack(packet)
        elif kind is PacketType.CONNECT:
            self._connect(packet)
        elif kind is PacketType.DISCONNECT:
            if slot is not None:
                del self._slots[packet.nsp]
                self._end_slot(slot, DisconnectReason.CLIENT_NAMESPACE_DISCONNECT)
            elif not self._connected_once:
                # The spec: a first packet other than CONNECT closes the connection at once. Later,
                # a DISCONNECT for a namespace we no longer have may cross ours: it is ignored.
                self._protocol_error(RemoteProtocolError("DISCONNECT before any CONNECT"))
        else:
            self._protocol_error(RemoteProtocolError(f"a client cannot send {kind.name}"))

    def _connect(self, packet: Packet) -> None:
        name = packet.nsp
        if name in self._slots:
            self._protocol_error(RemoteProtocolError(f"second CONNECT to namespace {name!r}"))
            return
        self._connected_once = True
        if not self._directory.namespace_may_exist(name):
            # Refused at once: no slot, no task, nothing counted against max_namespaces.
            self.session.send_packet(Packet(PacketType.CONNECT_ERROR, name, dict(_INVALID_NAMESPACE)))
            return
        limit = self._options.max_namespaces
        if len(self._slots) >= limit:
            self._protocol_error(RemoteProtocolError(f"more than {limit} namespaces"))
            return
        auth: dict[str, Any] = packet.data if isinstance(packet.data, dict) else {}
        send, receive = trio.open_memory_channel[Packet](INBOX_SIZE)
        slot = self._slots[name] = _Slot(send)
        if self._nursery is None:
            # The session's first message can come before ``run`` started: it starts this then.
            self._early.append((name, auth, slot, receive))
        else:
            self._nursery.start_soon(self._run_namespace, name, auth, slot, receive)

    async def _run_namespace(
        self, name: str, auth: dict[str, Any], slot: _Slot, inbox: trio.MemoryReceiveChannel[Packet]
    ) -> None:
        try:
            namespace: Namespace | None = None
            error: dict[str, Any] = _INVALID_NAMESPACE
            if not slot.ended:
                with trio.CancelScope() as slot.resolving:
                    try:
                        namespace = await self._directory.resolve_namespace(name, auth)
                    except ConnectionRefused as refusal:
                        error = {"message": refusal.message}
                slot.resolving = None
            if slot.ended:
                # The client left (or disconnected the namespace) while it was resolved.
                if namespace is not None:
                    namespace.release_if_unused()
                return
            if namespace is None:
                self.session.send_packet(Packet(PacketType.CONNECT_ERROR, name, dict(error)))
                return
            # The connection's handshake serves every socket that sent no auth (its ``auth`` is {}).
            handshake = dataclasses.replace(self.handshake, auth=auth) if auth else self.handshake
            socket = slot.socket = Socket(namespace, self, handshake, self._options.socket)
            await socket.run(inbox)
        finally:
            inbox.close()
            if self._slots.get(name) is slot:
                del self._slots[name]


def handshake_of(session: Session, request: HttpRequest) -> Handshake:
    """The Socket.IO handshake of a connection: what its opening HTTP request said, now."""
    now = time.time()
    return Handshake(
        headers=request.header_dict(),
        time=js_date_string(now),
        address=session.address,
        xdomain=request.header("origin") is not None,
        secure=session.secure,
        issued=int(now * 1000),
        url=request.target,
        query=dict(request.query),
        auth={},
    )
