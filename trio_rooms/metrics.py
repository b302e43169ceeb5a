"""Prometheus metrics of one server: ``GET /metrics`` in the Prometheus text format (``prometheus_client``).

Rule: nothing is counted here. Each scrape reads ``Server.stats()`` (the server's ``Counters``, its
sessions and namespaces, its adapters' counters) through a collector registered in a
``CollectorRegistry`` of the server's own, so that the metrics and ``stats()`` cannot disagree and
several servers in one process never collide. ``prometheus_client`` is the optional extra
``trio-rooms[metrics]``, imported only by a server built with ``metrics`` on.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import trio

from .engine.http import HttpRequest, HttpResponse
from .errors import install_hint

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["METRICS_PATH", "MetricsEndpoint", "MetricsPolicy", "ServerCollector"]

logger = logging.getLogger("trio_rooms")

METRICS_PATH: Final = "/metrics"
"""Where a server with ``metrics`` on answers scrapes, on the port it serves (native or ASGI)."""

MetricsPolicy: TypeAlias = bool | Callable[[HttpRequest], bool | Awaitable[bool]]
"""``Server(metrics=...)``: False (off), True (every scrape answered), or a callable deciding per
request (``request -> bool``, or an async one), e.g. by the peer's address or a token header."""

INSTALL_HINT: Final = f"Server(metrics=...) needs prometheus_client: {install_hint('metrics')}"

StatsSource: TypeAlias = Callable[[], Mapping[str, Any]]

#: (metric name, ``stats()`` key, help) of the plain counters; a counter's samples end in ``_total``.
_COUNTERS: Final = (
    ("trio_rooms_connections_opened", "connections_total", "Engine.IO sessions opened."),
    (
        "trio_rooms_deliveries",
        "deliveries",
        "Socket.IO packets written to a client's connection (a broadcast counts each recipient reached).",
    ),
    (
        "trio_rooms_bytes_sent",
        "bytes_sent",
        "Bytes of the Socket.IO packets delivered, as WebSocket frames (heartbeats and HTTP not counted).",
    ),
    (
        "trio_rooms_slow_consumers_closed",
        "slow_consumers_closed",
        "Connections closed because their outbound queue passed max_queued_bytes.",
    ),
    (
        "trio_rooms_volatile_dropped",
        "volatile_dropped",
        "Volatile packets dropped for a client over its queue bound.",
    ),
    (
        "trio_rooms_protocol_errors",
        "protocol_errors",
        "Connections closed for a malformed or forbidden Engine.IO or Socket.IO packet.",
    ),
    (
        "trio_rooms_refused_requests",
        "refused_requests",
        "Engine.IO requests answered with an error (bad, unknown session, forbidden, too large).",
    ),
    (
        "trio_rooms_timed_out_requests",
        "timed_out_requests",
        "Requests and upgrade handshakes cut by their deadline.",
    ),
    (
        "trio_rooms_refused_child_namespaces",
        "refused_child_namespaces",
        "CONNECTs refused because a parent namespace had max_child_namespaces children.",
    ),
    (
        "trio_rooms_adapter_errors",
        "adapter_errors",
        "Failures counted by the namespaces' adapters (Redis: publish errors, invalid messages, "
        "request timeouts, requests dropped under overload).",
    ),
)


class ServerCollector:
    """A ``prometheus_client`` collector that reads one server's ``stats()`` at each scrape.

    Args:
        stats: ``Server.stats`` (or anything returning the same mapping).
    """

    def __init__(self, stats: StatsSource) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Metric]:
        """The metric families, without reading the server (the registry's check of duplicate names)."""
        return list(_families(_NO_STATS))

    def collect(self) -> Iterator[Metric]:
        """The metric families with their samples, read from ``stats()`` now."""
        return _families(self._stats())


_NO_STATS: Final[Mapping[str, Any]] = {
    "connections": 0,
    "sockets": {},
    "rooms": {},
    "queued_bytes": 0,
    **{key: 0 for _name, key, _help in _COUNTERS},
    "ack_seconds": {"buckets": [(float("inf"), 0)], "sum": 0.0},
}


def _families(stats: Mapping[str, Any]) -> Iterator[Metric]:
    """The metric families of a ``Server.stats()`` mapping."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    yield GaugeMetricFamily(
        "trio_rooms_connections", "Engine.IO sessions open now.", value=stats["connections"]
    )
    for name, key, documentation in (
        ("trio_rooms_sockets", "sockets", "Connected sockets, by namespace."),
        ("trio_rooms_rooms", "rooms", "Rooms, by namespace (each socket's own room included)."),
    ):
        family = GaugeMetricFamily(name, documentation, labels=["namespace"])
        for namespace, count in sorted(stats[key].items()):
            family.add_metric([namespace], count)
        yield family
    yield GaugeMetricFamily(
        "trio_rooms_queued_bytes",
        "Bytes waiting in the connections' outbound queues now.",
        value=stats["queued_bytes"],
    )
    for name, key, documentation in _COUNTERS:
        yield CounterMetricFamily(name, documentation, value=stats[key])
    acks = stats["ack_seconds"]
    yield HistogramMetricFamily(
        "trio_rooms_ack_seconds",
        "Ack round trips: from an emit_with_ack to its ack (a broadcast's: to the last ack).",
        buckets=[
            ("+Inf" if bound == math.inf else repr(float(bound)), count) for bound, count in acks["buckets"]
        ],
        sum_value=acks["sum"],
    )


def _le(bound: float) -> str:
    """A bucket's ``le`` label as Prometheus writes it ("0.005", "1.0", "+Inf")."""
    return "+Inf" if bound == math.inf else repr(float(bound))


class MetricsEndpoint:
    """``GET /metrics`` of one server (``server.metrics_endpoint``): its ``CollectorRegistry`` and the
    policy of who may scrape.

    Attributes:
        registry: the server's own ``prometheus_client.CollectorRegistry``: the server's metrics, and
            any the application registers beside them.

    """

    def __init__(self, stats: StatsSource, policy: MetricsPolicy) -> None:
        """Made by ``Server(metrics=...)``.

        Args:
            stats: ``Server.stats``.
            policy: True, or a callable ``(request) -> bool`` (sync or async) deciding per request.

        Raises:
            ImportError: ``prometheus_client`` is not installed.
        """
        try:
            from prometheus_client import CollectorRegistry
            from prometheus_client.exposition import choose_encoder
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        self._policy = policy
        self._choose_encoder = choose_encoder
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(ServerCollector(stats))

    async def allowed(self, request: HttpRequest) -> bool:
        """Whether ``request`` may scrape (the policy's answer)."""
        policy = self._policy
        if not callable(policy):
            await trio.lowlevel.checkpoint()
            return policy is True
        verdict = policy(request)
        if inspect.isawaitable(verdict):
            return bool(await verdict)
        await trio.lowlevel.checkpoint()
        return bool(verdict)

    async def respond(self, request: HttpRequest) -> HttpResponse:
        """The answer to a request for ``METRICS_PATH``: the metrics (200), or 403 when the policy
        refuses, 405 for a method other than GET, 500 when the policy raised (logged)."""
        if request.method != "GET":
            return HttpResponse(405, b"Method Not Allowed", headers=(("allow", "GET"),))
        try:
            allowed = await self.allowed(request)
        except Exception:
            logger.exception("the metrics policy failed")
            return HttpResponse(500, b"Internal Server Error")
        if not allowed:
            return HttpResponse(403, b"Forbidden")
        encoder, content_type = self._choose_encoder(request.header("accept") or "")
        return HttpResponse(200, encoder(self.registry), content_type=content_type)

    def fallback(
        self, other: Callable[[HttpRequest], Awaitable[HttpResponse | None]] | None
    ) -> Callable[[HttpRequest], Awaitable[HttpResponse | None]]:
        """The native front door's ``fallback``: ``METRICS_PATH`` answered here, every other path by
        ``other`` (the application's ``fallback``, if any)."""

        async def serve(request: HttpRequest) -> HttpResponse | None:
            if request.path == METRICS_PATH:
                return await self.respond(request)
            if other is None:
                return None
            return await other(request)

        return serve
