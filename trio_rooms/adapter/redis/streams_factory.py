"""``RedisStreamsAdapter.factory(...)``: Server's ``adapter=``, one RedisStreamsAdapter per namespace on
one shared bus (pub/sub and commands) and one shared stream reader.

Rule: as ``factory.py``: the factory owns what the server's namespaces share and the server starts its
``run`` once, before the namespaces' adapters (``adapter.base.factory_background_work``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

import trio

from ..base import Adapter, NamespaceView
from .bus import DEFAULT_MAX_PENDING_PUBLISHES
from .factory import (
    DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_RECONNECT_DELAY,
    DEFAULT_RECONNECT_DELAY_MAX,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_URL,
    shared_bus,
)
from .reader import DEFAULT_BLOCK_TIME, StreamReader

__all__ = ["RedisStreamsAdapterFactory", "check_stream_options"]

DEFAULT_STREAM_NAME: Final = "socket.io"
DEFAULT_MAX_LEN: Final = 10_000
DEFAULT_READ_COUNT: Final = 100
DEFAULT_SESSION_KEY_PREFIX: Final = "sio:session:"


def check_stream_options(*, max_len: int, read_count: int, block_time: float) -> None:
    """Raises: ValueError: an invalid stream option."""
    if max_len < 1:
        raise ValueError("max_len must be at least 1")
    if read_count < 1:
        raise ValueError("read_count must be at least 1")
    if not block_time > 0:
        raise ValueError("block_time must be positive")


S = TypeVar("S", bound=Adapter)
"""The adapter class a factory builds (``RedisStreamsAdapter``, or a subclass)."""


class RedisStreamsAdapterFactory(Generic[S]):
    """What ``RedisStreamsAdapter.factory(...)`` returns: ``Server``'s ``adapter=``.

    Called once per namespace, it builds that namespace's ``RedisStreamsAdapter`` on the factory's
    ``bus`` and ``reader``: a server has one publishing, one subscribing and one reading connection
    to Redis whatever its number of namespaces. Given to several servers of one process, a namespace
    whose name the factory serves already gets a bus and a reader of its own (as ``RedisAdapter``'s).

    Args:
        adapter_class: ``RedisStreamsAdapter`` or a subclass.
        url: Redis URL.
        stream_name: as ``RedisStreamsAdapter``'s.
        max_len: as ``RedisStreamsAdapter``'s.
        read_count: as ``RedisStreamsAdapter``'s.
        session_key_prefix: as ``RedisStreamsAdapter``'s.
        block_time: as ``RedisStreamsAdapter``'s.
        request_timeout: as ``RedisAdapter``'s.
        publish_timeout: as ``RedisAdapter``'s.
        reconnect_delay: as ``RedisAdapter``'s.
        reconnect_delay_max: as ``RedisAdapter``'s.
        max_pending_publishes: as ``RedisAdapter``'s.
        **options: the other keyword arguments of ``RedisStreamsAdapter`` (given to each namespace's
            adapter).

    Raises:
        ImportError: coredis or msgpack is missing (the ``redis`` extra: the message says how to get it).
        ValueError: an invalid option.
    """

    def __init__(
        self,
        adapter_class: Callable[..., S],
        url: str = DEFAULT_URL,
        *,
        stream_name: str = DEFAULT_STREAM_NAME,
        max_len: int = DEFAULT_MAX_LEN,
        read_count: int = DEFAULT_READ_COUNT,
        session_key_prefix: str = DEFAULT_SESSION_KEY_PREFIX,
        block_time: float = DEFAULT_BLOCK_TIME,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
        reconnect_delay_max: float = DEFAULT_RECONNECT_DELAY_MAX,
        max_pending_publishes: int = DEFAULT_MAX_PENDING_PUBLISHES,
        **options: Any,
    ) -> None:
        check_stream_options(max_len=max_len, read_count=read_count, block_time=block_time)
        self._adapter_class = adapter_class
        self.bus = shared_bus(
            url,
            sharded=False,
            subscription_mode="static",
            request_timeout=request_timeout,
            publish_timeout=publish_timeout,
            reconnect_delay=reconnect_delay,
            reconnect_delay_max=reconnect_delay_max,
            max_pending_publishes=max_pending_publishes,
        )
        self.reader = StreamReader(
            url,
            stream_name,
            read_count=read_count,
            block_time=block_time,
            reconnect_delay=reconnect_delay,
            reconnect_delay_max=reconnect_delay_max,
        )
        self._options: dict[str, Any] = {
            "url": url,
            "stream_name": stream_name,
            "max_len": max_len,
            "read_count": read_count,
            "session_key_prefix": session_key_prefix,
            "block_time": block_time,
            "request_timeout": request_timeout,
            "publish_timeout": publish_timeout,
            "reconnect_delay": reconnect_delay,
            "reconnect_delay_max": reconnect_delay_max,
            "max_pending_publishes": max_pending_publishes,
            **options,
        }

    def __call__(self, namespace: NamespaceView) -> S:
        """The adapter of ``namespace``: on the shared bus and reader, or on its own when they serve
        that namespace already (the factory is another server's too)."""
        if self.bus.serves(namespace.name) or self.reader.serves(namespace.name):
            return self._adapter_class(namespace, **self._options)
        return self._adapter_class(namespace, bus=self.bus, reader=self.reader, **self._options)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the shared bus and stream reader: the server starts it once, before the adapters.

        Reports started once both have made their first connection attempt.
        """
        async with trio.open_nursery() as nursery:
            await nursery.start(self.bus.run)
            await nursery.start(self.reader.run)
            task_status.started()
