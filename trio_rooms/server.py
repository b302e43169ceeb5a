"""Server: options, the namespace registry, and serving connections on trio listeners.

Rule: ``serve*`` never returns while serving and reports its listeners through ``task_status``;
cancelling it shuts down gracefully (every socket gets "server shutting down", within a deadline).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, Final, TypeVar

import h11
import trio

from ._util import unwrap_group
from .adapter.base import Adapter
from .adapter.memory import InMemoryAdapter
from .broadcast import BroadcastOperator, RemoteSocket
from .connection import Connection
from .errors import DisconnectReason
from .handshake import Handshake, js_date_string
from .namespace import Namespace, NamespaceMatcher, ParentNamespace
from .stats import Counters
from .transport.http import (
    MAX_REQUEST_HEAD_BYTES,
    EngineErrorCode,
    HttpRequest,
    accept_websocket,
    linger,
    read_request,
    send_engine_error,
    send_response,
)
from .transport.outbound import DEFAULT_MAX_QUEUED_BYTES, Outbound
from .transport.session import EngineSession
from .transport.websocket import WebSocketReader

__all__ = ["Server"]

logger = logging.getLogger("trio_rooms")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

DEFAULT_PING_INTERVAL: Final = 25.0
DEFAULT_PING_TIMEOUT: Final = 20.0
DEFAULT_MAX_PAYLOAD: Final = 1_000_000
DEFAULT_CONNECT_TIMEOUT: Final = 45.0
DEFAULT_PATH: Final = "/socket.io/"
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
DEFAULT_SEND_TIMEOUT: Final = 10.0
DEFAULT_TEARDOWN_TIMEOUT: Final = 5.0
DEFAULT_CLOSE_TIMEOUT: Final = 2.0
DEFAULT_MAX_EVENTS_IN_FLIGHT: Final = 16
DEFAULT_MAX_PENDING_ACKS: Final = 1024
DEFAULT_MAX_ATTACHMENTS: Final = 10
DEFAULT_MAX_JSON_DEPTH: Final = 32
DEFAULT_MAX_NAMESPACES: Final = 32


class Server:
    """A Socket.IO v5 server (Engine.IO v4 over WebSocket) for Trio.

    Args:
        ping_interval: seconds between heartbeat pings.
        ping_timeout: seconds to wait for a pong before the connection is dead.
        max_payload: largest message accepted from a client, in bytes (larger: closed).
        connect_timeout: seconds a connection may stay without joining a namespace.
        path: the Engine.IO path.
        adapter: builds the adapter of each namespace (``Callable[[Namespace], Adapter]``).
        max_queued_bytes: per-connection bound on queued outbound bytes; past it a volatile
            packet is dropped and any other closes the connection ("slow consumer").
        send_timeout: how long ``socket.emit`` waits for queue space.
        handshake_timeout: deadline for a client to send its HTTP request.
        teardown_timeout: deadline for one socket's disconnecting/disconnect handlers.
        close_timeout: deadline to flush a closing connection's last bytes.
        max_events_in_flight: event handlers running at once per socket (then reading pauses).
        max_pending_acks: acks a socket may wait for at once.
        max_attachments: binary attachments per packet.
        max_json_depth: nesting depth of a packet's JSON.
        max_namespaces: namespaces per connection.
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
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_events_in_flight: int = DEFAULT_MAX_EVENTS_IN_FLIGHT,
        max_pending_acks: int = DEFAULT_MAX_PENDING_ACKS,
        max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        max_namespaces: int = DEFAULT_MAX_NAMESPACES,
    ) -> None:
        for name, value in (
            ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout),
            ("connect_timeout", connect_timeout),
            ("send_timeout", send_timeout),
            ("handshake_timeout", handshake_timeout),
            ("teardown_timeout", teardown_timeout),
            ("close_timeout", close_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        for name, count in (
            ("max_payload", max_payload),
            ("max_queued_bytes", max_queued_bytes),
            ("max_events_in_flight", max_events_in_flight),
            ("max_pending_acks", max_pending_acks),
            ("max_namespaces", max_namespaces),
        ):
            if not (isinstance(count, int) and count > 0):
                raise ValueError(f"{name} must be a positive int")
        self.ping_interval = float(ping_interval)
        self.ping_timeout = float(ping_timeout)
        self.max_payload = max_payload
        self.connect_timeout = float(connect_timeout)
        self.path = "/" + path.strip("/") + "/"
        self.max_queued_bytes = max_queued_bytes
        self.send_timeout = float(send_timeout)
        self.handshake_timeout = float(handshake_timeout)
        self.teardown_timeout = float(teardown_timeout)
        self.close_timeout = float(close_timeout)
        self.max_events_in_flight = max_events_in_flight
        self.max_pending_acks = max_pending_acks
        self.max_attachments = max_attachments
        self.max_json_depth = max_json_depth
        self.max_namespaces = max_namespaces
        self.counters = Counters()
        self._adapter_factory = adapter
        self._namespaces: dict[str, Namespace] = {}
        self._parents: list[ParentNamespace] = []
        self._connections: set[Connection] = set()
        self._services: trio.Nursery | None = None
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
            namespace = self._namespaces.get(name)
            if namespace is None:
                namespace = self._namespaces[name] = Namespace(self, name, self._adapter_factory)
                self._start_adapter(namespace)
            return namespace
        if isinstance(name, re.Pattern) or callable(name):
            for parent in self._parents:
                if parent.matcher is name:
                    return parent
            parent = ParentNamespace(self, name, self._adapter_factory)
            self._parents.append(parent)
            return parent
        raise TypeError("a namespace is a str, a compiled regex or a callable")

    def _start_adapter(self, namespace: Namespace) -> None:
        if self._services is not None:
            self._services.start_soon(namespace.adapter.run)

    async def resolve_namespace(self, name: str, auth: dict[str, Any]) -> Namespace | None:
        """The namespace a CONNECT to ``name`` joins: an existing one, a new child, or None."""
        namespace = self._namespaces.get(name)
        if namespace is not None:
            await trio.lowlevel.checkpoint()
            return namespace
        for parent in self._parents:
            if await parent.matches(name, auth):
                namespace = self._namespaces.get(name)  # another connection may have made it meanwhile
                if namespace is None:
                    namespace = self._namespaces[name] = parent.create_child(name)
                    self._start_adapter(namespace)
                return namespace
        return None

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
        """Counters for operators: connections, sockets per namespace, rooms, drops and errors.

        ``queued_bytes`` is the sum over connections of the bytes waiting in their channel lane.
        """
        c = self.counters
        return {
            "connections": len(self._connections),
            "connections_total": c.connections_total,
            "queued_bytes": sum(conn.session.outbound.queued_bytes for conn in self._connections),
            "sockets": {name: len(ns.sockets) for name, ns in self._namespaces.items()},
            "rooms": {name: len(ns.adapter.rooms) for name, ns in self._namespaces.items()},
            "slow_consumers_closed": c.slow_consumers_closed,
            "volatile_dropped": c.volatile_dropped,
            "protocol_errors": c.protocol_errors,
            "refused_requests": c.refused_requests,
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

        Each namespace's adapter ``run`` is started first. Cancellation: every socket is
        disconnected with reason "server shutting down"; its handlers run within
        ``teardown_timeout``; each connection then gets a WebSocket close (1001).
        """
        with unwrap_group():
            async with trio.open_nursery() as services:
                for namespace in self._namespaces.values():
                    await services.start(namespace.adapter.run)
                self._services = services
                try:
                    async with trio.open_nursery() as connections:
                        await connections.start(
                            partial(
                                trio.serve_listeners,
                                self._handle_stream,
                                list(listeners),
                                handler_nursery=connections,
                            )
                        )
                        task_status.started(list(listeners))
                finally:
                    self._services = None
                    services.cancel_scope.cancel()

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        try:
            await self._handle_stream_inner(stream)
        except Exception:
            logger.exception("connection handler failed")
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.close_timeout):
                await stream.aclose()

    async def _handle_stream_inner(self, stream: trio.abc.Stream) -> None:
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
        request: HttpRequest | None = None
        try:
            with trio.move_on_after(self.handshake_timeout):
                request = await read_request(stream, http)
        except h11.RemoteProtocolError as exc:
            self.counters.refused_requests += 1
            status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
            with trio.move_on_after(self.close_timeout):
                await send_response(stream, h11.Connection(h11.SERVER), status, b"Bad Request")
                await linger(stream)
            return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if request is None:
            return
        trailing = await self._route(stream, http, request)
        if trailing is None:
            with trio.move_on_after(self.close_timeout):
                await linger(stream)
            return
        await self._run_websocket(stream, request, trailing)

    async def _route(
        self, stream: trio.abc.Stream, http: h11.Connection, request: HttpRequest
    ) -> bytes | None:
        """Answer anything that is not a valid Engine.IO WebSocket request; else accept it."""
        with trio.move_on_after(self.close_timeout):
            if request.path != self.path and request.path.rstrip("/") + "/" != self.path:
                self.counters.refused_requests += 1
                await send_response(stream, http, 404, b"Not Found")
                return None
            code: int | None = None
            if request.query.get("EIO") != "4":
                code = EngineErrorCode.UNSUPPORTED_PROTOCOL_VERSION
            elif request.query.get("transport") != "websocket":
                # Long-polling is not served yet (see README): only "websocket" is known here.
                code = EngineErrorCode.UNKNOWN_TRANSPORT
            elif "sid" in request.query:
                code = EngineErrorCode.UNKNOWN_SID
            elif not request.wants_websocket():
                code = EngineErrorCode.BAD_REQUEST
            if code is not None:
                self.counters.refused_requests += 1
                await send_engine_error(stream, http, code)
                return None
            return await accept_websocket(stream, http, request)
        return None

    def _handshake(self, stream: trio.abc.Stream, request: HttpRequest) -> Handshake:
        address = ""
        secure = isinstance(stream, trio.SSLStream)
        inner: Any = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        if isinstance(inner, trio.SocketStream):
            try:
                peer = inner.socket.getpeername()
                address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
            except OSError:
                pass
        now = time.time()
        return Handshake(
            headers=request.header_dict(),
            time=js_date_string(now),
            address=address,
            xdomain=request.header("origin") is not None,
            secure=secure,
            issued=int(now * 1000),
            url=request.target,
            query=dict(request.query),
            auth={},
        )

    async def _run_websocket(self, stream: trio.abc.Stream, request: HttpRequest, trailing: bytes) -> None:
        session: EngineSession | None = None

        def overflow() -> None:
            if session is not None:
                session.close(DisconnectReason.SLOW_CONSUMER)

        outbound = Outbound(
            stream, max_queued_bytes=self.max_queued_bytes, on_overflow=overflow, stats=self.counters
        )
        reader = WebSocketReader(stream, outbound, trailing, max_message=self.max_payload)
        session = EngineSession(
            reader,
            outbound,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_payload=self.max_payload,
            counters=self.counters,
        )
        connection = Connection(self, session, self._handshake(stream, request))
        self._connections.add(connection)
        self.counters.connections_total += 1
        writer_scope = trio.CancelScope(shield=True)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, outbound, writer_scope)
                try:
                    await connection.run()
                finally:
                    if session.reason is None:  # cancelled from outside: the server is going away
                        session.reason = DisconnectReason.SERVER_SHUTTING_DOWN
                        reader.set_close_code(1001)
                    outbound.close(reader.closing_frame())
                    writer_scope.deadline = trio.current_time() + self.close_timeout
        finally:
            self._connections.discard(connection)

    @staticmethod
    async def _write(outbound: Outbound, scope: trio.CancelScope) -> None:
        with scope:
            await outbound.run_writer()
