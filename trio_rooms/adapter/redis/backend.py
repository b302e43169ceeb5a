"""The Redis side of a RedisAdapter, on coredis: ``RedisBus`` keeps a publisher and a subscriber
connected (``RedisLink``, opened together), subscribed to what is wanted, and reconnects.

Rule: coredis is imported here only, and lazily; every failure of Redis, of the network or of coredis
leaves this module as ``AdapterError`` (the one mapping table is ``map_redis_errors``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from types import ModuleType
from typing import Any, Final

import trio

from ..._backoff import Backoff
from ...errors import AdapterError
from ...protocol.cluster.messages import INSTALL_HINT

__all__ = ["RedisBus", "RedisLink", "import_coredis", "map_redis_errors", "open_link"]

DEFAULT_CONNECT_TIMEOUT: Final = 2.0

logger = logging.getLogger("trio_rooms.redis")

#: ``receive(channel, data)``: what the bus does with each message (it must not raise).
Receiver = Callable[[bytes, bytes], Awaitable[None]]


@cache
def import_coredis() -> ModuleType:
    """The coredis module.

    Raises:
        ImportError: coredis is not installed (the message says ``pip install trio-rooms[redis]``).
    """
    try:
        import coredis
        import coredis.retry
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return coredis


@contextmanager
def map_redis_errors(what: str) -> Iterator[None]:
    """Re-raise any failure of the block (Redis, network, coredis, a group of them) as AdapterError."""
    try:
        yield
    except AdapterError:
        raise
    except Exception as exc:  # the boundary: coredis raises its own errors, OSError and groups
        raise AdapterError(f"{what}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class RedisLink:
    """One connected session: publishing, counting subscribers, subscribing, reading messages.

    Args:
        client: the coredis client (``Redis`` or ``RedisCluster``).
        pubsub: its subscriber (``PubSub`` or ``ShardedPubSub``).
        sharded: SPUBLISH/SSUBSCRIBE/SHARDNUMSUB instead of PUBLISH/SUBSCRIBE/NUMSUB.
    """

    def __init__(self, client: Any, pubsub: Any, *, sharded: bool) -> None:
        self._client = client
        self._pubsub = pubsub
        self.sharded = sharded
        # Publishes leave one at a time, so that the other servers see them in emission order.
        self._publish_lock = trio.StrictFIFOLock()

    async def publish(self, channel: str, data: bytes) -> None:
        """PUBLISH (or SPUBLISH). Raises: AdapterError. Cancellation: the message may or may not go."""
        async with self._publish_lock:
            with map_redis_errors(f"publish to {channel!r} failed"):
                if self.sharded:
                    await self._client.spublish(channel, data)
                else:
                    await self._client.publish(channel, data)

    async def numsub(self, channel: str) -> int:
        """PUBSUB NUMSUB (or SHARDNUMSUB) of ``channel``. Raises: AdapterError."""
        with map_redis_errors("PUBSUB NUMSUB failed"):
            if self.sharded:
                counts = await self._client.pubsub_shardnumsub(channel)
            else:
                counts = await self._client.pubsub_numsub(channel)
        return sum(int(value) for value in dict(counts).values())

    async def subscribe(self, *channels: str) -> None:
        """SUBSCRIBE (or SSUBSCRIBE) ``channels``. Raises: AdapterError."""
        if channels:
            with map_redis_errors("subscribe failed"):
                await self._pubsub.subscribe(*channels)

    async def unsubscribe(self, *channels: str) -> None:
        """UNSUBSCRIBE (or SUNSUBSCRIBE) ``channels``. Raises: AdapterError."""
        if channels:
            with map_redis_errors("unsubscribe failed"):
                await self._pubsub.unsubscribe(*channels)

    async def psubscribe(self, *patterns: str) -> None:
        """PSUBSCRIBE ``patterns`` (classic mode only). Raises: AdapterError."""
        if patterns:
            with map_redis_errors("psubscribe failed"):
                await self._pubsub.psubscribe(*patterns)

    async def punsubscribe(self, *patterns: str) -> None:
        """PUNSUBSCRIBE ``patterns`` (classic mode only). Raises: AdapterError."""
        if patterns:
            with map_redis_errors("punsubscribe failed"):
                await self._pubsub.punsubscribe(*patterns)

    async def next_message(self) -> tuple[bytes, bytes]:
        """The next published message: ``(channel, data)``.

        Raises:
            AdapterError: the subscriber connection is gone (coredis also ends the whole link then).
        """
        while True:
            with map_redis_errors("the subscriber connection failed"):
                message = await self._pubsub.get_message()
            if message is None or message["type"] not in ("message", "pmessage", "smessage"):
                continue
            channel, data = message["channel"], message["data"]
            if isinstance(channel, str):
                channel = channel.encode()
            if isinstance(data, str):
                data = data.encode()
            return channel, data


@asynccontextmanager
async def open_link(
    url: str, *, sharded: bool, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> AsyncIterator[RedisLink]:
    """Connect a publisher and a subscriber to ``url`` (a cluster node's URL when ``sharded``).

    coredis retries nothing here: the adapter owns reconnection and resubscription.

    Raises:
        AdapterError: the connection failed, on entry or (from the block's exit) while it was open.

    Cancellation: both connections are closed.
    """
    coredis = import_coredis()
    no_retry = coredis.retry.NoRetryPolicy()
    with only_cancelled_when_cancelled(), map_redis_errors(f"Redis at {url} failed"):
        if sharded:
            cluster = coredis.RedisCluster.from_url(
                url, retry_policy=no_retry, connect_timeout=connect_timeout
            )
            async with (
                cluster,
                cluster.sharded_pubsub(retry_policy=None, ignore_subscribe_messages=True) as ps,
            ):
                yield RedisLink(cluster, ps, sharded=True)
        else:
            client = coredis.Redis.from_url(url, retry_policy=no_retry, connect_timeout=connect_timeout)
            async with client, client.pubsub(retry_policy=None, ignore_subscribe_messages=True) as ps:
                yield RedisLink(client, ps, sharded=False)


@contextmanager
def only_cancelled_when_cancelled() -> Iterator[None]:
    """When the block is cancelled, let only the cancellation out.

    coredis' sharded subscriber tears its per-shard tasks down on cancellation and some of them fail
    doing so (``ClosedResourceError``, ``ConnectionError``: their connection is already closed); they
    come out beside ``trio.Cancelled`` in an exception group, which would otherwise crash the server's
    nursery on a plain shutdown. Those teardown errors are logged and dropped.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        cancelled, rest = group.split(trio.Cancelled)
        if cancelled is None or rest is None:
            raise
        logger.debug("errors while closing the Redis connections (dropped): %r", rest)
        raise cancelled from None


class RedisBus:
    """One adapter's way to Redis: publish, count subscribers, and receive what its channels carry.

    ``run()`` connects, subscribes to every channel and pattern followed, hands each message to its
    receiver, and reconnects (capped jittered backoff) when the connection is lost, subscribing to
    everything again: nothing is left to the client library. ``follow``/``unfollow`` change what is
    subscribed, at once when connected (a task reconciles the subscriptions with them).

    Args:
        url: Redis URL (a cluster node's URL when ``sharded``).
        sharded: SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub) instead of PUBLISH/SUBSCRIBE.
        publish_timeout: the deadline of one publish or subscriber count.
        subscribe_timeout: the deadline of subscribing everything after a connection.
        reconnect_delay: the first delay before reconnecting; doubled per failure, jittered.
        reconnect_delay_max: the cap of that delay.
        name: who uses the bus, for the logs.
    """

    def __init__(
        self,
        url: str,
        *,
        sharded: bool,
        publish_timeout: float,
        subscribe_timeout: float,
        reconnect_delay: float,
        reconnect_delay_max: float,
        name: str,
    ) -> None:
        self.url = url
        self.sharded = sharded
        self._publish_timeout = publish_timeout
        self._subscribe_timeout = subscribe_timeout
        self._backoff = Backoff(reconnect_delay, reconnect_delay_max)
        self._name = name
        self._link: RedisLink | None = None
        # What is wanted (with how many ask for it), by (is a pattern, channel or pattern).
        self._wanted: Counter[tuple[bool, str]] = Counter()
        # Wanted or unwanted since the live connection subscribed: the reconciling task looks at them.
        self._dirty: set[tuple[bool, str]] = set()
        self._changed = trio.Event()
        self._counters = dict.fromkeys(("published", "publish_errors", "connects", "disconnects"), 0)

    # -- observability -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether the bus is connected and subscribed now."""
        return self._link is not None

    def stats(self) -> dict[str, int]:
        """Counters: published, publish_errors, connects, disconnects."""
        return dict(self._counters)

    # -- what to subscribe to ----------------------------------------------------------------------
    def follow(self, channel: str) -> None:
        """Subscribe to ``channel`` (now if connected, and after every reconnection)."""
        self._want((False, channel), +1)

    def unfollow(self, channel: str) -> None:
        """Undo one ``follow(channel)``: unsubscribe once nobody follows it."""
        self._want((False, channel), -1)

    def follow_pattern(self, pattern: str) -> None:
        """PSUBSCRIBE ``pattern`` (classic pub/sub only), as ``follow`` does for a channel."""
        self._want((True, pattern), +1)

    def unfollow_pattern(self, pattern: str) -> None:
        """Undo one ``follow_pattern(pattern)``."""
        self._want((True, pattern), -1)

    def _want(self, key: tuple[bool, str], change: int) -> None:
        count = self._wanted[key] + change
        if count > 0:
            self._wanted[key] = count
        else:
            self._wanted.pop(key, None)
        self._dirty.add(key)
        self._changed.set()

    # -- the connection ----------------------------------------------------------------------------
    async def run(
        self, receive: Receiver, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, subscribe and hand every message to ``receive``; reconnect, forever.

        Reports started once the first attempt has succeeded or failed (a server starts while Redis
        is down, and its publishes raise ``AdapterError`` until Redis is back).

        Cancellation: the connections close.
        """
        started = False
        while True:
            try:
                async with open_link(self.url, sharded=self.sharded) as link:
                    subscribed = await self._subscribe_all(link)
                    self._link = link
                    self._counters["connects"] += 1
                    self._backoff.reset()
                    logger.info("redis adapter %s: subscribed", self._name)
                    if not started:
                        started = True
                        task_status.started()
                    async with trio.open_nursery() as session:
                        session.start_soon(self._reconcile, link, subscribed)
                        while True:
                            channel, data = await link.next_message()
                            await receive(channel, data)
            except Exception as exc:
                logger.warning("redis adapter %s: connection lost: %s", self._name, exc)
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

    async def _subscribe_all(self, link: RedisLink) -> set[tuple[bool, str]]:
        """Subscribe to everything wanted; return what that is (changes meanwhile stay dirty)."""
        self._dirty.clear()
        wanted = set(self._wanted)
        channels = [name for pattern, name in self._wanted if not pattern]
        patterns = [name for pattern, name in self._wanted if pattern]
        with trio.fail_after(self._subscribe_timeout):
            if self.sharded:
                for channel in channels:  # one SSUBSCRIBE per channel: each may live on another shard
                    await link.subscribe(channel)
            else:
                await link.subscribe(*channels)
            for pattern in patterns:
                await link.psubscribe(pattern)
        return wanted

    async def _reconcile(self, link: RedisLink, subscribed: set[tuple[bool, str]]) -> None:
        """Bring the link's subscriptions in line with what is wanted, whenever that changes."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            while self._dirty:
                key = self._dirty.pop()
                pattern, name = key
                if key in self._wanted and key not in subscribed:
                    await (link.psubscribe(name) if pattern else link.subscribe(name))
                    subscribed.add(key)
                elif key not in self._wanted and key in subscribed:
                    await (link.punsubscribe(name) if pattern else link.unsubscribe(name))
                    subscribed.discard(key)

    # -- publishing --------------------------------------------------------------------------------
    def _require_link(self) -> RedisLink:
        link = self._link
        if link is None:
            raise AdapterError(f"Redis at {self.url} is not connected")
        return link

    async def publish(self, message: tuple[str, bytes]) -> None:
        """PUBLISH (or SPUBLISH) ``(channel, data)`` under ``publish_timeout``; publishes leave in order.

        Raises:
            AdapterError: not connected, failed or too slow.

        Cancellation: the message may or may not have gone.
        """
        channel, data = message
        try:
            link = self._require_link()
        except AdapterError:
            self._counters["publish_errors"] += 1
            raise
        with trio.move_on_after(self._publish_timeout) as scope:
            try:
                await link.publish(channel, data)
            except AdapterError:
                self._counters["publish_errors"] += 1
                raise
        if scope.cancelled_caught:
            self._counters["publish_errors"] += 1
            raise AdapterError(f"publish to {channel!r} took over {self._publish_timeout} s")
        self._counters["published"] += 1

    async def numsub(self, channel: str) -> int:
        """How many connections subscribe to ``channel``: PUBSUB NUMSUB (or SHARDNUMSUB).

        Raises:
            AdapterError: not connected, failed or too slow.
        """
        link = self._require_link()
        with trio.move_on_after(self._publish_timeout):
            return await link.numsub(channel)
        raise AdapterError(f"PUBSUB NUMSUB took over {self._publish_timeout} s")
