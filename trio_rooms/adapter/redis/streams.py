"""RedisStreamsAdapter: the rooms of one namespace across many servers through a Redis stream, wire
compatible with Node's ``@socket.io/redis-streams-adapter`` 0.3, and connection state recovery across
servers.

Rule: a ``RedisAdapter`` with another format (``protocol.cluster.streams``): what needs no answer
(broadcasts, joins, leaves, disconnects) is an entry of the stream (``XADD``), read by every server's
``StreamReader``; what needs answers (broadcasts with acks, ``fetch_sockets``, ``server_side_emit``) and
the answers go by pub/sub on the shared ``RedisBus``, exactly as the RedisAdapter's do; the server count
is ``PUBSUB NUMSUB`` of the namespace's channel. The entry id of a broadcast is its offset: with
recovery on, it is appended to the packet's arguments, here and on every server, and a dropped socket's
session is stored in Redis (``SET ... PX``), so that it can recover on any server of the cluster.

Unlike the RedisAdapter's, an emit that goes through the stream waits for Redis' answer (as Node does:
the offset is in it), then delivers locally; when Redis fails, it delivers locally without an offset
and raises ``AdapterError``. What the stream keeps (``max_len`` entries, trimmed with ``~``), a server
that lost its connection reads when it is back; pub/sub keeps nothing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

import trio

from ...errors import AdapterError
from ...protocol.cluster.messages import MessageError
from ...protocol.cluster.model import Broadcast, Command
from ...protocol.cluster.streams import (
    STREAM_COMMANDS,
    StreamsWire,
    decode_session,
    encode_session,
    is_offset,
    offset_key,
    replays_to,
)
from ...protocol.cluster.wire import Wire
from ...protocol.encoded import Encoded
from ...protocol.socketio import Packet, PacketType
from ...recovery import PersistedSession, RestoredSession
from ...types import BroadcastOptions
from ..base import NamespaceView
from .adapter import DEFAULT_MAX_HANDLER_TASKS, RedisAdapter
from .bus import DEFAULT_MAX_PENDING_PUBLISHES, RedisBus
from .factory import (
    DEFAULT_KEY,
    DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_RECONNECT_DELAY,
    DEFAULT_RECONNECT_DELAY_MAX,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_URL,
)
from .reader import DEFAULT_BLOCK_TIME, StreamReader, stream_entries
from .streams_factory import (
    DEFAULT_MAX_LEN,
    DEFAULT_READ_COUNT,
    DEFAULT_SESSION_KEY_PREFIX,
    DEFAULT_STREAM_NAME,
    RedisStreamsAdapterFactory,
    check_stream_options,
)

__all__ = ["RedisStreamsAdapter"]

logger = logging.getLogger("trio_rooms.redis")

#: Entries per XRANGE while replaying the packets a recovering socket missed.
REPLAY_PAGE: Final = 1000
#: Restores under way at once in a namespace (the others wait their turn): in a reconnect storm, the
#: sockets' work then comes in small groups, and the event loop stays responsive.
MAX_CONCURRENT_RESTORES: Final = 16
#: How many entries past twice ``max_len`` a replay may read (``MAXLEN ~`` trims whole nodes of 100).
REPLAY_SLACK: Final = 200
#: Our own latest delivered broadcasts remembered, for the replays.
OWN_DELIVERED: Final = 10_000
#: Decoded entries kept for the replays (a storm's clients replay the same entries).
REPLAY_CACHE: Final = 10_000

_STREAM_COUNTERS: Final = (
    "stream_received",
    "stream_ignored",
    "stream_invalid",
    "sessions_persisted",
    "sessions_restored",
    "sessions_missing",
    "replayed_entries",
)


class RedisStreamsAdapter(RedisAdapter):
    """Rooms across servers through a Redis stream: Node's ``@socket.io/redis-streams-adapter`` 0.3.

    Build it with ``Server(adapter=RedisStreamsAdapter.factory(url, ...))``: every namespace's adapter
    then shares the factory's ``RedisBus`` (one publishing and one subscribing connection) and its
    ``StreamReader`` (one connection blocked on ``XREAD``). Needs the ``redis`` extra (see ``RedisAdapter``).

    With ``Server(connection_state_recovery=...)``, a broadcast's stream entry id is appended to its
    arguments (the client's offset), sessions are stored under ``session_key_prefix + pid`` for
    ``max_disconnection_duration``, and a socket recovers on any server of the cluster with the
    broadcasts it missed, as long as the stream still holds the entry of its offset.

    Args:
        namespace: the namespace.
        url: Redis URL; ignored with ``bus``.
        stream_name: the stream's key (Node's ``streamName``).
        max_len: the stream's approximate bound (``XADD MAXLEN ~``).
        read_count: the most entries one XREAD reads (Node's ``readCount``).
        session_key_prefix: the prefix of the sessions' keys (Node's ``sessionKeyPrefix``).
        channel_prefix: the prefix of the pub/sub channels (Node's ``channelPrefix``).
        block_time: seconds one XREAD blocks (Node's ``blockTimeInMs`` / 1000).
        request_timeout: as ``RedisAdapter``'s.
        publish_timeout: as ``RedisAdapter``'s; it also bounds each XADD.
        reconnect_delay: as ``RedisAdapter``'s.
        reconnect_delay_max: as ``RedisAdapter``'s.
        max_handler_tasks: as ``RedisAdapter``'s.
        max_pending_publishes: as ``RedisAdapter``'s.
        bus: the server's shared bus (the factory passes it).
        reader: the server's shared stream reader (the factory passes it).
    """

    def __init__(
        self,
        namespace: NamespaceView,
        *,
        url: str = DEFAULT_URL,
        stream_name: str = DEFAULT_STREAM_NAME,
        max_len: int = DEFAULT_MAX_LEN,
        read_count: int = DEFAULT_READ_COUNT,
        session_key_prefix: str = DEFAULT_SESSION_KEY_PREFIX,
        channel_prefix: str = DEFAULT_KEY,
        block_time: float = DEFAULT_BLOCK_TIME,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
        reconnect_delay_max: float = DEFAULT_RECONNECT_DELAY_MAX,
        max_handler_tasks: int = DEFAULT_MAX_HANDLER_TASKS,
        max_pending_publishes: int = DEFAULT_MAX_PENDING_PUBLISHES,
        bus: RedisBus | None = None,
        reader: StreamReader | None = None,
    ) -> None:
        check_stream_options(max_len=max_len, read_count=read_count, block_time=block_time)
        super().__init__(
            namespace,
            url=url,
            key=channel_prefix,
            request_timeout=request_timeout,
            publish_timeout=publish_timeout,
            reconnect_delay=reconnect_delay,
            reconnect_delay_max=reconnect_delay_max,
            max_handler_tasks=max_handler_tasks,
            max_pending_publishes=max_pending_publishes,
            bus=bus,
        )
        wire = self.wire
        assert isinstance(wire, StreamsWire)
        self._wire = wire
        self.stream_name = stream_name
        self.max_len = max_len
        self.session_key_prefix = session_key_prefix
        self._stream = stream_name.encode()
        self._uid_b = self.uid.encode()
        self._own_reader: StreamReader | None = None
        if reader is None:
            reader = self._own_reader = StreamReader(
                self.url,
                stream_name,
                read_count=read_count,
                block_time=block_time,
                reconnect_delay=reconnect_delay,
                reconnect_delay_max=reconnect_delay_max,
            )
        self._reader = reader
        self._reader.attach(namespace.name, self._on_entry)
        # Our latest broadcasts' entry ids, once delivered here, numbered in delivery order (a replay
        # gives a recovering socket those delivered before it started).
        self._own_delivered: OrderedDict[str, int] = OrderedDict()
        self._own_count = 0
        self._own_max = (0, 0)
        # The restores under way: what is delivered meanwhile, for their sockets.
        self._capturing: list[_Capture] = []
        self._counts = dict.fromkeys(_STREAM_COUNTERS, 0)
        self._restores = trio.Semaphore(MAX_CONCURRENT_RESTORES)
        self._replayable: OrderedDict[str, tuple[Packet, BroadcastOptions] | None] = OrderedDict()

    def _new_wire(
        self, key: str, nsp: str, *, sharded: bool, subscription_mode: str, specific_response_channel: bool
    ) -> Wire:
        return StreamsWire(key, nsp)

    @classmethod
    def factory(  # type: ignore[override]
        cls,
        url: str = DEFAULT_URL,
        *,
        stream_name: str = DEFAULT_STREAM_NAME,
        max_len: int = DEFAULT_MAX_LEN,
        read_count: int = DEFAULT_READ_COUNT,
        session_key_prefix: str = DEFAULT_SESSION_KEY_PREFIX,
        **options: Any,
    ) -> RedisStreamsAdapterFactory[RedisStreamsAdapter]:
        """The ``adapter=`` argument of ``Server``: one RedisStreamsAdapter per namespace, on one shared
        bus and stream reader.

        Args:
            url: Redis URL.
            stream_name: the stream's key.
            max_len: the stream's approximate bound (``XADD MAXLEN ~``).
            read_count: entries per XREAD.
            session_key_prefix: the prefix of the sessions' keys.
            **options: the other keyword arguments of ``RedisStreamsAdapter``.

        Raises:
            ImportError: coredis or msgpack is missing (the ``redis`` extra: the message says how to get it).
            ValueError: an invalid option.
        """
        return RedisStreamsAdapterFactory(
            cls,
            url,
            stream_name=stream_name,
            max_len=max_len,
            read_count=read_count,
            session_key_prefix=session_key_prefix,
            **options,
        )

    # -- observability -----------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """The RedisAdapter's counters (``received``, ``ignored`` and ``invalid`` count the stream's
        entries too), and: stream_received, stream_ignored, stream_invalid (the entries of this
        namespace), sessions_persisted, sessions_restored, sessions_missing (a pid or offset not
        found), replayed_entries (entries read to restore sessions), stream_connected (1 or 0)."""
        stats = super().stats()
        counts = self._counts
        stats["received"] += counts["stream_received"]
        stats["ignored"] += counts["stream_ignored"]
        stats["invalid"] += counts["stream_invalid"]
        stats.update(counts)
        stats["stream_connected"] = int(self._reader.connected)
        return stats

    # -- the connection ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The RedisAdapter's ``run``, and this namespace's share of the stream reader (with a reader
        of its own, run here too).

        Cancellation: the namespace stops receiving the stream's entries.
        """
        self._reader.attach(self.nsp.name, self._on_entry)
        try:
            if self._own_reader is None:
                await super().run(task_status=task_status)
                return
            async with trio.open_nursery() as nursery:
                await nursery.start(self._own_reader.run)
                await super().run(task_status=task_status)
        finally:
            self._reader.detach(self.nsp.name, self._on_entry)

    def _keeps_offset(self, packet: Packet, opts: BroadcastOptions) -> bool:
        """Whether ``packet`` gets its offset: recovery on, an EVENT without ack id, not volatile."""
        return (
            self.nsp.recovery is not None
            and packet.type == PacketType.EVENT
            and packet.ack_id is None
            and not opts.flags.volatile
        )

    async def _on_entry(self, entry_id: str, fields: Mapping[bytes, bytes]) -> None:
        """One entry of the stream for this namespace, in stream order; never raises."""
        counts = self._counts
        counts["stream_received"] += 1
        try:
            envelope = self._wire.decode_entry(fields)
        except MessageError as exc:
            counts["stream_invalid"] += 1
            logger.debug("redis streams adapter %s: invalid entry %s: %s", self.uid, entry_id, exc)
            return
        if envelope is None or envelope.uid == self.uid:
            counts["stream_ignored"] += 1
            return
        message = envelope.message
        try:
            if isinstance(message, Broadcast):
                packet = message.packet
                if self._keeps_offset(packet, message.opts):
                    packet = _with_offset(packet, entry_id)
                    if self._capturing:
                        self._capture(packet, message.opts)
                await self._local.deliver(Encoded.of(packet), message.opts)
            else:
                await self._inbound.handle(envelope)
        except Exception:
            counts["stream_invalid"] += 1
            logger.exception("redis streams adapter %s: entry %s failed", self.uid, entry_id)

    # -- operations --------------------------------------------------------------------------------
    async def _xadd(self, command: Command) -> str:
        """Add ``command``'s entry to the stream; its id. Raises: AdapterError."""
        fields = self._wire.entry(command)
        replies = await self._port.call([b"XADD", self._stream, b"MAXLEN", b"~", self.max_len, b"*", *fields])
        entry_id = replies[0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def _publish(self, command: Command) -> None:
        """Joins, leaves and disconnects (and broadcasts) go through the stream; the rest by pub/sub."""
        if isinstance(command, STREAM_COMMANDS):
            await self._xadd(command)
        else:
            await super()._publish(command)

    async def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Add the broadcast to the stream, then deliver locally (unless ``.local``); with recovery on,
        the packet's arguments end with its entry id.

        Raises:
            AdapterError: Redis failed (local delivery has happened, without an offset).
        """
        if opts.flags.local:
            await self._local.deliver(Encoded.of(packet), opts)
            return
        command = Broadcast(packet, opts)
        if not self._keeps_offset(packet, opts):
            await self._local.deliver(Encoded.of(packet), opts)
            self._delivered_own(await self._xadd(command))
            return
        try:
            offset = await self._xadd(command)
        except AdapterError:
            await self._local.deliver(Encoded.of(packet), opts)
            raise
        self._delivered_own(offset)  # no checkpoint before the delivery picks its targets
        packet = _with_offset(packet, offset)
        if self._capturing:
            self._capture(packet, opts)
        await self._local.deliver(Encoded.of(packet), opts)

    def _delivered_own(self, entry_id: str) -> None:
        """Our entry ``entry_id`` is being delivered here now (no checkpoint before it picks targets)."""
        delivered = self._own_delivered
        delivered[entry_id] = self._own_count
        self._own_count += 1
        if len(delivered) > OWN_DELIVERED:
            delivered.popitem(last=False)
        self._own_max = max(self._own_max, offset_key(entry_id))

    def _own_delivered_before(self, entry_id: str, key: tuple[int, int], count: int) -> bool:
        """Whether our entry ``entry_id`` was delivered here before the ``count``-th of ours (older than
        what is remembered: yes)."""
        delivered = self._own_delivered
        number = delivered.get(entry_id)
        if number is not None:
            return number < count
        if len(delivered) < OWN_DELIVERED:
            return False
        oldest = next(iter(delivered))
        return key < offset_key(oldest)

    def _capture(self, packet: Packet, opts: BroadcastOptions) -> None:
        """A broadcast (with its offset) is being delivered here: the restores under way keep it."""
        for capture in self._capturing:
            if replays_to(capture.rooms, opts):
                if len(capture.packets) < capture.limit:
                    capture.packets.append(packet)
                else:
                    capture.overflow = True

    # -- connection state recovery -----------------------------------------------------------------
    async def persist_session(self, session: PersistedSession) -> None:
        """Store ``session`` for ``recovery.max_disconnection_duration``: ``SET <prefix><pid>
        base64(msgpack({sid, pid, rooms, data})) PX <ms>`` (nothing when recovery is off).

        Raises:
            AdapterError: Redis failed, or ``session.data`` cannot be stored (msgpack cannot carry it).
        """
        recovery = self.nsp.recovery
        if recovery is None:
            await trio.lowlevel.checkpoint()
            return
        try:
            value = encode_session(session.sid, session.pid, session.rooms, session.data)
        except TypeError as exc:
            raise AdapterError(str(exc)) from None
        ttl = max(1, round(recovery.max_disconnection_duration * 1000))
        await self._port.call([b"SET", self.session_key_prefix + session.pid, value, b"PX", ttl])
        self._counts["sessions_persisted"] += 1

    async def restore_session(self, pid: str, offset: str) -> RestoredSession | None:
        """The session ``pid``, taken out of Redis (``GET`` and ``DEL`` in one ``MULTI``: a pid is
        restored once at most), with the broadcasts after ``offset`` that reached its rooms; None when
        recovery is off, the offset is not an entry id, or the session or the offset's entry (trimmed)
        is gone.

        The replay reads the stream from the entry after ``offset`` up to the last entry this server
        has delivered (``XRANGE`` by pages of ``REPLAY_PAGE``): never more than the stream holds since
        the offset; what comes later reaches the socket live once it has joined its rooms, which the
        caller does with no checkpoint after this returns.

        Raises:
            AdapterError: Redis failed.
        """
        if self.nsp.recovery is None or not is_offset(offset):
            await trio.lowlevel.checkpoint()
            return None
        async with self._restores:
            return await self._restore(pid, offset)

    async def _restore(self, pid: str, offset: str) -> RestoredSession | None:
        key = self.session_key_prefix + pid
        replies = await self._port.call(
            [b"MULTI"],
            [b"GET", key],
            [b"DEL", key],
            [b"EXEC"],
            [b"XRANGE", self._stream, offset, offset],
        )
        executed, at_offset = replies[3], replies[4]
        raw = executed[0] if isinstance(executed, list | tuple) and executed else None
        if not isinstance(raw, bytes) or not stream_entries(at_offset):
            self._counts["sessions_missing"] += 1
            return None
        try:
            sid, _pid, rooms, data = decode_session(raw)
        except MessageError as exc:
            self._counts["stream_invalid"] += 1
            logger.info("redis streams adapter %s: invalid session %r: %s", self.uid, pid, exc)
            return None
        missed = await self._replay(offset, frozenset(rooms))
        if missed is None:
            self._counts["sessions_missing"] += 1
            return None
        self._counts["sessions_restored"] += 1
        return RestoredSession(sid, pid, rooms, data, missed)

    async def _replay(self, offset: str, rooms: frozenset[str]) -> list[Packet] | None:
        """The broadcasts after ``offset`` to ``rooms`` delivered here before the socket is back: those
        delivered before the replay started (read with XRANGE: the other servers' up to the reader's
        position, ours those delivered), then those delivered while it ran (kept as they went out).
        The caller joins the socket to its rooms with no checkpoint after this returns: any later
        delivery reaches it live. None when more than ``2 * max_len + REPLAY_SLACK`` entries would be
        replayed (a stream trimmed less than ours, by another server: the socket gets a new session
        rather than an unbounded replay)."""
        read = self._reader.last_id
        others = offset_key(read) if read is not None else (0, 0)
        own_count, end = self._own_count, max(others, self._own_max)
        capture = _Capture(rooms, 2 * self.max_len + REPLAY_SLACK)
        self._capturing.append(capture)
        try:
            missed: list[Packet] = []
            budget = 2 * self.max_len + REPLAY_SLACK
            fetched = offset_key(offset)
            end_id = f"{end[0]}-{end[1]}"
            while fetched < end:
                start = f"{fetched[0]}-{fetched[1] + 1}"
                replies = await self._port.call(
                    [b"XRANGE", self._stream, start, end_id, b"COUNT", REPLAY_PAGE]
                )
                entries = stream_entries(replies[0])
                self._counts["replayed_entries"] += len(entries)
                budget -= len(entries)
                if budget < 0:
                    return None
                for entry_id, fields in entries:
                    key = offset_key(entry_id)
                    if fields.get(b"uid") == self._uid_b:
                        if not self._own_delivered_before(entry_id, key, own_count):
                            continue
                    elif key > others:
                        continue
                    decoded = self._decoded(entry_id, fields)
                    if decoded is not None and replays_to(rooms, decoded[1]):
                        missed.append(decoded[0])
                if len(entries) < REPLAY_PAGE:
                    break
                fetched = offset_key(entries[-1][0])
            if capture.overflow or len(capture.packets) > budget:
                return None
            return missed + capture.packets
        finally:
            self._capturing.remove(capture)

    def _decoded(
        self, entry_id: str, fields: Mapping[bytes, bytes]
    ) -> tuple[Packet, BroadcastOptions] | None:
        """``StreamsWire.replayable`` of an entry, decoded once for every replay (a bounded cache)."""
        cache = self._replayable
        if entry_id in cache:
            return cache[entry_id]
        try:
            found = self._wire.replayable(entry_id, fields)
        except MessageError:
            self._counts["stream_invalid"] += 1
            found = None
        cache[entry_id] = found
        if len(cache) > REPLAY_CACHE:
            cache.popitem(last=False)
        return found


class _Capture:
    """What is delivered, while a restore runs, to the rooms of its socket."""

    __slots__ = ("limit", "overflow", "packets", "rooms")

    def __init__(self, rooms: frozenset[str], limit: int) -> None:
        self.rooms = rooms
        self.limit = limit
        self.overflow = False
        self.packets: list[Packet] = []


def _with_offset(packet: Packet, offset: str) -> Packet:
    return Packet(packet.type, packet.nsp, [*packet.data, offset], packet.ack_id)
