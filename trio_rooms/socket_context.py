"""What a Socket needs from the layers around it: the server's limits per socket
(``SocketOptions``), its namespace (``SocketNamespace``) and the connection hosting it
(``SocketHost``), as protocols that ``namespace.py`` and ``connection.py`` implement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .types import SocketId

if TYPE_CHECKING:
    from .adapter.base import Adapter
    from .broadcast import BroadcastOperator
    from .engine.session import Session
    from .errors import DisconnectReason
    from .recovery import ConnectionStateRecovery
    from .socket import ConnectionHandler, Middleware, Socket
    from .stats import Counters

__all__ = ["SocketHost", "SocketNamespace", "SocketOptions"]


@dataclasses.dataclass(frozen=True, slots=True)
class SocketOptions:
    """The server's limits that apply to each socket (see ``Server``)."""

    send_timeout: float
    max_pending_acks: int
    max_events_in_flight: int
    teardown_timeout: float


class SocketNamespace(Protocol):
    """What a socket uses of its namespace (a ``Namespace``), and what ``socket.nsp`` offers."""

    @property
    def name(self) -> str:
        """The namespace name ("/" for the main one)."""
        ...

    @property
    def adapter(self) -> Adapter:
        """The rooms of the namespace."""
        ...

    @property
    def sockets(self) -> Mapping[SocketId, Socket]:
        """The connected sockets of the namespace on this server, by id."""
        ...

    @property
    def middlewares(self) -> Sequence[Middleware]: ...

    @property
    def recovery(self) -> ConnectionStateRecovery | None:
        """The server's connection state recovery options (None: off)."""
        ...

    @property
    def connection_handlers(self) -> Sequence[ConnectionHandler]: ...

    @property
    def counters(self) -> Counters:
        """The server's counters (a socket's acks are timed there)."""
        ...

    def next_ack_id(self) -> int:
        """A fresh ack id, unique in the namespace."""
        ...

    def server_side_handler(self, event: str) -> Callable[..., Awaitable[Any]] | None:
        """The server-level handler of ``event`` (``@server.on(event)``), if any."""
        ...

    def socket_started(self) -> None:
        """A socket of the namespace started (its task runs: connecting, connected or closing)."""
        ...

    def socket_connected(self, socket: Socket) -> None:
        """``socket`` connected: it is one of the namespace's sockets."""
        ...

    def socket_disconnected(self, socket: Socket) -> None:
        """``socket`` is gone from the namespace's sockets."""
        ...

    def socket_ended(self) -> None:
        """A socket's task ended (a child namespace no socket uses may then be removed)."""
        ...

    def to(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Target the members of ``room_or_rooms``."""
        ...

    def except_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Every socket of the namespace but the members of ``room_or_rooms``."""
        ...

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to every socket of the namespace."""
        ...


class SocketHost(Protocol):
    """What a socket uses of the connection that hosts it (the connection, Node's ``Client``)."""

    @property
    def session(self) -> Session:
        """The Engine.IO session of the connection."""
        ...

    @property
    def reason(self) -> DisconnectReason | None:
        """Why the connection ended (None while it is open)."""
        ...

    def namespace_connected(self) -> None:
        """A namespace of the connection connected (the connect deadline no longer applies)."""
        ...

    def forget(self, socket: Socket) -> None:
        """``socket`` is closing: its namespace takes no more packets on this connection."""
        ...

    def disconnect_all(self) -> None:
        """Disconnect every namespace of the connection, then close it."""
        ...
