"""``instrument(server)``: the ``/admin`` namespace of the Socket.IO Admin UI, protocol of
``@socket.io/admin-ui`` 0.5.

Rule: everything the instrumentation learns comes from the server's public hooks (the engine's
session events and traffic meter, the adapters' room events, ``on_new_namespace``, each socket's
``on_any`` / ``on_any_outgoing``), inline and never awaiting; what it tells the admins goes through a
bounded outbox that one task of the server's own nursery empties into the admin namespace (its
adapter makes that cluster-wide), beside the task that emits ``server_stats`` every 2 s. A full
outbox drops (counted in ``dropped``), so a busy server never waits for its admins.
"""

from __future__ import annotations

import json
import logging
import os
import socket as _host
import time
import weakref
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import trio

from ..adapter.base import has_background_work
from ..errors import ConnectionRefused, Disconnected
from ..types import Handshake, Transport
from .auth import BasicAuth, check_auth_option

if TYPE_CHECKING:
    from ..engine.session import Session
    from ..namespace import Namespace
    from ..server import Server
    from ..socket import Socket

__all__ = ["AdminInstrumentation", "EventBuffer", "instrument"]

logger = logging.getLogger("trio_rooms.admin")

#: The commands of the page (the features a read-only instrumentation does not announce).
COMMAND_FEATURES: Final = ("EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT")
#: Seconds between two ``server_stats``.
STATS_INTERVAL: Final = 2.0
#: Live events waiting for the admin namespace's broadcast; past it, events are dropped.
OUTBOX_SIZE: Final = 4096

_instrumented: weakref.WeakKeyDictionary[Server, AdminInstrumentation] = weakref.WeakKeyDictionary()


def instrument(
    server: Server,
    *,
    auth: Mapping[str, Any] | None = None,
    mode: Literal["development", "production"] = "development",
    read_only: bool = False,
    namespace_name: str = "/admin",
    server_id: str | None = None,
) -> AdminInstrumentation:
    """Serve the Socket.IO Admin UI's protocol on ``server``'s namespace ``namespace_name``.

    Call it once, before serving (its periodic work runs in the server's own nursery, started by
    ``serve``, ``serve_listeners`` and ``ASGIApp``'s lifespan). The page runs on another origin
    (https://admin.socket.io, or wherever its files are served): allow it with the server's
    ``cors_allowed_origins`` (the page sends credentials, so not ``"*"``).

    Args:
        server: the server to instrument.
        auth: None (no login), or ``{"type": "basic", "username": str, "password": bcrypt_hash}``
            (``bcrypt.hashpw(password, bcrypt.gensalt()).decode()``; needs ``trio-rooms[admin]``).
            A password login earns a session id that logs in again without the password (valid
            24 h, at most 1024 at once); five failures in a minute from one address refuse that
            address until the minute ends.
        mode: "development" sends every socket, room and event live; "production" only the
            aggregated stats (less work for a busy server).
        read_only: announce no command and take none (the page then only watches).
        namespace_name: the admin namespace.
        server_id: this server's name in the page (default: the host name).

    Returns:
        The instrumentation (its ``namespace``, ``features``, and counters).

    Raises:
        ValueError: a bad ``auth`` or ``mode``.
        RuntimeError: ``server`` is instrumented already.
    """
    if mode not in ("development", "production"):
        raise ValueError('mode is "development" or "production"')
    if server in _instrumented:
        raise RuntimeError("this server is instrumented already")
    instrumentation = AdminInstrumentation(
        server,
        credentials=check_auth_option(auth),
        development=mode == "development",
        read_only=read_only,
        namespace_name=namespace_name,
        server_id=server_id,
    )
    _instrumented[server] = instrumentation
    return instrumentation


def _now() -> str:
    """Now as JavaScript's ``Date#toJSON`` writes it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can carry it, else a copy whose unknown values are their ``repr``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=repr, skipkeys=True))
    return value


def serialize_socket(
    sid: str, handshake: Handshake, data: Mapping[str, Any], rooms: Collection[str], nsp: str
) -> dict[str, Any]:
    """A socket as the page knows it (``SerializedSocket``): no ``auth`` in its handshake, and its
    ``data`` without the instrumentation's own ``_admin`` entry (``clientId``, ``transport``)."""
    info = data.get("_admin")
    if not isinstance(info, dict):
        info = {}
    return {
        "id": sid,
        "clientId": info.get("clientId"),
        "transport": info.get("transport"),
        "nsp": nsp,
        "data": _jsonable({key: value for key, value in data.items() if key != "_admin"}),
        "handshake": {
            "address": handshake.address,
            "headers": handshake.headers,
            "query": handshake.query,
            "issued": handshake.issued,
            "secure": handshake.secure,
            "time": handshake.time,
            "url": handshake.url,
            "xdomain": handshake.xdomain,
        },
        "rooms": list(rooms),
    }


class EventBuffer:
    """Counts of events by (second, type, subtype) until taken: the ``aggregatedEvents`` of
    ``server_stats``. Bounded by the kinds of events times the seconds between two takes."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, str, str | None], dict[str, Any]] = {}

    def push(self, kind: str, sub_type: str | None = None, count: int = 1) -> None:
        """Count ``count`` events of ``kind`` (and ``sub_type``) now."""
        timestamp = int(time.time()) * 1000
        key = (timestamp, kind, sub_type)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = {"timestamp": timestamp, "type": kind, "count": 0}
            if sub_type is not None:
                entry["subType"] = sub_type
        entry["count"] += count

    def take(self) -> list[dict[str, Any]]:
        """Every count since the last take; the buffer is then empty."""
        values = list(self._entries.values())
        self._entries.clear()
        return values


class AdminInstrumentation:
    """What ``instrument`` built (see there).

    Attributes:
        namespace: the admin namespace.
        features: the ``supportedFeatures`` of ``config``.
        server_id: the ``serverId`` of ``server_stats``.
        dropped: live events dropped on a full outbox.
    """

    def __init__(
        self,
        server: Server,
        *,
        credentials: tuple[str, bytes] | None,
        development: bool,
        read_only: bool,
        namespace_name: str,
        server_id: str | None,
    ) -> None:
        self.server = server
        self.development = development
        self.read_only = read_only
        self.features = [*([] if read_only else COMMAND_FEATURES), "AGGREGATED_EVENTS"]
        if development:
            self.features.append("ALL_EVENTS")
        self.server_id = server_id or _host.gethostname()
        self.namespace = server.of(namespace_name)
        self.auth = BasicAuth(*credentials) if credentials is not None else None
        self.dropped = 0
        self._events = EventBuffer()
        self._meter = server.engine.meter_traffic()
        self._last_totals = self._meter.totals()
        self._polling = 0
        #: engine id -> (namespace, socket id, the socket's ``_admin`` data) of its sockets.
        self._by_session: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        self._new_sessions: weakref.WeakKeyDictionary[Socket, str] = weakref.WeakKeyDictionary()
        #: Each socket's ``event_sent`` listener, attached while an admin may listen (``_observing``).
        self._sent: weakref.WeakKeyDictionary[Socket, Callable[..., None]] = weakref.WeakKeyDictionary()
        self._outbox, self._outbox_out = trio.open_memory_channel[tuple[str, tuple[Any, ...]]](OUTBOX_SIZE)
        self._running = False
        self._started_at = 0.0
        # A cluster adapter may carry the live events to admins on other servers.
        self._cluster = has_background_work(self.namespace.adapter)
        self._observing = self._cluster

        engine = server.engine
        engine.on("session_open", self._session_opened)
        engine.on("upgrade", self._session_upgraded)
        engine.on("session_close", self._session_closed)
        if self.auth is not None:
            self.namespace.use(self._authenticate)
        if development:
            for namespace in list(server.namespaces.values()):
                self._watch(namespace)
            server.on_new_namespace(self._watch)
        self.namespace.on("connection")(self._admin_connected)
        server.add_service(self._run)

    # -- the engine's session events -----------------------------------------------------------------
    def _session_opened(self, session: Session) -> None:
        self._events.push("rawConnection")
        if session.transport is Transport.POLLING:
            self._polling += 1

    def _session_upgraded(self, session: Session) -> None:
        self._polling -= 1
        for nsp, sid, info in self._by_session.get(session.sid, ()):
            info["transport"] = str(Transport.WEBSOCKET)
            self._publish("socket_updated", {"id": sid, "nsp": nsp, "transport": str(Transport.WEBSOCKET)})

    def _session_closed(self, session: Session, reason: object) -> None:
        self._events.push("rawDisconnection", str(reason))
        if session.transport is Transport.POLLING:
            self._polling -= 1
        self._by_session.pop(session.sid, None)

    # -- login and the admins' own sockets -------------------------------------------------------------
    async def _authenticate(self, socket: Socket) -> None:
        assert self.auth is not None
        try:
            session_id = await self.auth.login(socket.handshake.auth, socket.handshake.address)
        except PermissionError:
            raise ConnectionRefused("invalid credentials") from None
        if session_id is not None:
            self._new_sessions[socket] = session_id

    async def _admin_connected(self, socket: Socket) -> None:
        try:
            session_id = self._new_sessions.pop(socket, None)
            if session_id is not None:
                await socket.emit("session", session_id)
            if not self.read_only:
                for command, handler in (
                    ("emit", self._emit),
                    ("join", self._join),
                    ("leave", self._leave),
                    ("_disconnect", self._disconnect),
                ):
                    socket.on(command)(handler)
            await socket.emit("config", {"supportedFeatures": list(self.features)})
            if self.development:
                await socket.emit("all_sockets", await self.all_sockets())
            # At once for this admin (then every STATS_INTERVAL for all): the page fills in now.
            await socket.emit("server_stats", self._stats([]))
        except Disconnected:
            return

    async def all_sockets(self) -> list[dict[str, Any]]:
        """Every socket of every namespace, cluster-wide (``fetch_sockets``), serialized."""
        found: list[dict[str, Any]] = []
        for namespace in list(self.server.namespaces.values()):
            try:
                sockets = await namespace.fetch_sockets()
            except Exception:
                logger.exception("admin: fetch_sockets failed on %r", namespace)
                continue
            found.extend(
                serialize_socket(s.id, s.handshake, s.data, s.rooms, namespace.name) for s in sockets
            )
        return found

    # -- the commands ---------------------------------------------------------------------------------
    def _target(self, nsp: object, filter_: object) -> Any:
        """The namespace ``nsp`` (a known one), narrowed to the room ``filter_`` when given."""
        namespace = self.server.namespaces.get(nsp) if isinstance(nsp, str) else None
        if namespace is None or not (filter_ is None or isinstance(filter_, str)):
            logger.info("admin: command on %r / %r ignored (unknown namespace or bad filter)", nsp, filter_)
            return None
        return namespace.in_(filter_) if filter_ else namespace

    async def _emit(self, *args: Any) -> None:
        if len(args) >= 3 and isinstance(args[2], str):
            target = self._target(args[0], args[1])
            if target is not None:
                await target.emit(args[2], *args[3:])
                return
        await trio.lowlevel.checkpoint()

    async def _join(self, nsp: object = None, room: object = None, filter_: object = None, *_: Any) -> None:
        target = self._target(nsp, filter_)
        if target is not None and isinstance(room, str):
            await target.sockets_join(room)
        else:
            await trio.lowlevel.checkpoint()

    async def _leave(self, nsp: object = None, room: object = None, filter_: object = None, *_: Any) -> None:
        target = self._target(nsp, filter_)
        if target is not None and isinstance(room, str):
            await target.sockets_leave(room)
        else:
            await trio.lowlevel.checkpoint()

    async def _disconnect(
        self, nsp: object = None, close: object = False, filter_: object = None, *_: Any
    ) -> None:
        target = self._target(nsp, filter_)
        if target is not None:
            await target.disconnect_sockets(close is True)
        else:
            await trio.lowlevel.checkpoint()

    # -- development mode: every socket, room and event, live ------------------------------------------
    def _watch(self, namespace: Namespace) -> None:
        """Follow ``namespace``'s sockets (first of its connection handlers) and rooms."""
        handlers = namespace.connection_handlers  # a child shares its parent's list
        if self._socket_connected not in handlers:
            handlers.insert(0, self._socket_connected)
        name = namespace.name

        def joined(room: str, sid: str) -> None:
            if self._wanted():
                self._publish("room_joined", name, room, sid, _now())

        def left(room: str, sid: str) -> None:
            if self._wanted():
                self._publish("room_left", name, room, sid, _now())

        namespace.adapter.on("join-room", joined)
        namespace.adapter.on("leave-room", left)

    async def _socket_connected(self, socket: Socket) -> None:
        # Closures over strings and dicts only: a socket's handlers hold no reference to it.
        nsp, sid, engine_id = socket.nsp.name, socket.id, socket.conn.sid
        info = {"clientId": engine_id[:12], "transport": str(socket.conn.transport)}
        socket.data["_admin"] = info
        entries = self._by_session.setdefault(engine_id, [])
        entries.append((nsp, sid, info))
        publish = self._publish
        publish(
            "socket_connected",
            serialize_socket(sid, socket.handshake, socket.data, socket.rooms, nsp),
            _now(),
        )

        async def disconnected(reason: str) -> None:
            if entries:
                entries[:] = [entry for entry in entries if entry[1] != sid]
            if not entries and self._by_session.get(engine_id) is entries:
                del self._by_session[engine_id]
            publish("socket_disconnected", nsp, sid, reason, _now())
            if admin:
                self._observe_outgoing(self._cluster or bool(self.namespace.sockets))
            await trio.lowlevel.checkpoint()

        admin = socket.nsp is self.namespace
        socket.on("disconnect")(disconnected)
        if admin:
            self._observe_outgoing(True)
        else:
            wanted = self._wanted

            async def received(event: str, *args: Any) -> None:
                if wanted():
                    publish("event_received", nsp, sid, [event, *args], _now())
                await trio.lowlevel.checkpoint()

            def sent(event: str, *args: Any) -> None:  # once per delivery: nothing built unless wanted
                if wanted():
                    publish("event_sent", nsp, sid, [event, *args], _now())

            socket.on_any(received)
            self._sent[socket] = sent
            if self._observing:
                socket.on_any_outgoing(sent)
        await trio.lowlevel.checkpoint()

    def _observe_outgoing(self, on: bool) -> None:
        """Attach (or detach) the ``event_sent`` listener of every socket: an outgoing listener costs
        each delivery a call, so the sockets have one only while an admin may listen."""
        if on == self._observing:
            return
        self._observing = on
        for socket, listener in list(self._sent.items()):
            if on:
                socket.on_any_outgoing(listener)
            else:
                socket.off_any_outgoing(listener)

    def _wanted(self) -> bool:
        """Whether an admin may listen to live events: one is connected here, or a cluster adapter
        may carry them to the admins of other servers (and the server runs)."""
        return self._running and (self._cluster or bool(self.namespace.sockets))

    def _publish(self, event: str, *args: Any) -> None:
        """Queue a live event for the admins (nothing when none may listen; dropped when full)."""
        if not self._wanted():
            return
        try:
            self._outbox.send_nowait((event, args))
        except trio.WouldBlock:
            self.dropped += 1

    # -- the server's nursery: the outbox and server_stats -------------------------------------------
    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The service: empty the outbox, and emit ``server_stats`` now and every ``STATS_INTERVAL``."""
        self._started_at = trio.current_time()
        self._last_totals = self._meter.totals()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump)
            self._running = True
            try:
                task_status.started()
                while True:
                    try:
                        await self.namespace.emit("server_stats", self._stats(self._aggregated()))
                    except Exception:
                        logger.exception("admin: server_stats not sent")
                    await trio.sleep(STATS_INTERVAL)
            finally:
                self._running = False
                nursery.cancel_scope.cancel()

    async def _pump(self) -> None:
        while True:
            event, args = await self._outbox_out.receive()
            try:
                await self.namespace.emit(event, *args)
            except Exception:
                logger.exception("admin: live event %r not sent", event)

    def _aggregated(self) -> list[dict[str, Any]]:
        """The aggregated events since the last call (the traffic meter's differences added)."""
        totals = self._meter.totals()
        for kind, total in totals.items():
            delta = total - self._last_totals[kind]
            if delta > 0:
                self._events.push(kind, None, delta)
        self._last_totals = totals
        return self._events.take()

    def _stats(self, aggregated: list[dict[str, Any]]) -> dict[str, Any]:
        server = self.server
        return {
            "serverId": self.server_id,
            "hostname": _host.gethostname(),
            "pid": os.getpid(),
            "uptime": trio.current_time() - self._started_at,
            "clientsCount": len(server.engine.sessions),
            "pollingClientsCount": self._polling,
            "aggregatedEvents": aggregated,
            "namespaces": [
                {"name": name, "socketsCount": len(namespace.sockets)}
                for name, namespace in server.namespaces.items()
            ],
        }
