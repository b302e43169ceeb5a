"""RedisAdapter: the rooms of one namespace across many servers, through Redis pub/sub.

Rule: membership stays local (as in Node); an operation acts on this server first, then is published
in Node's ``@socket.io/redis-adapter`` 8.x format, so that trio_rooms and Node socket.io servers share
one cluster. Redis failures are raised as ``AdapterError``, never only logged. The adapter is a
composition: ``InMemoryAdapter`` (this server), a ``BusPort`` on the server's shared ``RedisBus``
(Redis), ``InboundHandler`` (the other servers' messages), ``Requests`` (ours, waiting for replies),
and a ``Wire`` (the format).

An emit does not wait for Redis: it delivers locally, queues its message and returns (the bus
publishes in batches, in order). It raises ``AdapterError`` (after the local delivery) when the link
is known to be down, or when the publish queue stayed full for ``publish_timeout``; a publish that
fails after the emit returned is counted in ``publish_errors`` and logged, and breaks the link.
What pub/sub loses while this server is disconnected from Redis: every message published meanwhile
(broadcasts, requests and answers) is gone for it, in both directions; Redis keeps nothing. Requests
(``fetch_sockets``, ``server_count``, acks across servers) raise ``AdapterError`` at once. After a
reconnection every channel is subscribed again and traffic resumes from that moment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Set
from typing import Any, Final, TypeVar

import trio

from ...errors import AckTimeout, AdapterError
from ...protocol.cluster.classic import ClassicWire
from ...protocol.cluster.model import (
    AllRooms,
    AllRoomsResponse,
    Broadcast,
    BroadcastWithAck,
    Command,
    DisconnectSockets,
    FetchSockets,
    FetchSocketsResponse,
    Reply,
    ServerSideEmit,
    ServerSideEmitResponse,
    SocketsJoin,
    SocketsLeave,
)
from ...protocol.cluster.sharded import ShardedWire
from ...protocol.cluster.wire import Wire
from ...protocol.encoded import Encoded
from ...protocol.socketio import Packet
from ...types import BroadcastOptions, Room, SocketId
from ..base import ROOM_EVENTS, Adapter, NamespaceView, RemoteSocket
from ..memory import InMemoryAdapter
from .backend import import_coredis
from .bus import DEFAULT_MAX_PENDING_PUBLISHES, RedisBus
from .factory import (
    DEFAULT_KEY,
    DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_RECONNECT_DELAY,
    DEFAULT_RECONNECT_DELAY_MAX,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_URL,
    RedisAdapterFactory,
    check_options,
)
from .inbound import InboundHandler
from .requests import Gathering, Requests

__all__ = ["RedisAdapter"]

DEFAULT_MAX_HANDLER_TASKS: Final = 1000

R = TypeVar("R", bound=Reply)


class RedisAdapter(Adapter):
    """Rooms across servers through Redis: Node's ``@socket.io/redis-adapter`` 8.x wire format.

    Build it with ``Server(adapter=RedisAdapter.factory(url, ...))``: every namespace's adapter then
    shares the factory's ``RedisBus`` (one publishing and one subscribing connection per server),
    which the server runs once; each adapter's ``run()`` holds the handling of the other servers'
    requests and its subscriptions (dropped when it ends: a removed namespace unsubscribes).
    Built alone (no ``bus``), an adapter has a bus of its own, run by its ``run()``.
    Needs the ``redis`` extra: ``pip install -e '.[redis]'`` in a checkout of trio_rooms
    (``pip install 'trio-rooms[redis]'`` once it is published).

    An emit (``broadcast``, ``add_sockets``, ``del_sockets``, ``disconnect_sockets``,
    ``server_side_emit`` without ack) acts on this server first, then queues its message and
    returns without waiting for Redis: see ``Publisher.publish`` for when it raises.

    Args:
        namespace: the namespace.
        url: Redis URL (a cluster node's URL when ``sharded``); ignored with ``bus``.
        key: Node's ``key`` (classic) or ``channelPrefix`` (sharded).
        sharded: Redis 7 sharded pub/sub on a Redis Cluster, Node's ``createShardedAdapter`` format;
            with ``bus``, the bus' mode.
        subscription_mode: sharded only: "static", "dynamic" or "dynamic-private" (as Node).
        request_timeout: how long requests (fetch_sockets, all_rooms) wait for the other servers.
        publish_timeout: how long an emit waits for room in a full publish queue, and the deadline
            of a batch of publishes (past it, the link is broken and reconnects).
        reconnect_delay: first delay before reconnecting; doubled per failure, jittered.
        reconnect_delay_max: the cap of that delay.
        specific_response_channel: classic only: Node's ``publishOnSpecificResponseChannel``.
        max_handler_tasks: requests from other servers handled at once (more are dropped, counted).
        max_pending_publishes: publishes queued or in flight at once on the bus (then emits wait).
        bus: the server's shared bus (the factory passes it).
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
        max_pending_publishes: int = DEFAULT_MAX_PENDING_PUBLISHES,
        bus: RedisBus | None = None,
    ) -> None:
        import_coredis()
        check_options(
            subscription_mode=subscription_mode,
            request_timeout=request_timeout,
            publish_timeout=publish_timeout,
            reconnect_delay=reconnect_delay,
            reconnect_delay_max=reconnect_delay_max,
            max_pending_publishes=max_pending_publishes,
        )
        super().__init__(namespace)
        self._own_bus: RedisBus | None = None
        if bus is None:
            bus = self._own_bus = RedisBus(
                url,
                sharded=sharded,
                publish_timeout=float(publish_timeout),
                subscribe_timeout=float(request_timeout),
                reconnect_delay=reconnect_delay,
                reconnect_delay_max=reconnect_delay_max,
                max_pending_publishes=max_pending_publishes,
                name=f"{url} {namespace.name}",
            )
        self.url = url = bus.url
        self.sharded = sharded = bus.sharded
        self.request_timeout = float(request_timeout)
        self.publish_timeout = float(publish_timeout)
        self.wire: Wire = self._new_wire(
            key,
            namespace.name,
            sharded=sharded,
            subscription_mode=subscription_mode,
            specific_response_channel=specific_response_channel,
        )
        self.uid = self.wire.uid
        name = f"{self.uid} ({namespace.name})"
        self._local = InMemoryAdapter(namespace)
        self._requests = Requests(self.wire.new_request_id)
        self._inbound = InboundHandler(
            namespace,
            self._local,
            self.wire,
            self._requests,
            self._reply,
            request_timeout=self.request_timeout,
            max_tasks=max_handler_tasks,
            name=name,
        )
        # This namespace's share of the bus; following now, the channels of the namespaces that exist
        # when the server starts are subscribed before it serves.
        self._port = bus.port(namespace.name, self._inbound.receive)
        self._request_timeouts = 0
        for channel in self.wire.subscriptions():
            self._port.follow(channel)
        for pattern in self.wire.patterns():
            self._port.follow_pattern(pattern)
        # The local part's room events: room channels first (sharded dynamic modes), then ours.
        if self.wire.follows_rooms:
            self._local.on("create-room", self._room_created)
            self._local.on("delete-room", self._room_deleted)
        for event in sorted(ROOM_EVENTS):
            self._local.on(event, functools.partial(self.emit_room_event, event))

    def _new_wire(
        self, key: str, nsp: str, *, sharded: bool, subscription_mode: str, specific_response_channel: bool
    ) -> Wire:
        """The wire format of namespace ``nsp`` (a subclass with another format overrides this)."""
        if sharded:
            return ShardedWire(key, nsp, subscription_mode=subscription_mode)
        return ClassicWire(key, nsp, specific_response_channel=specific_response_channel)

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
    ) -> RedisAdapterFactory[RedisAdapter]:
        """The ``adapter=`` argument of ``Server``: one RedisAdapter per namespace, on one shared bus.

        Args:
            url: Redis URL (a cluster node's URL when ``sharded``).
            key: Node's ``key`` (classic) or ``channelPrefix`` (sharded).
            sharded: use sharded pub/sub (Redis 7 Cluster), Node's ``createShardedAdapter`` format.
            subscription_mode: sharded only: "static", "dynamic" or "dynamic-private".
            request_timeout: seconds requests wait for the other servers.
            **options: the other keyword arguments of ``RedisAdapter``.

        Raises:
            ImportError: coredis or msgpack is missing (the ``redis`` extra: the message says how to get it).
            ValueError: an invalid option.
        """
        return RedisAdapterFactory(
            cls,
            url,
            key=key,
            sharded=sharded,
            subscription_mode=subscription_mode,
            request_timeout=request_timeout,
            **options,
        )

    # -- observability -----------------------------------------------------------------------------
    #: The failures among ``stats()`` (the server's ``adapter_errors``).
    error_stats = ("publish_errors", "invalid", "request_timeouts", "dropped_overload")

    @property
    def connected(self) -> bool:
        """Whether the bus is connected and subscribed now."""
        return self._port.connected

    def stats(self) -> dict[str, int]:
        """Counters: published (confirmed by Redis), publish_errors (refused, or lost after the emit
        returned), received, ignored (own messages, other namespaces, rooms absent here), invalid
        (undecodable or malformed), handled, dropped_overload, connects, disconnects,
        publish_batches, request_timeouts; gauges: ``connected`` (1 or 0), ``handler_tasks``
        (requests of other servers being handled) and ``pending_requests`` (our requests waiting for
        answers). ``published`` and ``publish_errors`` are this namespace's; ``connects``,
        ``disconnects``, ``publish_batches`` and ``connected`` are the shared bus' (the same in every
        namespace of a factory)."""
        bus, inbound = self._port.stats(), self._inbound.stats()
        return {
            "published": bus["published"],
            "publish_errors": bus["publish_errors"],
            "publish_batches": bus["publish_batches"],
            "received": inbound["received"],
            "ignored": inbound["ignored"],
            "invalid": inbound["invalid"],
            "handled": inbound["handled"],
            "dropped_overload": inbound["dropped_overload"],
            "connects": bus["connects"],
            "disconnects": bus["disconnects"],
            "request_timeouts": self._request_timeouts,
            "connected": int(self._port.connected),
            "handler_tasks": inbound["handler_tasks"],
            "pending_requests": len(self._requests),
        }

    # -- the connection ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Handle the other servers' requests and hold this namespace's subscriptions, until cancelled;
        with a bus of its own, run it too (connect, subscribe, reconnect, forever).

        Reports started at once on a shared bus; with its own bus, once the first connection attempt
        has succeeded or failed (a server starts while Redis is down, and its emits raise
        ``AdapterError`` until Redis is back).

        Cancellation: this namespace's channels are unsubscribed (unless the same adapter runs
        again); its own bus' connections close; requests still waiting end at their own deadlines.
        """
        async with trio.open_nursery() as nursery:
            await nursery.start(self._inbound.serve)
            self._port.open()
            try:
                if self._own_bus is not None:
                    await self._own_bus.run(task_status=task_status)
                else:
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                self._port.close()
                nursery.cancel_scope.cancel()

    async def _reply(self, message: tuple[str, bytes]) -> None:
        await self._port.publish(message)

    def _room_created(self, room: Room) -> None:
        channel = self.wire.room_channel(room)
        if channel is not None:
            self._port.follow(channel)

    def _room_deleted(self, room: Room) -> None:
        channel = self.wire.room_channel(room)
        if channel is not None:
            self._port.unfollow(channel)

    # -- membership: this server's ------------------------------------------------------------------
    @property
    def rooms(self) -> Mapping[Room, Set[SocketId]]:
        return self._local.rooms

    @property
    def sids(self) -> Mapping[SocketId, Set[Room]]:
        return self._local.sids

    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        self._local.add_all(sid, rooms)

    def remove(self, sid: SocketId, room: Room) -> None:
        self._local.remove(sid, room)

    def remove_all(self, sid: SocketId) -> None:
        self._local.remove_all(sid)

    def local_targets(self, opts: BroadcastOptions) -> Collection[SocketId]:
        return self._local.local_targets(opts)

    # -- operations --------------------------------------------------------------------------------
    async def _publish(self, command: Command) -> None:
        await self._port.publish(self.wire.encode(command))

    async def server_count(self) -> int:
        """The servers of this namespace: ``PUBSUB NUMSUB`` (or SHARDNUMSUB) of the request channel.

        Raises:
            AdapterError: Redis is unreachable or too slow.
        """
        return await self._port.numsub(self.wire.count_channel)

    async def _request(
        self, command: Callable[[str], Command], accepts: type[R], timeout: float
    ) -> Gathering[R]:
        """Publish a request and wait for one reply per other server, or until ``timeout``.

        Returns the request, its ``done`` set when every server answered.

        Raises:
            AdapterError: Redis failed.
        """
        expected = await self.server_count() - 1
        if expected <= 0:
            return Gathering("", accepts, 0)
        with self._requests.gather(accepts, expected) as gathering:
            await self._publish(command(gathering.request_id))
            with trio.move_on_after(timeout):
                await gathering.done.wait()
        if not gathering.done.is_set():
            self._request_timeouts += 1
        return gathering

    async def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Deliver locally, then publish (unless ``.local``).

        Raises:
            AdapterError: the publish failed (local delivery has happened).
        """
        await self._local.deliver(Encoded.of(packet, keep_packet=True), opts)
        if not opts.flags.local:
            await self._publish(Broadcast(packet, opts))

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
            return await self._local.broadcast_with_ack(packet, opts)
        deadline = trio.current_time() + timeout
        ack_id = self.nsp.next_ack_id()
        targets = list(self._local.local_targets(opts))
        sockets = self.nsp.sockets
        with self._requests.gather_acks() as state:
            try:
                for sid in targets:
                    sockets[sid].add_ack_callback(ack_id, state.answer, state.gone)
                state.count(len(targets))
                await self._local.deliver_acked(targets, packet, ack_id, opts.flags.volatile, state.gone)
                await self._publish(BroadcastWithAck(state.request_id, packet, opts))
                state.expect_servers(await self.server_count())
                with trio.move_on_at(deadline):
                    await state.done.wait()
            finally:
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
        await self._local.add_sockets(opts, rooms)
        if not opts.flags.local:
            await self._publish(SocketsJoin(opts, rooms))

    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        """Make the selected sockets, here and on every server, leave ``rooms``. Raises: AdapterError."""
        rooms = tuple(sorted(set(rooms)))
        await self._local.del_sockets(opts, rooms)
        if not opts.flags.local:
            await self._publish(SocketsLeave(opts, rooms))

    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        """Disconnect the selected sockets here and on every server. Raises: AdapterError."""
        await self._local.disconnect_sockets(opts, close)
        if not opts.flags.local:
            await self._publish(DisconnectSockets(opts, close))

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[RemoteSocket]:
        """The selected sockets of every server (each acts through this adapter, so through Redis).

        Raises:
            AdapterError: Redis failed, or a server did not answer within ``request_timeout``.
        """
        sockets = self.nsp.sockets
        found = [RemoteSocket.of_local(sockets[sid], self) for sid in self._local.local_targets(opts)]
        await trio.lowlevel.checkpoint()
        if opts.flags.local:
            return found
        gathering = await self._request(
            lambda request_id: FetchSockets(request_id, opts),
            FetchSocketsResponse,
            opts.flags.timeout or self.request_timeout,
        )
        if not gathering.done.is_set():
            raise AdapterError(f"fetch_sockets: {_missing(gathering)}")
        for reply in gathering.replies:
            found.extend(RemoteSocket(s.id, s.handshake, s.rooms, s.data, self) for s in reply.sockets)
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
        gathering = await self._request(AllRooms, AllRoomsResponse, self.request_timeout)
        if not gathering.done.is_set():
            raise AdapterError(f"all_rooms: {_missing(gathering)}")
        for reply in gathering.replies:
            rooms.update(reply.rooms)
        return rooms

    async def server_side_emit(
        self, event: str, args: list[Any], *, timeout: float | None = None
    ) -> list[Any]:
        """Send ``event`` with ``args`` to the other servers' ``@server.on(event)`` handlers.

        With ``timeout``, wait for one answer per other server (the handlers' return values).

        Raises:
            AckTimeout: an answer is missing at the timeout (``.responses``: those received).
            AdapterError: Redis failed.
        """
        if timeout is None:
            await trio.lowlevel.checkpoint()
            await self._publish(ServerSideEmit(event, tuple(args)))
            return []
        gathering = await self._request(
            lambda request_id: ServerSideEmit(event, tuple(args), request_id), ServerSideEmitResponse, timeout
        )
        answers = [reply.value for reply in gathering.replies]
        if not gathering.done.is_set():
            raise AckTimeout(_missing(gathering), answers)
        return answers


def _missing(gathering: Gathering[Any]) -> str:
    return f"{len(gathering.replies)} of {gathering.expected} servers answered"
