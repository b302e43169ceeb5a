"""RedisAdapter: the rooms of one namespace across many servers, through Redis pub/sub.

Rule: membership stays local (as in Node); an operation acts on this server first, then is published
in Node's ``@socket.io/redis-adapter`` 8.x format, so that trio_rooms and Node socket.io servers share
one cluster. Redis failures are raised as ``AdapterError``, never only logged.

What pub/sub loses while this server is disconnected from Redis: every message published meanwhile
(broadcasts, requests and answers) is gone for it, in both directions; Redis keeps nothing. Local
delivery goes on; emits raise ``AdapterError`` once they have delivered locally; requests
(``fetch_sockets``, ``server_count``, acks across servers) raise ``AdapterError`` at once. After a
reconnection every channel is subscribed again and traffic resumes from that moment.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

import trio

from ..._backoff import Backoff
from ...errors import AckTimeout, AdapterError
from ...protocol.cluster.messages import MessageError, handshake_from_json
from ...protocol.cluster.wire import SUBSCRIPTION_MODES, ClassicWire, Op, ShardedWire, Wire
from ...protocol.encoded import Encoded
from ...protocol.socketio import Packet
from ..base import BroadcastOptions, Room, SocketId
from .backend import RedisLink, import_coredis, open_link
from .inbound import RedisInbound, _AckState, _Pending

if TYPE_CHECKING:
    from ..base import NamespaceView, RemoteSocket

__all__ = ["RedisAdapter"]

logger = logging.getLogger("trio_rooms.redis")

DEFAULT_URL: Final = "redis://127.0.0.1:6379"
DEFAULT_KEY: Final = "socket.io"
DEFAULT_REQUEST_TIMEOUT: Final = 5.0
DEFAULT_PUBLISH_TIMEOUT: Final = 1.0
DEFAULT_RECONNECT_DELAY: Final = 0.05
#: The cap of the reconnection delay; it also bounds what this server can miss after Redis comes
#: back (the other servers, reconnected first, publish before this one has resubscribed).
DEFAULT_RECONNECT_DELAY_MAX: Final = 0.5
DEFAULT_MAX_HANDLER_TASKS: Final = 1000

_COUNTERS: Final = (
    "published",
    "publish_errors",
    "received",
    "ignored",
    "invalid",
    "handled",
    "dropped_overload",
    "connects",
    "disconnects",
    "request_timeouts",
)


class RedisAdapter(RedisInbound):
    """Rooms across servers through Redis: Node's ``@socket.io/redis-adapter`` 8.x wire format.

    Build it with ``Server(adapter=RedisAdapter.factory(url, ...))``; the server runs ``run()``, which
    holds the connections and the subscriber. Needs the extra: ``pip install trio-rooms[redis]``.

    Args:
        namespace: the namespace.
        url: Redis URL (a cluster node's URL when ``sharded``).
        key: Node's ``key`` (classic) or ``channelPrefix`` (sharded).
        sharded: Redis 7 sharded pub/sub on a Redis Cluster, Node's ``createShardedAdapter`` format.
        subscription_mode: sharded only: "static", "dynamic" or "dynamic-private" (as Node).
        request_timeout: how long requests (fetch_sockets, all_rooms) wait for the other servers.
        publish_timeout: the deadline of one publish; past it the operation raises ``AdapterError``.
        reconnect_delay: first delay before reconnecting; doubled per failure, jittered.
        reconnect_delay_max: the cap of that delay.
        specific_response_channel: classic only: Node's ``publishOnSpecificResponseChannel``.
        max_handler_tasks: requests from other servers handled at once (more are dropped, counted).
    """

    def __init__(
        self,
        namespace: NamespaceView,
        *,
        url: str = DEFAULT_URL,
        key: str = DEFAULT_KEY,
        sharded: bool = False,
        subscription_mode: str = "dynamic",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
        reconnect_delay_max: float = DEFAULT_RECONNECT_DELAY_MAX,
        specific_response_channel: bool = False,
        max_handler_tasks: int = DEFAULT_MAX_HANDLER_TASKS,
    ) -> None:
        import_coredis()
        if subscription_mode not in SUBSCRIPTION_MODES:
            raise ValueError(f"subscription_mode must be one of {SUBSCRIPTION_MODES}")
        for name, value in (
            ("request_timeout", request_timeout),
            ("publish_timeout", publish_timeout),
            ("reconnect_delay", reconnect_delay),
            ("reconnect_delay_max", reconnect_delay_max),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        super().__init__(namespace)
        self.url = url
        self.sharded = sharded
        self.request_timeout = float(request_timeout)
        self.publish_timeout = float(publish_timeout)
        self.wire: Wire = (
            ShardedWire(key, namespace.name, subscription_mode=subscription_mode)
            if sharded
            else ClassicWire(key, namespace.name, specific_response_channel=specific_response_channel)
        )
        self.uid = self.wire.uid
        self._backoff = Backoff(reconnect_delay, reconnect_delay_max)
        self._max_handler_tasks = max_handler_tasks
        self._link: RedisLink | None = None
        self._tasks: trio.Nursery | None = None
        self._handler_tasks = 0
        self._pending: dict[str, _Pending] = {}
        self._acks: dict[str, _AckState] = {}
        self._counters = dict.fromkeys(_COUNTERS, 0)
        # Room channels to (un)subscribe (sharded dynamic modes): room events are synchronous.
        self._room_changes_send, self._room_changes = trio.open_memory_channel[tuple[bool, str]](math.inf)
        if self.wire.follows_rooms:
            self.on("create-room", lambda room: self._room_changed(True, room))
            self.on("delete-room", lambda room: self._room_changed(False, room))

    @classmethod
    def factory(
        cls,
        url: str = DEFAULT_URL,
        *,
        key: str = DEFAULT_KEY,
        sharded: bool = False,
        subscription_mode: str = "dynamic",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        **options: Any,
    ) -> Callable[[NamespaceView], RedisAdapter]:
        """The ``adapter=`` argument of ``Server``: one RedisAdapter per namespace.

        Args:
            url: Redis URL (a cluster node's URL when ``sharded``).
            key: Node's ``key`` (classic) or ``channelPrefix`` (sharded).
            sharded: use sharded pub/sub (Redis 7 Cluster), Node's ``createShardedAdapter`` format.
            subscription_mode: sharded only: "static", "dynamic" or "dynamic-private".
            request_timeout: seconds requests wait for the other servers.
            **options: the other keyword arguments of ``RedisAdapter``.

        Raises:
            ImportError: coredis or msgpack is missing (``pip install trio-rooms[redis]``).
            ValueError: an invalid option.
        """
        import_coredis()
        from ...protocol.cluster.messages import encode_msgpack

        encode_msgpack(None)  # msgpack is there too
        if subscription_mode not in SUBSCRIPTION_MODES:
            raise ValueError(f"subscription_mode must be one of {SUBSCRIPTION_MODES}")
        return functools.partial(
            cls,
            url=url,
            key=key,
            sharded=sharded,
            subscription_mode=subscription_mode,
            request_timeout=request_timeout,
            **options,
        )

    # -- observability -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether the subscriber is connected and subscribed now."""
        return self._link is not None

    def stats(self) -> dict[str, int]:
        """Counters: published, publish_errors, received, ignored (own messages, other namespaces,
        rooms absent here), invalid (undecodable or malformed), handled, dropped_overload, connects,
        disconnects, request_timeouts; gauges: ``connected`` (1 or 0), ``handler_tasks`` (requests of
        other servers being handled) and ``pending_requests`` (our requests waiting for answers)."""
        return {
            **self._counters,
            "connected": int(self._link is not None),
            "handler_tasks": self._handler_tasks,
            "pending_requests": len(self._pending) + len(self._acks),
        }

    # -- the connection ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, subscribe and read messages; reconnect with capped jittered backoff, forever.

        Reports started once the first attempt has succeeded or failed (a server starts while Redis
        is down, and its emits raise ``AdapterError`` until Redis is back).

        Cancellation: the connections close; requests still waiting end at their own deadlines.
        """
        async with trio.open_nursery() as tasks:
            self._tasks = tasks
            try:
                await self._connect_forever(task_status)
            finally:
                self._tasks = None
                self._link = None
                tasks.cancel_scope.cancel()

    async def _connect_forever(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        while True:
            try:
                async with open_link(self.url, sharded=self.sharded) as link:
                    await self._subscribe_all(link)
                    self._link = link
                    self._counters["connects"] += 1
                    self._backoff.reset()
                    logger.info("redis adapter %s (%s): subscribed", self.uid, self.nsp.name)
                    if not started:
                        started = True
                        task_status.started()
                    async with trio.open_nursery() as session:
                        session.start_soon(self._follow_rooms, link)
                        await self._read(link)
            except Exception as exc:
                logger.warning("redis adapter %s (%s): connection lost: %s", self.uid, self.nsp.name, exc)
            finally:
                lost = self._link is not None
                if lost:
                    self._counters["disconnects"] += 1
                self._link = None
            if not started:
                started = True
                task_status.started()
            if lost:
                # A connection that was up just failed: try again at once (a blip, a failover), so
                # that this server resubscribes as early as it can; then back off.
                await trio.lowlevel.checkpoint()
            else:
                await trio.sleep(self._backoff.next_delay())

    async def _subscribe_all(self, link: RedisLink) -> None:
        # Every channel, again after each reconnection: nothing is left to the client library.
        channels = list(self.wire.subscriptions())
        channels += [c for c in map(self.wire.room_channel, list(self.rooms)) if c is not None]
        with trio.fail_after(self.request_timeout):
            if self.sharded:
                for channel in channels:  # one SSUBSCRIBE per channel: each may live on another shard
                    await link.subscribe(channel)
            else:
                await link.subscribe(*channels)
            for pattern in self.wire.patterns():
                await link.psubscribe(pattern)

    def _room_changed(self, created: bool, room: Room) -> None:
        if self.wire.room_channel(room) is not None:
            self._room_changes_send.send_nowait((created, room))

    async def _follow_rooms(self, link: RedisLink) -> None:
        while True:
            created, room = await self._room_changes.receive()
            channel = self.wire.room_channel(room)
            if (
                channel is None
                or (created and room not in self.rooms)
                or (not created and room in self.rooms)
            ):
                continue  # gone again (or back) meanwhile: the later change is queued too
            if created:
                await link.subscribe(channel)
            else:
                await link.unsubscribe(channel)

    async def _read(self, link: RedisLink) -> None:
        while True:
            channel, data = await link.next_message()
            self._counters["received"] += 1
            try:
                inbound = self.wire.decode(channel, data)
            except MessageError as exc:
                self._counters["invalid"] += 1
                logger.debug("redis adapter %s: invalid message on %r: %s", self.uid, channel, exc)
                continue
            if inbound is None or (inbound.uid is not None and inbound.uid == self.uid):
                self._counters["ignored"] += 1
                continue
            try:
                await self._dispatch(inbound)
            except Exception:
                self._counters["invalid"] += 1
                logger.exception("redis adapter %s: message on %r failed", self.uid, channel)

    # -- publishing --------------------------------------------------------------------------------
    def _require_link(self) -> RedisLink:
        link = self._link
        if link is None:
            raise AdapterError(f"Redis at {self.url} is not connected")
        return link

    async def _publish(self, message: tuple[str, bytes]) -> None:
        """Publish under ``publish_timeout``. Raises: AdapterError (not connected, failed, too slow)."""
        channel, data = message
        try:
            link = self._require_link()
        except AdapterError:
            self._counters["publish_errors"] += 1
            raise
        with trio.move_on_after(self.publish_timeout) as scope:
            try:
                await link.publish(channel, data)
            except AdapterError:
                self._counters["publish_errors"] += 1
                raise
        if scope.cancelled_caught:
            self._counters["publish_errors"] += 1
            raise AdapterError(f"publish to {channel!r} took over {self.publish_timeout} s")
        self._counters["published"] += 1

    async def server_count(self) -> int:
        """The servers of this namespace: ``PUBSUB NUMSUB`` (or SHARDNUMSUB) of the request channel.

        Raises:
            AdapterError: Redis is unreachable or too slow.
        """
        link = self._require_link()
        with trio.move_on_after(self.publish_timeout):
            return await link.numsub(self.wire.count_channel)
        raise AdapterError(f"PUBSUB NUMSUB took over {self.publish_timeout} s")

    async def _request(
        self, kind: str, build: Callable[[str], tuple[str, bytes]], timeout: float
    ) -> list[Any]:
        """Publish a request and wait for one answer per other server.

        Raises:
            AdapterError: Redis failed.
            trio.TooSlowError: an answer is missing at the deadline (the caller words it).
        """
        expected = await self.server_count() - 1
        if expected <= 0:
            return []
        request_id = self.wire.new_request_id()
        pending = self._pending[request_id] = _Pending(kind, expected)
        try:
            await self._publish(build(request_id))
            with trio.fail_after(timeout):
                await pending.done.wait()
        except trio.TooSlowError:
            self._counters["request_timeouts"] += 1
            raise AckTimeout(f"{pending.received} of {expected} servers answered", pending.answers) from None
        finally:
            del self._pending[request_id]
        return pending.answers

    # -- operations --------------------------------------------------------------------------------
    async def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Deliver locally, then publish (unless ``.local``).

        Raises:
            AdapterError: the publish failed (local delivery has happened).
        """
        await self.deliver(Encoded.of(packet), opts)
        if not opts.flags.local:
            await self._publish(self.wire.broadcast(packet, opts))

    async def broadcast_with_ack(self, packet: Packet, opts: BroadcastOptions) -> list[Any]:
        """Deliver with acks here and on every server; return every answer.

        Raises:
            TypeError: no timeout.
            AckTimeout: an answer (or a server's client count) is missing at the timeout;
                ``.responses`` holds the answers received.
            AdapterError: Redis failed (local delivery has happened).

        Cancellation: late answers are ignored.
        """
        timeout = opts.flags.timeout
        if timeout is None:
            raise TypeError("a broadcast with acks needs a timeout: use .timeout(seconds)")
        if opts.flags.local:
            return await super().broadcast_with_ack(packet, opts)
        deadline = trio.current_time() + timeout
        state = _AckState()
        request_id = self.wire.new_request_id()
        self._acks[request_id] = state
        ack_id = self.nsp.next_ack_id()
        targets = list(self.local_targets(opts))
        sockets = self.nsp.sockets
        try:
            for sid in targets:
                sockets[sid].add_ack_callback(ack_id, state.answer, state.gone)
            state.count(len(targets))
            await self._write_acked(targets, packet, ack_id, opts, state.gone)
            await self._publish(self.wire.broadcast_with_ack(request_id, packet, opts))
            state.expected_servers = await self.server_count()
            state.check()
            with trio.move_on_at(deadline):
                await state.done.wait()
        finally:
            del self._acks[request_id]
            for sid in targets:
                socket = sockets.get(sid)
                if socket is not None:
                    socket.remove_ack_callback(ack_id)
        if not state.done.is_set():
            raise AckTimeout("acks missing across the cluster", state.responses)
        return list(state.responses)

    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets, here and on every server, join ``rooms``. Raises: AdapterError."""
        rooms = tuple(sorted(set(rooms)))
        await super().add_sockets(opts, rooms)
        if not opts.flags.local:
            await self._publish(self.wire.sockets_op(Op.JOIN, opts, rooms, False))

    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets, here and on every server, leave ``rooms``. Raises: AdapterError."""
        rooms = tuple(sorted(set(rooms)))
        await super().del_sockets(opts, rooms)
        if not opts.flags.local:
            await self._publish(self.wire.sockets_op(Op.LEAVE, opts, rooms, False))

    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        """Disconnect the selected sockets here and on every server. Raises: AdapterError."""
        await super().disconnect_sockets(opts, close)
        if not opts.flags.local:
            await self._publish(self.wire.sockets_op(Op.DISCONNECT, opts, (), close))

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[RemoteSocket]:
        """The selected sockets of every server (remote ones act through Redis).

        Raises:
            AdapterError: Redis failed, or a server did not answer within ``request_timeout``.
        """
        found = await super().fetch_sockets(opts)
        if opts.flags.local:
            return found
        try:
            answers = await self._request(
                "fetch", lambda rid: self.wire.fetch(rid, opts), opts.flags.timeout or self.request_timeout
            )
        except AckTimeout as exc:
            raise AdapterError(f"fetch_sockets: {exc}") from None
        from ..base import RemoteSocket

        for answer in answers:
            for item in answer if isinstance(answer, list) else ():
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    self._counters["invalid"] += 1
                    continue
                rooms = item.get("rooms")
                data = item.get("data")
                found.append(
                    RemoteSocket(
                        SocketId(item["id"]),
                        handshake_from_json(item.get("handshake")),
                        frozenset(str(room) for room in rooms) if isinstance(rooms, list) else frozenset(),
                        data if isinstance(data, dict) else {},
                        self,
                    )
                )
        return found

    async def all_rooms(self) -> set[Room]:
        """Every room of this namespace on every server.

        Raises:
            AdapterError: Redis failed, or a server did not answer within ``request_timeout``.
        """
        rooms = set(self.rooms)
        if not self.wire.has_all_rooms:  # the sharded format has no ALL_ROOMS: ask for sockets
            for socket in await self.fetch_sockets(BroadcastOptions()):
                rooms |= socket.rooms
            return rooms
        try:
            answers = await self._request("rooms", self._all_rooms_request, self.request_timeout)
        except AckTimeout as exc:
            raise AdapterError(f"all_rooms: {exc}") from None
        for answer in answers:
            rooms.update(str(room) for room in answer if isinstance(answer, list))
        return rooms

    def _all_rooms_request(self, request_id: str) -> tuple[str, bytes]:
        message = self.wire.all_rooms(request_id)
        assert message is not None
        return message

    async def server_side_emit(
        self, event: str, args: list[Any], *, timeout: float | None = None
    ) -> list[Any]:
        """Send ``[event, *args]`` to the other servers' ``@server.on(event)`` handlers.

        With ``timeout``, wait for one answer per other server (the handlers' return values).

        Raises:
            AckTimeout: an answer is missing at the timeout (``.responses``: those received).
            AdapterError: Redis failed.
        """
        data = [event, *args]
        if timeout is None:
            await self._publish(self.wire.server_side_emit(None, data))
            return []
        return await self._request("emit", lambda rid: self.wire.server_side_emit(rid, data), timeout)
