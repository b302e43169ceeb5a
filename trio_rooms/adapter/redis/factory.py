"""``RedisAdapter.factory(...)``: Server's ``adapter=``, one RedisAdapter per namespace on one shared bus.

Rule: the factory owns the bus (one publishing and one subscribing connection per server, as Node's
``createAdapter(pub, sub)``); the server starts its ``run`` once, before the namespaces' adapters
(the contract of ``adapter.base.factory_background_work``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

import trio

from ...protocol.cluster.messages import import_msgpack
from ...protocol.cluster.wire import SUBSCRIPTION_MODES
from ..base import Adapter, NamespaceView
from .backend import import_coredis
from .bus import DEFAULT_MAX_PENDING_PUBLISHES, RedisBus

__all__ = ["RedisAdapterFactory", "check_options"]

DEFAULT_URL: Final = "redis://127.0.0.1:6379"
DEFAULT_KEY: Final = "socket.io"
DEFAULT_REQUEST_TIMEOUT: Final = 5.0
DEFAULT_PUBLISH_TIMEOUT: Final = 1.0
DEFAULT_RECONNECT_DELAY: Final = 0.05
#: The cap of the reconnection delay; it also bounds what this server can miss after Redis comes
#: back (the other servers, reconnected first, publish before this one has resubscribed).
DEFAULT_RECONNECT_DELAY_MAX: Final = 0.5


def check_options(
    *,
    subscription_mode: str,
    request_timeout: float,
    publish_timeout: float,
    reconnect_delay: float,
    reconnect_delay_max: float,
    max_pending_publishes: int,
) -> None:
    """Raises: ValueError: an invalid option (of ``RedisAdapter`` or its factory)."""
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
    if max_pending_publishes < 1:
        raise ValueError("max_pending_publishes must be at least 1")


def shared_bus(
    url: str,
    *,
    sharded: bool,
    subscription_mode: str,
    request_timeout: float,
    publish_timeout: float,
    reconnect_delay: float,
    reconnect_delay_max: float,
    max_pending_publishes: int,
) -> RedisBus:
    """The bus a factory shares among its server's namespaces, once the extras are importable and the
    connection options are checked (``RedisAdapter.factory`` and ``RedisStreamsAdapter.factory``).

    Raises:
        ImportError: coredis or msgpack is missing (the ``redis`` extra: the message says how to get it).
        ValueError: an invalid option.
    """
    import_coredis()
    import_msgpack()
    check_options(
        subscription_mode=subscription_mode,
        request_timeout=request_timeout,
        publish_timeout=publish_timeout,
        reconnect_delay=reconnect_delay,
        reconnect_delay_max=reconnect_delay_max,
        max_pending_publishes=max_pending_publishes,
    )
    return RedisBus(
        url,
        sharded=sharded,
        publish_timeout=float(publish_timeout),
        subscribe_timeout=float(request_timeout),
        reconnect_delay=reconnect_delay,
        reconnect_delay_max=reconnect_delay_max,
        max_pending_publishes=max_pending_publishes,
    )


A = TypeVar("A", bound=Adapter)
"""The adapter class a factory builds (``RedisAdapter``, or a subclass)."""


class RedisAdapterFactory(Generic[A]):
    """What ``RedisAdapter.factory(...)`` returns: ``Server``'s ``adapter=``.

    Called once per namespace, it builds that namespace's ``RedisAdapter`` on the one ``bus`` of the
    factory, as Node's ``createAdapter(pub, sub)`` shares its two clients: a server has one publishing
    and one subscribing connection to Redis whatever its number of namespaces. The server starts
    ``run`` (the bus) once, in its own nursery, before the namespaces' adapters.

    Use one factory per Server. A factory given to several servers of one process still works, each
    server being a cluster member of its own: a namespace whose name the bus serves already (another
    server's) gets a bus of its own, which its adapter runs, as if built alone.

    Args:
        adapter_class: ``RedisAdapter`` or a subclass.
        url: Redis URL (a cluster node's URL when ``sharded``).
        key: as ``RedisAdapter``'s.
        sharded: as ``RedisAdapter``'s.
        subscription_mode: as ``RedisAdapter``'s.
        request_timeout: as ``RedisAdapter``'s.
        publish_timeout: as ``RedisAdapter``'s.
        reconnect_delay: as ``RedisAdapter``'s.
        reconnect_delay_max: as ``RedisAdapter``'s.
        max_pending_publishes: as ``RedisAdapter``'s.
        **options: the other keyword arguments of ``RedisAdapter`` (given to each namespace's adapter).

    Raises:
        ImportError: coredis or msgpack is missing (the ``redis`` extra: the message says how to get it).
        ValueError: an invalid option.
    """

    def __init__(
        self,
        adapter_class: Callable[..., A],
        url: str = DEFAULT_URL,
        *,
        key: str = DEFAULT_KEY,
        sharded: bool = False,
        subscription_mode: str = "dynamic",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
        reconnect_delay_max: float = DEFAULT_RECONNECT_DELAY_MAX,
        max_pending_publishes: int = DEFAULT_MAX_PENDING_PUBLISHES,
        **options: Any,
    ) -> None:
        self._adapter_class = adapter_class
        self.bus = shared_bus(
            url,
            sharded=sharded,
            subscription_mode=subscription_mode,
            request_timeout=request_timeout,
            publish_timeout=publish_timeout,
            reconnect_delay=reconnect_delay,
            reconnect_delay_max=reconnect_delay_max,
            max_pending_publishes=max_pending_publishes,
        )
        self._options: dict[str, Any] = {
            "url": url,
            "key": key,
            "sharded": sharded,
            "subscription_mode": subscription_mode,
            "request_timeout": request_timeout,
            "publish_timeout": publish_timeout,
            "reconnect_delay": reconnect_delay,
            "reconnect_delay_max": reconnect_delay_max,
            "max_pending_publishes": max_pending_publishes,
            **options,
        }

    def __call__(self, namespace: NamespaceView) -> A:
        """The adapter of ``namespace``: on the shared bus, or on a bus of its own when the shared one
        serves that namespace already (the factory is another server's too)."""
        bus = None if self.bus.serves(namespace.name) else self.bus
        return self._adapter_class(namespace, bus=bus, **self._options)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the shared bus (see ``RedisBus.run``): the server starts it once, before the adapters."""
        await self.bus.run(task_status=task_status)
