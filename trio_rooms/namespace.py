"""Namespace: its middleware, connection handlers, sockets and one adapter; parent namespaces.

Rule: a namespace and its adapter are built together (``server.of``) and live as long as the
server (a child of a parent namespace may be removed once unused); broadcasting goes through the
adapter, never around it.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import trio

from ._util import check_async_callable
from .adapter.base import Adapter, RemoteSocket
from .adapter.parent import ParentAdapter
from .broadcast import BroadcastOperator
from .stats import Counters
from .types import SocketId

if TYPE_CHECKING:
    from .recovery import ConnectionStateRecovery
    from .socket import ConnectionHandler, Middleware, Socket

__all__ = ["Namespace", "NamespaceMatcher", "ParentNamespace"]
NamespaceMatcher: TypeAlias = "re.Pattern[str] | Callable[[str, dict[str, Any]], bool | Awaitable[bool]]"
"""What ``server.of`` takes for a parent namespace: a compiled regex (a full match admits a name), or
``(name, auth) -> bool`` (plain or async) deciding per CONNECT."""
AdapterFactory: TypeAlias = Callable[["Namespace"], Adapter]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_CONNECTION_EVENTS = frozenset({"connection", "connect"})


class Namespace:
    """A Socket.IO namespace: made by ``server.of(name)`` (the same object on every call), where
    ``@namespace.on("connection")`` handlers and ``namespace.use`` middleware are registered, and
    whose methods broadcast to its sockets (``namespace.to(room).emit(...)``).

    Attributes:
        name: the namespace name, starting with "/".
        sockets: the connected sockets of this namespace on this server, by id.
        adapter: the rooms of this namespace.
        counters: the server's counters, where its adapter and sockets count deliveries and acks.
        recovery: the server's connection state recovery options (None: off).
    """

    def __init__(
        self,
        name: str,
        adapter_factory: AdapterFactory,
        *,
        on_unused: Callable[[Namespace], None] | None = None,
        counters: Counters | None = None,
        recovery: ConnectionStateRecovery | None = None,
    ) -> None:
        """Made by the server (``Server.of``).

        Args:
            name: the namespace name, starting with "/".
            adapter_factory: builds the namespace's adapter (given the namespace).
            on_unused: for a child namespace of a parent, called when no socket uses it any more
                (the server removes it then, with ``cleanup_empty_child_namespaces``).
            counters: the server's counters (``Server.stats``); a namespace made alone counts in its
                own.
            recovery: the server's connection state recovery options (None: off).
        """
        self.name = name
        self.counters = counters if counters is not None else Counters()
        self.recovery = recovery
        self._on_unused = on_unused
        self.sockets: dict[SocketId, Socket] = {}
        self.middlewares: list[Middleware] = []
        self.connection_handlers: list[ConnectionHandler] = []
        self.event_handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        self._ack_ids = itertools.count()
        #: The parent namespace of a child made by ``server.of(regex)`` / ``server.of(callable)``.
        self.parent: ParentNamespace | None = None
        #: Sockets of this namespace whose task runs (connecting, connected or tearing down).
        self._running_sockets = 0
        self.adapter: Adapter = adapter_factory(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} sockets={len(self.sockets)}>"

    # -- its sockets' lives (called by each socket's task) ------------------------------------------
    def socket_started(self) -> None:
        """A socket of this namespace started (connecting)."""
        self._running_sockets += 1

    def socket_connected(self, socket: Socket) -> None:
        """``socket`` connected: one of ``sockets`` now."""
        self.sockets[socket.id] = socket

    def socket_disconnected(self, socket: Socket) -> None:
        """``socket`` left ``sockets``."""
        self.sockets.pop(socket.id, None)

    def socket_ended(self) -> None:
        """A socket's task ended."""
        self._running_sockets -= 1
        self.release_if_unused()

    def release_if_unused(self) -> None:
        """A socket's task ended (or a CONNECT gave up): a child namespace that no socket uses any
        more is reported (``on_unused``), for the server to remove it with its adapter."""
        if self._on_unused is not None and self._running_sockets == 0 and not self.sockets:
            self._on_unused(self)

    def next_ack_id(self) -> int:
        """A fresh ack id, unique in this namespace (shared by unicast and broadcast acks)."""
        return next(self._ack_ids)

    def server_side_handler(self, event: str) -> Callable[..., Awaitable[Any]] | None:
        """The handler registered with ``on(event)`` for other servers' ``server_side_emit``."""
        return self.event_handlers.get(event)

    # -- registration -----------------------------------------------------------------------------
    def on(self, event: str) -> Callable[[F], F]:
        """Register a handler: ``"connection"`` (or its alias ``"connect"``) takes
        ``async def handler(socket)``.

        Any other (non-reserved) name receives the events of ``server_side_emit`` from the other
        servers of a cluster; its return value is the answer. It never receives a client's events
        (those are handled on the socket): a client event that no socket handler takes while such
        a handler exists logs a WARNING.
        """

        def register(handler: F) -> F:
            signature = check_async_callable(handler, f"handler for {event!r}")
            if event in _CONNECTION_EVENTS:
                try:
                    signature.bind("socket")
                except TypeError:
                    raise TypeError("a connection handler takes one argument, the socket") from None
                self.connection_handlers.append(handler)
            else:
                self.event_handlers[event] = handler
            return handler

        return register

    def use(self, middleware: F) -> F:
        """Register ``async def middleware(socket)``; raising ``ConnectionRefused`` refuses."""
        signature = check_async_callable(middleware, "middleware")
        try:
            signature.bind("socket")
        except TypeError:
            raise TypeError("middleware takes one argument, the socket") from None
        self.middlewares.append(middleware)
        return middleware

    # -- broadcasting -----------------------------------------------------------------------------
    @property
    def _all(self) -> BroadcastOperator:
        return BroadcastOperator(self.adapter)

    def to(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Target the members of ``room_or_rooms`` (union, each once)."""
        return self._all.to(room_or_rooms)

    def in_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Alias of ``to``."""
        return self._all.to(room_or_rooms)

    def except_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Every socket but the members of ``room_or_rooms``."""
        return self._all.except_(room_or_rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        """A broadcast that may be dropped for clients that cannot take it now."""
        return self._all.volatile

    @property
    def local(self) -> BroadcastOperator:
        """A broadcast to this server's sockets only."""
        return self._all.local

    def timeout(self, seconds: float) -> BroadcastOperator:
        """A broadcast whose acks are awaited for ``seconds``."""
        return self._all.timeout(seconds)

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to every socket of the namespace."""
        await self._all.emit(event, *args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Needs a timeout: use ``namespace.timeout(s).emit_with_ack(...)`` (this raises TypeError)."""
        return await self._all.emit_with_ack(event, *args)

    async def fetch_sockets(self) -> list[RemoteSocket]:
        """Every socket of the namespace."""
        return await self._all.fetch_sockets()

    async def sockets_join(self, room_or_rooms: str | Iterable[str]) -> None:
        """Make every socket join ``room_or_rooms``."""
        await self._all.sockets_join(room_or_rooms)

    async def sockets_leave(self, room_or_rooms: str | Iterable[str]) -> None:
        """Make every socket leave ``room_or_rooms``."""
        await self._all.sockets_leave(room_or_rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the namespace."""
        await self._all.disconnect_sockets(close)

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to the other servers of the cluster (received with ``@server.on(event)``)."""
        await self.adapter.server_side_emit(event, list(args))

    async def server_side_emit_with_ack(self, event: str, *args: Any, timeout: float = 5.0) -> list[Any]:
        """Like ``server_side_emit``, returning one answer per other server.

        Raises:
            AckTimeout: not every server answered in time; ``.responses`` holds the answers.
        """
        return await self.adapter.server_side_emit(event, list(args), timeout=timeout)


class ParentNamespace(Namespace):
    """A namespace family (``server.of(regex)`` / ``server.of(callable)``).

    Its middleware and connection handlers apply to each child, created on first connection;
    emitting on the parent reaches every child.

    Args:
        matcher: a compiled regex (full match) or ``(name, auth) -> bool | Awaitable[bool]``.
        child_adapter_factory: builds each child's adapter.
        on_unused: called with a child that no socket uses any more (None: children stay).
        counters: the server's counters (shared with every child).
        recovery: the server's connection state recovery options, for its children (None: off).
    """

    def __init__(
        self,
        matcher: NamespaceMatcher,
        child_adapter_factory: AdapterFactory,
        *,
        on_unused: Callable[[Namespace], None] | None = None,
        counters: Counters | None = None,
        recovery: ConnectionStateRecovery | None = None,
    ) -> None:
        self.matcher = matcher
        self.children: dict[str, Namespace] = {}
        self._child_adapter_factory = child_adapter_factory
        self._on_child_unused = on_unused
        super().__init__(
            f"<parent {matcher!r}>", lambda _: ParentAdapter(self), counters=counters, recovery=recovery
        )

    async def matches(self, name: str, auth: dict[str, Any]) -> bool:
        """Whether the namespace ``name`` belongs to this family."""
        matcher = self.matcher
        if isinstance(matcher, re.Pattern):
            await trio.lowlevel.checkpoint()
            return matcher.fullmatch(name) is not None
        result = matcher(name, auth)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    def create_child(self, name: str) -> Namespace:
        """Build the child namespace ``name``, sharing this parent's middleware and handlers."""
        child = Namespace(
            name,
            self._child_adapter_factory,
            on_unused=self._on_child_unused,
            counters=self.counters,
            recovery=self.recovery,
        )
        child.middlewares = self.middlewares
        child.connection_handlers = self.connection_handlers
        child.event_handlers = self.event_handlers
        child.parent = self
        self.children[name] = child
        return child
