"""Server: options, the namespace registry, and serving connections on trio listeners.

Rule: ``serve*`` never returns while serving and reports its listeners through ``task_status``;
cancelling it shuts down gracefully (every socket gets "server shutting down", within a deadline).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any, Final, TypeAlias, TypeVar

import trio

from ._gc import manage_frozen_objects
from ._util import host_shielded, unwrap_group
from .adapter.base import Adapter, RemoteSocket, factory_background_work, has_background_work
from .adapter.memory import InMemoryAdapter
from .broadcast import BroadcastOperator
from .connection import Connection, ConnectionOptions, handshake_of
from .engine.http import HttpRequest, HttpResponse
from .engine.native import NativeFrontDoor
from .engine.outbound import DEFAULT_MAX_QUEUED_BYTES
from .engine.policy import CorsOrigins
from .engine.server import EngineServer
from .engine.session import Session
from .errors import ConnectionRefused
from .metrics import MetricsEndpoint, MetricsPolicy
from .namespace import Namespace, NamespaceMatcher, ParentNamespace
from .recovery import ConnectionStateRecovery
from .socket import SocketOptions
from .stats import Counters

__all__ = ["Server"]

logger = logging.getLogger("trio_rooms")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Service: TypeAlias = Callable[..., Awaitable[Any]]
"""``async def service(*, task_status=trio.TASK_STATUS_IGNORED)``: background work of the server
(``Server.add_service``): it calls ``task_status.started()`` once ready, then runs until cancelled."""

DEFAULT_PING_INTERVAL: Final = 25.0
DEFAULT_PING_TIMEOUT: Final = 20.0
DEFAULT_MAX_PAYLOAD: Final = 1_000_000
DEFAULT_CONNECT_TIMEOUT: Final = 45.0
DEFAULT_PATH: Final = "/socket.io/"
DEFAULT_REQUEST_TIMEOUT: Final = 10.0
DEFAULT_IDLE_TIMEOUT: Final = 60.0
DEFAULT_UPGRADE_TIMEOUT: Final = 10.0
DEFAULT_SEND_TIMEOUT: Final = 10.0
DEFAULT_TEARDOWN_TIMEOUT: Final = 5.0
DEFAULT_CLOSE_TIMEOUT: Final = 2.0
DEFAULT_MAX_EVENTS_IN_FLIGHT: Final = 16
DEFAULT_MAX_PENDING_ACKS: Final = 1024
DEFAULT_MAX_ATTACHMENTS: Final = 10
DEFAULT_MAX_JSON_DEPTH: Final = 32
DEFAULT_MAX_NAMESPACES: Final = 32
DEFAULT_MAX_CHILD_NAMESPACES: Final = 10_000


class Server:
    """A Socket.IO v5 server for Trio, on Engine.IO v4: HTTP long-polling and WebSocket, with the
    upgrade from polling to WebSocket (as the stock clients connect by default) or WebSocket at once.
    Serve it with ``serve``, ``serve_listeners`` or ``ASGIApp(server)``. Options are keyword-only.

    Args:
        ping_interval: seconds between the heartbeat pings the server sends (default 25.0).
        ping_timeout: seconds a client has to answer a ping; past it the connection is closed with
            reason "ping timeout" (default 20.0).
        max_payload: the largest WebSocket message or polling request body accepted from a client,
            in bytes (default 1,000,000); a larger one closes the connection.
        connect_timeout: seconds a connection may stay without joining a namespace (default 45.0).
        path: the Engine.IO path (default ``"/socket.io/"``).
        adapter: builds the adapter of each namespace (``Callable[[Namespace], Adapter]``, default
            ``InMemoryAdapter``), such as ``RedisAdapter.factory(url)``.
        transports: the transports served, among ``"polling"`` and ``"websocket"`` (default both).
        cors_allowed_origins: None (the default: same origin only), ``"*"``, a list of origins, or
            ``(origin) -> bool`` (``CorsOrigins``).
        cors_credentials: allow credentials (cookies) from the allowed origins; None (the default)
            means yes, except with ``"*"``, which never allows them.
        allow_request: ``async (request: HttpRequest) -> bool`` asked before each new session; False
            refuses it with 403 (default None: every session is allowed).
        trusted_proxies: addresses or networks whose ``X-Forwarded-For`` is believed (default none).
        fallback: ``async (request: HttpRequest) -> HttpResponse | None`` for the requests outside
            ``path`` on the same port (your own pages); None (its answer, or the default) is a 404.
        max_queued_bytes: per-connection bound on the outbound bytes queued (default 4 MiB); past
            it a volatile packet is dropped and any other closes the connection ("slow consumer").
        send_timeout: seconds ``socket.emit`` waits for queue space (default 10.0).
        request_timeout: seconds one HTTP request (a WebSocket handshake too) may take to send its
            head and body (default 10.0).
        idle_timeout: seconds a keep-alive HTTP connection may wait for its next request (default 60.0).
        upgrade_timeout: seconds a polling session's upgrade to WebSocket may take (default 10.0;
            past it the session stays on polling).
        teardown_timeout: seconds a socket's ``disconnecting``/``disconnect`` handlers may run (default 5.0).
        close_timeout: seconds a closing connection has to flush its last packets (default 2.0).
        max_events_in_flight: event handlers running at once per socket, then reading pauses (default 16).
        max_pending_acks: ``emit_with_ack`` calls one socket may await at once (default 1024).
        max_attachments: binary attachments per packet (default 10).
        max_json_depth: nesting depth of a packet's JSON (default 32).
        max_namespaces: namespaces a connection may have joined or be joining at once (default
            32; past it the connection is closed); a CONNECT to a name that no namespace and no
            parent accepts is refused at once ("Invalid namespace").
        cleanup_empty_child_namespaces: remove a child namespace of a parent (``of(regex)`` or
            ``of(callable)``) with its adapter once its last socket is gone (default False, as Node).
        max_child_namespaces: child namespaces each parent may hold at once (default 10,000); past
            it a CONNECT to a new child is refused ("Too many namespaces"), counted in ``stats()``.
        freeze_gc: on by default: move what the cyclic GC tracks out of its full scans as
            connections arrive (``gc.collect(1)``, ``gc.freeze()``; a full collection each time the
            connections closed since the last one reach a quarter of the open ones), so that full
            collections do not grow with the connections; process-wide, undone when the server
            stops. ``False`` leaves the GC alone.
        metrics: serve Prometheus metrics at ``GET /metrics`` (natively and through ``ASGIApp``):
            False (the default), True, or ``(request) -> bool`` (sync or async) deciding per scrape
            (refused: 403). Needs ``trio-rooms[metrics]``; the metrics read ``stats()``.
        connection_state_recovery: ``ConnectionStateRecovery(...)`` turns recovery on (default
            None: off): a client back within ``max_disconnection_duration`` gets the same socket
            and the broadcasts it missed, with the in-memory adapter on one server or the Redis
            Streams adapter across servers.

    Raises:
        ValueError: an option out of its range (a timeout not positive, a bound not a positive int,
            an unknown transport).
        TypeError: ``metrics`` or ``connection_state_recovery`` of the wrong type.

    Attributes:
        engine: the Engine.IO server under it (``EngineServer``).
        metrics_registry: the ``prometheus_client.CollectorRegistry`` of the server when ``metrics``
            is on (register your own metrics in it), else None.
        metrics_endpoint: what answers ``GET /metrics`` (None when ``metrics`` is off).
    """

    def __init__(
        self,
        *,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        path: str = DEFAULT_PATH,
        adapter: Callable[[Namespace], Adapter] = InMemoryAdapter,
        transports: Sequence[str] = ("polling", "websocket"),
        cors_allowed_origins: CorsOrigins = None,
        cors_credentials: bool | None = None,
        allow_request: Callable[[HttpRequest], Awaitable[bool]] | None = None,
        trusted_proxies: Sequence[str] = (),
        fallback: Callable[[HttpRequest], Awaitable[HttpResponse | None]] | None = None,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        upgrade_timeout: float = DEFAULT_UPGRADE_TIMEOUT,
        teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_events_in_flight: int = DEFAULT_MAX_EVENTS_IN_FLIGHT,
        max_pending_acks: int = DEFAULT_MAX_PENDING_ACKS,
        max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        max_namespaces: int = DEFAULT_MAX_NAMESPACES,
        cleanup_empty_child_namespaces: bool = False,
        max_child_namespaces: int = DEFAULT_MAX_CHILD_NAMESPACES,
        freeze_gc: bool = True,
        metrics: MetricsPolicy = False,
        connection_state_recovery: ConnectionStateRecovery | None = None,
    ) -> None:
        if connection_state_recovery is not None and not isinstance(
            connection_state_recovery, ConnectionStateRecovery
        ):
            raise TypeError("connection_state_recovery must be a ConnectionStateRecovery or None")
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("send_timeout", send_timeout),
            ("teardown_timeout", teardown_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        for name, count in (
            ("max_events_in_flight", max_events_in_flight),
            ("max_pending_acks", max_pending_acks),
            ("max_namespaces", max_namespaces),
            ("max_child_namespaces", max_child_namespaces),
            ("max_attachments", max_attachments),
            ("max_json_depth", max_json_depth),
        ):
            if not (isinstance(count, int) and count > 0):
                raise ValueError(f"{name} must be a positive int")
        self.counters = Counters()
        self.freeze_gc = freeze_gc
        if not (isinstance(metrics, bool) or callable(metrics)):
            raise TypeError("metrics is a bool or a callable (request) -> bool")
        self.metrics_endpoint = MetricsEndpoint(self.stats, metrics) if metrics is not False else None
        self.metrics_registry = None if self.metrics_endpoint is None else self.metrics_endpoint.registry
        if self.metrics_endpoint is not None:
            fallback = self.metrics_endpoint.fallback(fallback)
        self.engine = EngineServer(
            counters=self.counters,
            on_session=self._open_connection,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            path=path,
            transports=tuple(transports),
            cors_allowed_origins=cors_allowed_origins,
            cors_credentials=cors_credentials,
            allow_request=allow_request,
            trusted_proxies=tuple(trusted_proxies),
            fallback=fallback,
            max_queued_bytes=max_queued_bytes,
            request_timeout=request_timeout,
            idle_timeout=idle_timeout,
            upgrade_timeout=upgrade_timeout,
            close_timeout=close_timeout,
        )
        options = self.engine.options
        self.ping_interval = options.ping_interval
        self.ping_timeout = options.ping_timeout
        self.max_payload = options.max_payload
        self.path = options.path
        self.max_queued_bytes = options.max_queued_bytes
        self.close_timeout = options.close_timeout
        self.connect_timeout = float(connect_timeout)
        self.send_timeout = float(send_timeout)
        self.teardown_timeout = float(teardown_timeout)
        self.max_events_in_flight = max_events_in_flight
        self.max_pending_acks = max_pending_acks
        self.max_attachments = max_attachments
        self.max_json_depth = max_json_depth
        self.max_namespaces = max_namespaces
        self.cleanup_empty_child_namespaces = bool(cleanup_empty_child_namespaces)
        self.max_child_namespaces = max_child_namespaces
        self._connection_options = ConnectionOptions(
            max_attachments=max_attachments,
            max_json_depth=max_json_depth,
            max_namespaces=max_namespaces,
            connect_timeout=self.connect_timeout,
            socket=SocketOptions(
                send_timeout=self.send_timeout,
                max_pending_acks=max_pending_acks,
                max_events_in_flight=max_events_in_flight,
                teardown_timeout=self.teardown_timeout,
            ),
        )
        self._adapter_factory = adapter
        self.connection_state_recovery = connection_state_recovery
        self._namespaces: dict[str, Namespace] = {}
        self._parents: list[ParentNamespace] = []
        self._services: trio.Nursery | None = None
        #: The cancel scopes of the adapters' ``run`` tasks (only adapters that have background work).
        self._adapter_scopes: dict[str, trio.CancelScope] = {}
        self._service_list: list[Service] = []
        self._namespace_hooks: list[Callable[[Namespace], Any]] = []
        self.of("/")

    # -- namespaces -------------------------------------------------------------------------------
    def of(self, name: str | NamespaceMatcher) -> Namespace:
        """The namespace ``name`` (built with its adapter on the first call, the same object after).

        A compiled regex or a callable ``(name, auth) -> bool | Awaitable[bool]`` returns a parent
        namespace: its middleware and handlers apply to every child it admits.
        """
        if isinstance(name, str):
            if not name.startswith("/"):
                name = "/" + name
            if "," in name:
                raise ValueError(f"a namespace name cannot contain a comma: {name!r}")
            namespace = self._namespaces.get(name)
            if namespace is None:
                namespace = self._namespaces[name] = Namespace(
                    name,
                    self._adapter_factory,
                    counters=self.counters,
                    recovery=self.connection_state_recovery,
                )
                self._start_adapter(namespace)
                self._namespace_created(namespace)
            return namespace
        if isinstance(name, re.Pattern) or callable(name):
            for parent in self._parents:
                if parent.matcher is name:
                    return parent
            on_unused = self._remove_namespace if self.cleanup_empty_child_namespaces else None
            parent = ParentNamespace(
                name,
                self._adapter_factory,
                on_unused=on_unused,
                counters=self.counters,
                recovery=self.connection_state_recovery,
            )
            self._parents.append(parent)
            return parent
        raise TypeError("a namespace is a str, a compiled regex or a callable")

    @property
    def namespaces(self) -> Mapping[str, Namespace]:
        """The namespaces of this server by name, a read-only live mapping.

        It holds those made by ``of(name)`` and the children that parents made (``of(regex)`` /
        ``of(callable)``), not the parents."""
        return MappingProxyType(self._namespaces)

    def on_new_namespace(self, callback: Callable[[Namespace], Any]) -> Callable[[Namespace], Any]:
        """Call ``callback(namespace)`` (a plain function, called inline) for each namespace made from
        now on, by ``of(name)`` or as a parent's child (Node's ``new_namespace`` event); the ones that
        exist already are in ``namespaces``. A child shares its parent's ``middlewares`` and
        ``connection_handlers`` lists (``namespace.parent`` is set). Usable as a decorator.

        Raises:
            TypeError: ``callback`` is not a plain function.
        """
        if not callable(callback) or inspect.iscoroutinefunction(callback):
            raise TypeError("a new_namespace callback is a plain function")
        self._namespace_hooks.append(callback)
        return callback

    def _namespace_created(self, namespace: Namespace) -> None:
        for callback in self._namespace_hooks:
            try:
                callback(namespace)
            except Exception:
                logger.exception("new_namespace callback %r failed on %r", callback, namespace)

    def add_service(self, service: Service) -> None:
        """Run ``async def service(*, task_status)`` in the server's own nursery while it runs (it is
        started by ``serve``, ``serve_listeners`` and ``running()``, so by ``ASGIApp``'s lifespan too):
        after the adapters, before the server takes connections; if the server is running already,
        at once. Cancelled when the server stops; an error in it stops the server (a service that
        must survive its own errors catches them). Each run of the server starts it anew.
        """
        if not callable(service):
            raise TypeError("a service is an async function")
        self._service_list.append(service)
        if self._services is not None:
            self._services.start_soon(service)

    def _start_adapter(self, namespace: Namespace) -> None:
        if self._services is not None and has_background_work(namespace.adapter):
            self._services.start_soon(self._run_adapter, namespace)

    async def _run_adapter(
        self, namespace: Namespace, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the adapter's background work until the server stops or the namespace is removed."""
        with trio.CancelScope() as scope:
            self._adapter_scopes[namespace.name] = scope
            try:
                await namespace.adapter.run(task_status=task_status)
            finally:
                if self._adapter_scopes.get(namespace.name) is scope:
                    del self._adapter_scopes[namespace.name]

    def namespace_may_exist(self, name: str) -> bool:
        """Whether a CONNECT to ``name`` may succeed: an existing namespace, a parent's regex that
        matches, or a parent's callable (which decides in the namespace's own task)."""
        if name in self._namespaces:
            return True
        for parent in self._parents:
            matcher = parent.matcher
            if not isinstance(matcher, re.Pattern) or matcher.fullmatch(name) is not None:
                return True
        return False

    async def resolve_namespace(self, name: str, auth: dict[str, Any]) -> Namespace | None:
        """The namespace a CONNECT to ``name`` joins: an existing one, a new child, or None.

        Raises:
            ConnectionRefused: the parent that admits ``name`` already has ``max_child_namespaces``
                children.
        """
        namespace = self._namespaces.get(name)
        if namespace is not None:
            await trio.lowlevel.checkpoint()
            return namespace
        for parent in self._parents:
            if await parent.matches(name, auth):
                namespace = self._namespaces.get(name)  # another connection may have made it meanwhile
                if namespace is None:
                    if len(parent.children) >= self.max_child_namespaces:
                        self.counters.refused_child_namespaces += 1
                        raise ConnectionRefused("Too many namespaces")
                    namespace = self._namespaces[name] = parent.create_child(name)
                    self._start_adapter(namespace)
                    self._namespace_created(namespace)
                return namespace
        return None

    def _remove_namespace(self, namespace: Namespace) -> None:
        """Forget the child namespace ``namespace`` and stop its adapter (it holds no socket)."""
        if self._namespaces.get(namespace.name) is not namespace or namespace.parent is None:
            return
        del self._namespaces[namespace.name]
        namespace.parent.children.pop(namespace.name, None)
        scope = self._adapter_scopes.pop(namespace.name, None)
        if scope is not None:
            scope.cancel()

    # -- forwarded to the main namespace ------------------------------------------------------------
    def on(self, event: str) -> Callable[[F], F]:
        """``server.of("/").on(event)``."""
        return self.of("/").on(event)

    def use(self, middleware: F) -> F:
        """``server.of("/").use(middleware)``."""
        return self.of("/").use(middleware)

    def to(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """``server.of("/").to(...)``."""
        return self.of("/").to(room_or_rooms)

    def in_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """``server.of("/").in_(...)``."""
        return self.of("/").in_(room_or_rooms)

    def except_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """``server.of("/").except_(...)``."""
        return self.of("/").except_(room_or_rooms)

    async def emit(self, event: str, *args: Any) -> None:
        """``server.of("/").emit(...)``."""
        await self.of("/").emit(event, *args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """``server.of("/").emit_with_ack(...)`` (needs ``.timeout(s)`` first)."""
        return await self.of("/").emit_with_ack(event, *args)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """``server.of("/").timeout(seconds)``."""
        return self.of("/").timeout(seconds)

    @property
    def volatile(self) -> BroadcastOperator:
        """``server.of("/").volatile``."""
        return self.of("/").volatile

    @property
    def local(self) -> BroadcastOperator:
        """``server.of("/").local``."""
        return self.of("/").local

    async def fetch_sockets(self) -> list[RemoteSocket]:
        """``server.of("/").fetch_sockets()``."""
        return await self.of("/").fetch_sockets()

    async def sockets_join(self, room_or_rooms: str | Iterable[str]) -> None:
        """``server.of("/").sockets_join(...)``."""
        await self.of("/").sockets_join(room_or_rooms)

    async def sockets_leave(self, room_or_rooms: str | Iterable[str]) -> None:
        """``server.of("/").sockets_leave(...)``."""
        await self.of("/").sockets_leave(room_or_rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
        """``server.of("/").disconnect_sockets(close)``."""
        await self.of("/").disconnect_sockets(close)

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """``server.of("/").server_side_emit(...)``."""
        await self.of("/").server_side_emit(event, *args)

    async def server_side_emit_with_ack(self, event: str, *args: Any, timeout: float = 5.0) -> list[Any]:
        """``server.of("/").server_side_emit_with_ack(...)``."""
        return await self.of("/").server_side_emit_with_ack(event, *args, timeout=timeout)

    @property
    def adapter(self) -> Adapter:
        """``server.of("/").adapter``."""
        return self.of("/").adapter

    # -- observability ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters for operators (the Prometheus metrics read them): connections, sockets per
        namespace, rooms, drops and errors. ``queued_bytes``: bytes waiting in outbound queues;
        ``deliveries``: Socket.IO packets written to clients (a broadcast counts each recipient) and
        ``bytes_sent`` their size as WebSocket frames; ``adapters``: each namespace's
        ``adapter.stats()``, and ``adapter_errors`` the sum of their failure counters;
        ``ack_seconds``: the ack round-trip histogram (``buckets`` of (upper bound in seconds,
        cumulative count), ``count``, ``sum``)."""
        c = self.counters
        namespaces = self._namespaces.items()
        adapters = {name: ns.adapter.stats() for name, ns in namespaces}
        return {
            "connections": len(self.engine.sessions),
            "connections_total": c.connections_total,
            "queued_bytes": sum(session.queued_bytes for session in self.engine.sessions.values()),
            "sockets": {name: len(ns.sockets) for name, ns in namespaces},
            "rooms": {name: len(ns.adapter.rooms) for name, ns in namespaces},
            "deliveries": c.deliveries,
            "bytes_sent": c.bytes_sent,
            "slow_consumers_closed": c.slow_consumers_closed,
            "volatile_dropped": c.volatile_dropped,
            "protocol_errors": c.protocol_errors,
            "refused_requests": c.refused_requests,
            "timed_out_requests": c.timed_out_requests,
            "refused_child_namespaces": c.refused_child_namespaces,
            "adapter_errors": sum(
                adapters[name].get(key, 0) for name, ns in namespaces for key in ns.adapter.error_stats
            ),
            "adapters": adapters,
            "ack_seconds": {"buckets": c.ack_histogram(), "count": c.ack_count, "sum": c.ack_seconds},
        }

    # -- serving ------------------------------------------------------------------------------------
    async def serve(
        self,
        host: str | None,
        port: int,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host``:``port`` (0 picks a free port) and serve until cancelled.

        ``await nursery.start(server.serve, host, port)`` returns the listeners.
        Cancellation: a graceful shutdown (see ``serve_listeners``).
        """
        with unwrap_group():
            listeners = await trio.open_tcp_listeners(port, host=host)
            await self.serve_listeners(listeners, task_status=task_status)

    async def serve_listeners(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve connections from any trio listeners (TCP, SSL, memory) until cancelled.

        The adapter factory's ``run`` (if it has one), then each namespace's adapter ``run``, are
        started first. Cancellation: every socket is
        disconnected with reason "server shutting down"; its handlers run within
        ``teardown_timeout``; each WebSocket then gets a close frame (1001).
        """
        with unwrap_group():
            async with self.running():
                await self.engine.nursery.start(NativeFrontDoor(self.engine).serve_listeners, list(listeners))
                task_status.started(list(listeners))
                await trio.sleep_forever()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the server's machinery, without listeners, for the duration of the block: each
        namespace's adapter ``run`` (started first), the services (``add_service``), the heartbeat
        schedule, the nursery of the polling sessions' hosts. ``serve_listeners`` serves inside it;
        so does ``ASGIApp`` between an ASGI server's lifespan startup and shutdown. Leaving the
        block (or cancelling it) shuts down as cancelling ``serve`` does.

        Raises:
            RuntimeError: the server is running already.
        """
        if self.engine.serving:
            raise RuntimeError("the server is running already (serve, serve_listeners or running())")
        async with trio.open_nursery() as outer:
            # The services (the adapters' links first) are shielded from a cancellation of the server:
            # the sockets' teardown still needs them (a session saved for recovery in Redis, the last
            # broadcasts); they are cancelled once the engine has shut down.
            shield = trio.CancelScope(shield=True)
            services: trio.Nursery = await outer.start(host_shielded, shield)
            background = factory_background_work(self._adapter_factory)
            if background is not None:  # shared by the adapters: before them
                await services.start(background)
            for namespace in list(self._namespaces.values()):
                if has_background_work(namespace.adapter):
                    await services.start(self._run_adapter, namespace)
            if self.freeze_gc:
                await services.start(manage_frozen_objects, self.counters, lambda: len(self.engine.sessions))
            for service in list(self._service_list):
                await services.start(service)
            self._services = services
            try:
                async with self.engine.running():
                    yield
            finally:
                self._services = None
                shield.cancel()

    def _open_connection(self, session: Session, request: HttpRequest) -> Connection:
        """The engine's ``on_session`` hook: the Socket.IO connection that hosts ``session``."""
        return Connection(
            session,
            handshake_of(session, request),
            directory=self,
            options=self._connection_options,
            counters=self.counters,
            schedule=self.engine.heartbeats,
        )
