"""EngineServer: the Engine.IO v4 server (long-polling, WebSocket, the upgrade between them), usable
on its own as python-engineio is; the Socket.IO ``Server`` is built on it.

Rule: the server owns the sessions (their registry, their hosts, the heartbeat schedule) and decides
what each request asks for (``routing``); front doors (the native h11 one here, an ASGI one) only read
requests and write answers. Each Engine.IO session is hosted by one task for its whole life (the
application's handler, the Socket.IO connection, or a WebSocket's reading task); one server-wide task
pings every session.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar, overload

import trio

from .._util import check_async_callable, unwrap_group
from ..errors import DisconnectReason
from ..stats import Counters
from ..types import Transport
from .frontdoor import SessionHost, SessionOpener
from .handle import EngineSession
from .heartbeat import Heartbeats
from .hooks import HOOK_EVENTS, EngineHooks
from .http import HttpRequest
from .native import NativeFrontDoor
from .observe import SESSION_EVENTS, SessionObservers, TrafficMeter
from .options import EngineOptions
from .policy import client_address
from .polling import HeldGets
from .routing import Route, route
from .session import Session

__all__ = ["EngineServer"]

logger = logging.getLogger("trio_rooms")

SessionHandler = Callable[[EngineSession], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Any])


class EngineServer:
    """An Engine.IO v4 server.

    ``@engine.on("connection")`` registers ``async def handler(session)`` (an ``EngineSession``):
    ``async for message in session`` yields each message (str or bytes) until the session ends,
    ``await session.send(message)`` sends one, ``await session.close()`` ends it; the session closes
    when the handler returns. Serve with ``await nursery.start(engine.serve, host, port)``.

    Hooks (plain functions, as Node's events): ``engine.on("initial_headers", fn)`` with ``fn(headers,
    request)`` changes the extra headers of the answer to a request without a sid (the polling
    handshake, a direct WebSocket); ``engine.on("headers", fn)`` those of every polling GET/POST
    answer and every WebSocket upgrade answer (after ``initial_headers``, on the same dict; a list
    value is a repeated header, as two ``set-cookie``); ``engine.on("connection_error", fn)`` with
    ``fn(err)`` (a ``ConnectionErrorEvent``: ``code``, ``message``, ``request``) for every refused
    request.

    Session events (plain functions, for tools that watch the server, as the Admin UI's
    instrumentation): ``engine.on("session_open", fn)`` with ``fn(session)`` once a session is
    opened and registered (Node's ``connection``), ``engine.on("upgrade", fn)`` with ``fn(session)``
    once it moved from long-polling to WebSocket, ``engine.on("session_close", fn)`` with
    ``fn(session, reason)`` when it ends. A ``Session`` has ``sid``, ``transport`` ("polling" or
    "websocket"), ``address`` and ``secure``. ``engine.meter_traffic()`` counts the messages in and
    out of every session opened from then on (see ``TrafficMeter``).

    Args:
        counters: the counters to update (the Socket.IO server shares its own).
        on_session: hosts every session instead of a ``connection`` handler (the Socket.IO server's
            hook; see ``SessionOpener``).
        options: the ``EngineOptions`` (the path defaults to "/engine.io/").
    """

    def __init__(
        self, *, counters: Counters | None = None, on_session: SessionOpener | None = None, **options: Any
    ) -> None:
        self.options = EngineOptions(**options)
        self.counters = counters if counters is not None else Counters()
        self._on_session = on_session
        self._handler: SessionHandler | None = None
        #: The application's hooks (``on("initial_headers" | "headers" | "connection_error", fn)``).
        self.hooks = EngineHooks()
        #: The session observers (``on("session_open" | "upgrade" | "session_close", fn)``).
        self.observers = SessionObservers()
        self._meter: TrafficMeter | None = None
        self._sessions: dict[str, Session] = {}
        self._heartbeats = Heartbeats(self.options.heartbeat_resolution)
        self._held_gets = HeldGets()
        self._nursery: trio.Nursery | None = None

    @property
    def heartbeats(self) -> Heartbeats:
        """The server's heartbeat schedule (it also keeps the Socket.IO connect deadlines)."""
        return self._heartbeats

    @property
    def sessions(self) -> Mapping[str, Session]:
        """The open sessions by id."""
        return self._sessions

    @property
    def nursery(self) -> trio.Nursery:
        """Where the server's background work runs (the sessions' hosts, the writers of queued bytes).

        Raises:
            RuntimeError: the server is not serving.
        """
        if self._nursery is None:
            raise RuntimeError("the Engine.IO server is not serving")
        return self._nursery

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...

    @overload
    def on(self, event: str, handler: F) -> F: ...

    def on(self, event: str, handler: F | None = None) -> Callable[[F], F] | F:
        """Register the ``"connection"`` handler (``async def handler(session)``) or a hook
        (``"initial_headers"``, ``"headers"``, ``"connection_error"``: plain functions, see the class);
        as a decorator, or called with the handler.

        Raises:
            ValueError: an unknown event.
            TypeError: a handler of the wrong kind.
        """
        if event != "connection" and event not in HOOK_EVENTS and event not in SESSION_EVENTS:
            raise ValueError(
                f'EngineServer has no event {event!r} ("connection", "initial_headers", "headers", '
                '"connection_error", "session_open", "upgrade", "session_close")'
            )

        def register(handler: F) -> F:
            if event == "connection":
                check_async_callable(handler, "connection handler")
                self._handler = handler
            elif event in SESSION_EVENTS:
                self.observers.add(event, handler)
            else:
                self.hooks.add(event, handler)
            return handler

        return register if handler is None else register(handler)

    def meter_traffic(self) -> TrafficMeter:
        """The server's traffic meter, made on the first call: every session opened from then on
        counts its messages in and out on it. Until then (and without it) nothing is counted and a
        session's writes go straight to its transport."""
        if self._meter is None:
            self._meter = TrafficMeter()
        return self._meter

    # -- serving ----------------------------------------------------------------------------------
    async def serve(
        self,
        host: str | None,
        port: int,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host``:``port`` (0 picks a free port) and serve until cancelled."""
        with unwrap_group():
            listeners = await trio.open_tcp_listeners(port, host=host)
            await self.serve_listeners(listeners, task_status=task_status)

    async def serve_listeners(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve any trio listeners (the native HTTP front door) until cancelled; then every session
        is closed in turn."""
        front_door = NativeFrontDoor(self)
        with unwrap_group():
            async with self.running() as nursery:
                await nursery.start(front_door.serve_listeners, list(listeners))
                task_status.started(list(listeners))
                await trio.sleep_forever()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[trio.Nursery]:
        """The server's machinery (the heartbeat schedule, the nursery of the sessions' hosts) for the
        duration of the block; a front door serves inside it (the native one in ``serve_listeners``,
        the ASGI one between an ASGI server's lifespan startup and shutdown).

        Leaving the block shuts down as cancelling ``serve`` does: every session still open is closed
        with "server shutting down" and its host torn down (within the deadlines of each step).

        Raises:
            RuntimeError: the server is running already.
        """
        if self._nursery is not None:
            raise RuntimeError("the Engine.IO server is running already")
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._heartbeats.run)
                await nursery.start(self._held_gets.run)
                self._nursery = nursery
                try:
                    yield nursery
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self._nursery = None

    @property
    def serving(self) -> bool:
        """True while the server's machinery runs (inside ``running()``)."""
        return self._nursery is not None

    # -- what front doors use ---------------------------------------------------------------------
    def route(self, request: HttpRequest, *, websocket: bool) -> Route:
        """What ``request`` asks for (see ``routing.route``)."""
        return route(request, self.options, self._sessions, websocket=websocket)

    def client_address(self, peer: str, request: HttpRequest) -> str:
        """The client's address: ``peer``, or the forwarded one behind a trusted proxy."""
        return client_address(peer, request, self.options.proxy_networks)

    async def allowed(self, request: HttpRequest) -> bool:
        """Whether ``allow_request`` admits a new session for ``request`` (an error refuses)."""
        check = self.options.allow_request
        if check is None:
            await trio.lowlevel.checkpoint()
            return True
        try:
            return bool(await check(request))
        except Exception:
            logger.exception("allow_request failed; request refused")
            return False

    def open_session(
        self, transport: Transport, request: HttpRequest, address: str, secure: bool
    ) -> tuple[Session, SessionHost | None]:
        """Make and register a new session. A polling session is hosted at once by a task of the
        server; a WebSocket session's host (if any) is returned for its reading task to enter
        (``run_session``), and without one a handler task is started, if there is a handler."""
        opts = self.options
        session = Session(
            transport=transport,
            ping_interval=opts.ping_interval,
            ping_timeout=opts.ping_timeout,
            max_payload=opts.max_payload,
            max_queued_bytes=opts.max_queued_bytes,
            upgrades=(Transport.WEBSOCKET,) if Transport.WEBSOCKET in opts.transports else (),
            counters=self.counters,
            address=address,
            secure=secure,
            held_gets=self._held_gets,
        )
        self._sessions[session.sid] = session
        self.counters.connections_total += 1
        if self._meter is not None:
            session.meter = self._meter
        if self.observers:
            self.observers.opened(session)
        nursery = self.nursery
        if self._on_session is not None:
            host = self._on_session(session, request)
            session.set_receiver(host.on_message)
            if transport is Transport.WEBSOCKET:
                return session, host  # the WebSocket's reading task hosts it
            nursery.start_soon(self._host_until_closed, session, host)
            return session, None
        if self._handler is not None:
            handle = EngineSession(session)
            session.set_receiver(handle.receive_message)
            nursery.start_soon(self.run_session, session, self._handler(handle))
        else:
            nursery.start_soon(self.run_session, session, session.wait_closed())
        return session, None

    async def run_session(self, session: Session, serving: Awaitable[object]) -> None:
        """Host ``session`` until ``serving`` returns (see ``hosting``)."""
        async with self.hosting(session):
            await serving

    def hosting(self, session: Session) -> AbstractAsyncContextManager[None]:
        """Host ``session`` for the duration of the block: its heartbeat runs; when the block ends,
        the session is closed (an error of the block is logged, a cancellation of the server closes it
        with "server shutting down"), a polling session the server closed stays findable until a GET
        took its last packets, and the session is forgotten. A class, not a generator: a session
        hosted by a task keeps no extra frame alive while it waits."""
        return _Hosting(self, session)

    async def _host_until_closed(self, session: Session, host: SessionHost) -> None:
        async with self.hosting(session), host:
            await session.wait_closed()

    def forget(self, session: Session) -> None:
        """Take ``session`` out of the registry (the end of its hosting)."""
        self._sessions.pop(session.sid, None)


class _Hosting:
    """``EngineServer.hosting(session)``."""

    __slots__ = ("_engine", "_session")

    def __init__(self, engine: EngineServer, session: Session) -> None:
        self._engine = engine
        self._session = session

    async def __aenter__(self) -> None:
        self._session.start_heartbeat(self._engine.heartbeats)
        await trio.lowlevel.checkpoint_if_cancelled()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        session = self._session
        swallow = False
        if isinstance(exc, Exception):
            logger.exception("Engine.IO connection handler failed", exc_info=exc)
            swallow = True
        elif exc is not None and _cancellation(exc):
            session.close(DisconnectReason.SERVER_SHUTTING_DOWN)  # the server is being cancelled
        session.close(DisconnectReason.FORCED_CLOSE)  # no-op when it ended already
        try:
            if session.transport is Transport.POLLING and session.collectable:
                # Keep the session findable so that the next GET collects the last packets.
                with trio.CancelScope(shield=True), trio.move_on_after(self._engine.options.close_timeout):
                    await session.wait_final_delivered()
        finally:
            self._engine.forget(session)
        return swallow


def _cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is trio's cancellation (bare, or in the group a nursery raises)."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[0] is not None
    return isinstance(exc, trio.Cancelled)
