"""The running counters of one server, shared by its transport and Socket.IO layers.

Rule: one source of truth: ``Server.stats()`` and the Prometheus collector (``trio_rooms.metrics``)
both read these at the time they are asked; nothing else keeps a count of its own. The broadcast path
counts once per broadcast (its recipients reached, its bytes), never once per recipient.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

__all__ = ["ACK_BUCKETS", "Counters"]

#: The upper bounds (seconds, inclusive) of the ack round-trip histogram's buckets (``+Inf`` last).
ACK_BUCKETS: Final[tuple[float, ...]] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    float("inf"),
)


class Counters:
    """Plain integer counters (see ``Server.stats``); incremented inline, never reset.

    ``deliveries`` counts the Socket.IO packets written to a client's connection (sent, or queued
    to be sent): a broadcast adds the recipients it reached, once, after its loop; every packet sent
    to one client (a socket's own emit, an ack, a CONNECT, a DISCONNECT) adds one. ``bytes_sent`` is
    the size of those packets as WebSocket frames (the bytes the slow-consumer bound counts), whatever
    the transport: Engine.IO heartbeats and HTTP framing are not in it. ``ack_buckets`` (one count per
    bucket of ``ACK_BUCKETS``, not cumulative), ``ack_count`` and ``ack_seconds`` are the ack
    round-trip histogram (``observe_ack``).
    """

    __slots__ = (
        "ack_buckets",
        "ack_count",
        "ack_seconds",
        "bytes_sent",
        "connections_total",
        "deliveries",
        "protocol_errors",
        "refused_child_namespaces",
        "refused_requests",
        "slow_consumers_closed",
        "timed_out_requests",
        "volatile_dropped",
    )

    def __init__(self) -> None:
        self.connections_total = 0
        self.deliveries = 0
        self.bytes_sent = 0
        self.protocol_errors = 0
        self.refused_child_namespaces = 0
        self.refused_requests = 0
        self.slow_consumers_closed = 0
        self.timed_out_requests = 0
        self.volatile_dropped = 0
        self.ack_buckets = [0] * len(ACK_BUCKETS)
        self.ack_count = 0
        self.ack_seconds = 0.0

    def delivered(self, recipients: int, size: int) -> None:
        """``recipients`` clients were written a packet of ``size`` bytes (once per broadcast)."""
        self.deliveries += recipients
        self.bytes_sent += recipients * size

    def observe_ack(self, seconds: float) -> None:
        """An ack round trip of ``seconds`` resolved (a socket's ack, or a broadcast's acks all in)."""
        self.ack_buckets[bisect_left(ACK_BUCKETS, seconds)] += 1
        self.ack_count += 1
        self.ack_seconds += seconds

    def ack_histogram(self) -> list[tuple[float, int]]:
        """The ack round-trip histogram as Prometheus has it: (upper bound, cumulative count) pairs."""
        total = 0
        cumulative = []
        for bound, count in zip(ACK_BUCKETS, self.ack_buckets, strict=True):
            total += count
            cumulative.append((bound, total))
        return cumulative
