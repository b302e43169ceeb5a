"""The Redis connections of one RedisAdapter, on coredis: a publisher and a subscriber, opened together.

Rule: coredis is imported here only, and lazily; every failure of Redis, of the network or of coredis
leaves this module as ``AdapterError`` (the one mapping table is ``map_redis_errors``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from types import ModuleType
from typing import Any, Final

import trio

from ...errors import AdapterError
from ...protocol.cluster.messages import INSTALL_HINT

__all__ = ["RedisLink", "import_coredis", "map_redis_errors", "open_link"]

DEFAULT_CONNECT_TIMEOUT: Final = 2.0

logger = logging.getLogger("trio_rooms.redis")


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
        with map_redis_errors("psubscribe failed"):
            await self._pubsub.psubscribe(*patterns)

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
