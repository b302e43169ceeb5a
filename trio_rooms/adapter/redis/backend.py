"""The coredis side of the Redis adapter: ``open_link`` connects one publishing and one subscribing
connection (a ``RedisLink``), which publishes batches, counts subscribers, subscribes and reads.

Rule: coredis is imported here only, and lazily; every failure of Redis, of the network or of coredis
leaves this module as ``AdapterError`` (the one mapping table is ``map_redis_errors``). Reconnection,
resubscription and routing are the bus's (``bus.py``), never coredis' (its retries are off).

Classic mode reads its subscriber connection's push messages itself (coredis' ``PubSub`` would hand
each message through one more task and queue); sharded mode uses coredis' ``ShardedPubSub``, which
keeps one connection per shard.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import aclosing, asynccontextmanager, contextmanager
from functools import cache
from types import ModuleType
from typing import Any, Final

import trio

from ...errors import AdapterError
from ...protocol.cluster.messages import INSTALL_HINT

__all__ = ["Dispatch", "RedisLink", "describe_error", "import_coredis", "map_redis_errors", "open_link"]

DEFAULT_CONNECT_TIMEOUT: Final = 2.0
#: Seconds between the PINGs that check a quiet subscriber connection (as coredis' PubSub does).
KEEPALIVE_INTERVAL: Final = 15.0

#: ``dispatch(pattern or None, channel, data)``: what the link does with each message (never raises).
Dispatch = Callable[[bytes | None, bytes, bytes], Awaitable[None]]

logger = logging.getLogger("trio_rooms.redis")


@cache
def import_coredis() -> ModuleType:
    """The coredis module.

    Raises:
        ImportError: coredis is not installed (the message says what to install).
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
        raise AdapterError(f"{what}: {describe_error(exc)}") from exc


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` (of the one exception inside nested groups of one)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class RedisLink(ABC):
    """One connected session: a publishing connection (batches, subscriber counts) and a subscriber.

    Args:
        client: the coredis client (``Redis`` or ``RedisCluster``).
    """

    sharded: bool

    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def usable(self) -> bool:
        """False once the publishing connection is known to be gone."""
        return True

    @abstractmethod
    async def send_batch(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """PUBLISH (or SPUBLISH) each ``(channel, data)``, in order, as one pipeline: one write, and
        the replies awaited together.

        Raises:
            AdapterError: any of them failed (the others may or may not have gone).

        Cancellation: the publishing connection may be closed (coredis cannot tell which replies
        are whose any more); then the link goes down.
        """

    async def numsub(self, channel: str) -> int:
        """PUBSUB NUMSUB (or SHARDNUMSUB) of ``channel``. Raises: AdapterError."""
        with map_redis_errors("PUBSUB NUMSUB failed"):
            if self.sharded:
                counts = await self._client.pubsub_shardnumsub(channel)
            else:
                counts = await self._client.pubsub_numsub(channel)
        return sum(int(value) for value in dict(counts).values())

    async def call_raw(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` (each ``[name, *args]``) on the publishing connection as one pipeline,
        written at once (nothing else between them: a MULTI ... EXEC stays whole); return one reply
        per command, an error reply as its exception.

        Raises:
            AdapterError: the pipeline as a whole failed.
        """
        raise AdapterError("this link runs no commands")  # pragma: no cover - sharded links

    @abstractmethod
    async def subscribe(self, *channels: str) -> None:
        """SUBSCRIBE (or SSUBSCRIBE) ``channels``, done when Redis has. Raises: AdapterError."""

    @abstractmethod
    async def unsubscribe(self, *channels: str) -> None:
        """UNSUBSCRIBE (or SUNSUBSCRIBE) ``channels``. Raises: AdapterError."""

    async def psubscribe(self, *patterns: str) -> None:
        """PSUBSCRIBE ``patterns`` (classic mode only). Raises: AdapterError."""
        await trio.lowlevel.checkpoint()
        if patterns:
            raise AdapterError("sharded pub/sub has no patterns")

    async def punsubscribe(self, *patterns: str) -> None:
        """PUNSUBSCRIBE ``patterns`` (classic mode only). Raises: AdapterError."""
        await trio.lowlevel.checkpoint()
        if patterns:
            raise AdapterError("sharded pub/sub has no patterns")

    @abstractmethod
    async def read(self, dispatch: Dispatch) -> None:
        """Hand every published message to ``dispatch``, in order, until the subscriber fails.

        Raises:
            AdapterError: the subscriber connection is gone.
        """


class ClassicLink(RedisLink):
    """Classic pub/sub on one Redis: the client's two connections, one subscribed, one publishing.

    Args:
        client: the ``coredis.Redis`` client.
        subscriber: its connection that subscribes (held, never back in the pool).
        publisher: its other connection (in the pool: NUMSUB multiplexes on it too).
    """

    sharded = False

    def __init__(self, client: Any, subscriber: Any, publisher: Any) -> None:
        super().__init__(client)
        self._subscriber = subscriber
        self._publisher = publisher

    @property
    def usable(self) -> bool:
        return bool(self._publisher.usable)

    async def send_batch(self, messages: Sequence[tuple[str, bytes]]) -> None:
        # What coredis' non-transactional pipeline does on one connection, without its bookkeeping.
        with map_redis_errors(f"publish of {len(messages)} messages failed"):
            client = self._client
            results = await self._publisher.create_request_batch(
                [client.publish(channel, data) for channel, data in messages]
            )
        for result in results:
            if isinstance(result, BaseException):
                raise AdapterError(f"publish failed: {describe_error(result)}") from result

    async def call_raw(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        client = self._client
        with map_redis_errors(f"a pipeline of {len(commands)} commands failed"):
            requests = [client.create_request(c[0], *c[1:], callback=_raw) for c in commands]
            return list(await self._publisher.create_request_batch(requests))

    async def _command(self, command: bytes, names: Sequence[str]) -> None:
        """Send a subscription command and wait until Redis has run it (a PING answered after it)."""
        if names:
            with map_redis_errors(f"{command.decode()} failed"):
                self._subscriber.send_command(command, *names)
                await self._subscriber.create_request(b"PING", decode=False)

    async def subscribe(self, *channels: str) -> None:
        await self._command(b"SUBSCRIBE", channels)

    async def unsubscribe(self, *channels: str) -> None:
        await self._command(b"UNSUBSCRIBE", channels)

    async def psubscribe(self, *patterns: str) -> None:
        await self._command(b"PSUBSCRIBE", patterns)

    async def punsubscribe(self, *patterns: str) -> None:
        await self._command(b"PUNSUBSCRIBE", patterns)

    async def read(self, dispatch: Dispatch) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keepalive)
            with map_redis_errors("the subscriber connection failed"):
                async with aclosing(self._subscriber.push_messages) as pushes:
                    async for push in pushes:
                        kind = push[0]
                        if kind == b"pmessage":
                            await dispatch(push[1], push[2], push[3])
                        elif kind == b"message":
                            await dispatch(None, push[1], push[2])
                        # else: a subscription's confirmation (PING made sure of it)
            raise AdapterError("the subscriber connection ended")

    async def _keepalive(self) -> None:
        """PING the subscriber now and then, so that a dead connection is noticed even when quiet."""
        while True:
            await trio.sleep(KEEPALIVE_INTERVAL)
            with trio.move_on_after(KEEPALIVE_INTERVAL) as scope, map_redis_errors("keepalive failed"):
                await self._subscriber.create_request(b"PING", decode=False)
            if scope.cancelled_caught:
                raise AdapterError(f"the subscriber did not answer a PING in {KEEPALIVE_INTERVAL} s")


class ShardedLink(RedisLink):
    """Sharded pub/sub on a Redis Cluster: coredis' cluster client and ``ShardedPubSub``.

    Args:
        client: the ``coredis.RedisCluster`` client.
        pubsub: its ``ShardedPubSub`` (a connection per shard).
    """

    sharded = True

    def __init__(self, client: Any, pubsub: Any) -> None:
        super().__init__(client)
        self._pubsub = pubsub

    async def send_batch(self, messages: Sequence[tuple[str, bytes]]) -> None:
        # A cluster pipeline sends each shard its part; a channel's messages stay in order on its shard.
        with map_redis_errors(f"publish of {len(messages)} messages failed"):
            async with self._client.pipeline(transaction=False) as pipe:
                for channel, data in messages:
                    pipe.spublish(channel, data)

    async def subscribe(self, *channels: str) -> None:
        for channel in channels:  # one SSUBSCRIBE per channel: each may live on another shard
            with map_redis_errors("subscribe failed"):
                await self._pubsub.subscribe(channel)

    async def unsubscribe(self, *channels: str) -> None:
        if channels:
            with map_redis_errors("unsubscribe failed"):
                await self._pubsub.unsubscribe(*channels)

    async def read(self, dispatch: Dispatch) -> None:
        while True:
            with map_redis_errors("the subscriber connection failed"):
                message = await self._pubsub.get_message()
            if message is None or message["type"] not in ("message", "smessage"):
                continue
            channel, data = message["channel"], message["data"]
            if isinstance(channel, str):
                channel = channel.encode()
            if isinstance(data, str):
                data = data.encode()
            await dispatch(None, channel, data)


def _raw(response: Any, **_options: Any) -> Any:
    return response


@asynccontextmanager
async def open_link(
    url: str, *, sharded: bool, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> AsyncIterator[RedisLink]:
    """Connect a publishing and a subscribing connection to ``url`` (a cluster node's URL when
    ``sharded``, then one of each per shard).

    coredis retries nothing here: the adapter owns reconnection and resubscription.

    Raises:
        AdapterError: the connection failed, on entry or (from the block's exit) while it was open.

    Cancellation: the connections are closed.
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
                yield ShardedLink(cluster, ps)
        else:
            # Two connections, no more: the subscriber (held), then the one that publishes (back in
            # the pool, where NUMSUB finds it: coredis multiplexes); the pool opens no third one.
            client = coredis.Redis.from_url(
                url, retry_policy=no_retry, connect_timeout=connect_timeout, max_connections=2
            )
            async with client:
                pool = client.connection_pool
                subscriber = await pool.get_connection()
                publisher = await pool.get_connection()
                pool.release(publisher)
                yield ClassicLink(client, subscriber, publisher)


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
