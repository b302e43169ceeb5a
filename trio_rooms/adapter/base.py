"""The room adapter contract: membership (synchronous) and operations on sets of sockets (async), and
``RemoteSocket``, what ``fetch_sockets`` finds.

Rule: membership changes are plain ``def``s, so that cleanup in ``finally`` runs even inside a
cancelled scope; operations that may cross servers are ``async``. An adapter sees its namespace and
that namespace's sockets through the narrow protocols below, never the Socket.IO classes.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Set
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeAlias

import trio

from .._util import rooms_arg
from ..protocol.encoded import Encoded
from ..protocol.socketio import event_packet
from ..recovery import ConnectionStateRecovery, PersistedSession, RestoredSession
from ..stats import Counters
from ..types import BroadcastFlags, BroadcastOptions, Handshake, Room, SocketId

if TYPE_CHECKING:
    from ..protocol.socketio import Packet

__all__ = [
    "Adapter",
    "BroadcastFlags",
    "BroadcastOptions",
    "NamespaceView",
    "RemoteSocket",
    "Room",
    "RoomEvent",
    "SocketId",
    "SocketView",
    "factory_background_work",
    "has_background_work",
]

logger = logging.getLogger("trio_rooms")

RoomEvent: TypeAlias = str  # "create-room", "delete-room", "join-room", "leave-room"

ROOM_EVENTS = frozenset({"create-room", "delete-room", "join-room", "leave-room"})


class SocketView(Protocol):
    """What an adapter uses of one of its namespace's sockets on this server."""

    @property
    def id(self) -> SocketId: ...

    @property
    def handshake(self) -> Handshake: ...

    @property
    def data(self) -> dict[str, Any]: ...

    @property
    def rooms(self) -> Set[Room]: ...

    def deliver(self, item: Encoded, volatile: bool, /) -> bool:
        """Write a pre-encoded packet now (never awaits); False when dropped."""
        ...

    def join(self, room_or_rooms: str | Iterable[str]) -> None: ...

    def leave(self, room: str) -> None: ...

    def add_ack_callback(
        self, ack_id: int, answer: Callable[[Any], None], gone: Callable[[], None]
    ) -> None: ...

    def remove_ack_callback(self, ack_id: int) -> bool: ...

    async def disconnect(self, close: bool = False) -> None: ...


class NamespaceView(Protocol):
    """What an adapter uses of its namespace."""

    @property
    def name(self) -> str: ...

    @property
    def sockets(self) -> Mapping[SocketId, SocketView]:
        """The connected sockets of the namespace on this server, by id."""
        ...

    @property
    def counters(self) -> Counters:
        """The server's counters: an adapter adds the deliveries it makes (``Counters.delivered``,
        once per broadcast)."""
        ...

    def next_ack_id(self) -> int:
        """A fresh ack id, unique in the namespace."""
        ...

    def server_side_handler(self, event: str) -> Callable[..., Awaitable[Any]] | None:
        """The handler of ``server_side_emit(event, ...)`` from another server, if any."""
        ...

    @property
    def recovery(self) -> ConnectionStateRecovery | None:
        """The server's connection state recovery options (None when recovery is off)."""
        ...


class Adapter(ABC):
    """The rooms of one namespace, and the operations on the sockets they select.

    Args:
        namespace: the namespace this adapter serves.

    Attributes:
        error_stats: the keys of ``stats()`` that count failures (the server sums them into its
            ``adapter_errors``); none for an adapter that cannot fail.
    """

    error_stats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, namespace: NamespaceView) -> None:
        self.nsp = namespace
        self._listeners: dict[RoomEvent, list[Callable[..., None]]] = {}

    # -- room events -------------------------------------------------------------------------
    def on(self, event: RoomEvent, callback: Callable[..., None]) -> None:
        """Call ``callback`` (a plain function, called inline) on a room event.

        Events: ``create-room(room)``, ``join-room(room, id)``, ``leave-room(room, id)``,
        ``delete-room(room)``.
        """
        if event not in ROOM_EVENTS:
            raise ValueError(f"unknown adapter event {event!r}; expected one of {sorted(ROOM_EVENTS)}")
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._listeners.setdefault(event, []).append(callback)

    def emit_room_event(self, event: RoomEvent, *args: Any) -> None:
        """Call the listeners of ``event``; an exception in one is logged, never propagated."""
        for callback in self._listeners.get(event, ()):
            try:
                callback(*args)
            except Exception:
                logger.exception("adapter %r listener %r failed", event, callback)

    # -- membership (synchronous) ---------------------------------------------------------------
    @property
    @abstractmethod
    def rooms(self) -> Mapping[Room, Set[SocketId]]:
        """Read-only mapping of room -> socket ids on this server."""

    @property
    @abstractmethod
    def sids(self) -> Mapping[SocketId, Set[Room]]:
        """Read-only mapping of socket id -> rooms on this server."""

    @abstractmethod
    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        """Add socket ``sid`` to ``rooms``."""

    @abstractmethod
    def remove(self, sid: SocketId, room: Room) -> None:
        """Remove socket ``sid`` from ``room``."""

    @abstractmethod
    def remove_all(self, sid: SocketId) -> None:
        """Remove socket ``sid`` from every room (its own room included)."""

    @abstractmethod
    def local_targets(self, opts: BroadcastOptions) -> Collection[SocketId]:
        """The ids of the local sockets that ``opts`` selects, each once."""

    # -- operations (async: a cluster adapter publishes them) -------------------------------------
    @abstractmethod
    async def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Send ``packet`` to every selected socket, each once."""

    @abstractmethod
    async def broadcast_with_ack(self, packet: Packet, opts: BroadcastOptions) -> list[Any]:
        """Send ``packet`` asking for acks; return the answers (``opts.flags.timeout`` is set).

        Raises:
            AckTimeout: the timeout passed first; its ``responses`` are the answers received.
        """

    @abstractmethod
    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets join ``rooms``."""

    @abstractmethod
    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets leave ``rooms``."""

    @abstractmethod
    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        """Disconnect the selected sockets (``close`` closes their whole connection)."""

    @abstractmethod
    async def fetch_sockets(self, opts: BroadcastOptions) -> list[RemoteSocket]:
        """Return the selected sockets."""

    @abstractmethod
    async def server_side_emit(
        self, event: str, args: list[Any], *, timeout: float | None = None
    ) -> list[Any]:
        """Send an event to the other servers; with ``timeout``, wait for one answer per server."""

    @abstractmethod
    async def server_count(self) -> int:
        """How many servers share this namespace (1 for the in-memory adapter)."""

    # -- connection state recovery (an adapter that cannot recover keeps these defaults) ------------
    async def persist_session(self, session: PersistedSession) -> None:
        """Keep ``session`` (a socket dropped for a recoverable reason) for the namespace's
        ``recovery.max_disconnection_duration``. The default keeps nothing.

        An adapter that recovers also numbers what it broadcasts while ``nsp.recovery`` is set: each
        EVENT packet without ack id and not volatile gets its offset (a str) appended as its last
        argument, and is kept as long as a session may need it.
        """
        await trio.lowlevel.checkpoint()

    async def restore_session(self, pid: str, offset: str) -> RestoredSession | None:
        """The session ``pid``, with the packets it missed since ``offset`` (for its rooms), or None:
        unknown, expired, or ``offset`` no longer kept. The session is removed (a pid restores once).
        The default recovers nothing.
        """
        await trio.lowlevel.checkpoint()
        return None

    def stats(self) -> dict[str, int]:
        """Counters of the adapter's backend (messages sent, received, ignored...); none here."""
        return {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The adapter's background work (connections, subscriptions); the server starts it.

        The default has none: it reports started and sleeps until cancelled.
        """
        task_status.started()
        await trio.sleep_forever()


def has_background_work(adapter: Adapter) -> bool:
    """Whether ``adapter`` overrides ``run`` (the server then runs it in a task of its own; an
    adapter without background work, such as the in-memory one, costs no task)."""
    return type(adapter).run is not Adapter.run


def factory_background_work(factory: Callable[..., Adapter]) -> Callable[..., Awaitable[None]] | None:
    """The background work of an adapter factory (``Server``'s ``adapter=``), if it has any.

    The factory contract: a callable ``(namespace) -> Adapter``, called once per namespace. A factory
    whose adapters share something (the Redis adapter's one publishing and one subscribing
    connection per server) may also have ``async run(*, task_status)``: the server starts it once, in
    its own nursery, waits until it reports started, then starts the ``run`` of each namespace's
    adapter; it is cancelled when the server stops serving. A class (such as ``InMemoryAdapter``)
    is a factory without background work.
    """
    if isinstance(factory, type):
        return None
    run = getattr(factory, "run", None)
    return run if callable(run) else None


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteSocket:
    """A socket found by ``fetch_sockets``, on this server or another: a snapshot plus actions.

    Attributes:
        id: the socket id.
        handshake: its handshake.
        rooms: its rooms when fetched.
        data: its ``data`` dict when fetched (a copy for a remote socket).
    """

    id: SocketId
    handshake: Handshake
    rooms: Set[Room]
    data: dict[str, Any]
    _adapter: Adapter = dataclasses.field(repr=False, compare=False)

    @classmethod
    def of_local(cls, socket: SocketView, adapter: Adapter) -> RemoteSocket:
        """The RemoteSocket of a socket of this server."""
        return cls(socket.id, socket.handshake, frozenset(socket.rooms), socket.data, adapter)

    def _self(self) -> BroadcastOptions:
        return BroadcastOptions(frozenset((self.id,)))

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to this socket, wherever it is connected."""
        await self._adapter.broadcast(event_packet(self._adapter.nsp.name, event, args), self._self())

    async def join(self, room_or_rooms: str | Iterable[str]) -> None:
        """Make this socket join ``room_or_rooms``."""
        await self._adapter.add_sockets(self._self(), rooms_arg(room_or_rooms))

    async def leave(self, room: str) -> None:
        """Make this socket leave ``room``."""
        await self._adapter.del_sockets(self._self(), rooms_arg(room))

    async def disconnect(self, close: bool = False) -> None:
        """Disconnect this socket."""
        await self._adapter.disconnect_sockets(self._self(), close)
