"""The running counters of one server, shared by its transport and Socket.IO layers."""

from __future__ import annotations

__all__ = ["Counters"]


class Counters:
    """Plain integer counters (see ``Server.stats``); incremented inline, never reset."""

    __slots__ = (
        "connections_total",
        "protocol_errors",
        "refused_child_namespaces",
        "refused_requests",
        "slow_consumers_closed",
        "timed_out_requests",
        "volatile_dropped",
    )

    def __init__(self) -> None:
        self.connections_total = 0
        self.protocol_errors = 0
        self.refused_child_namespaces = 0
        self.refused_requests = 0
        self.slow_consumers_closed = 0
        self.timed_out_requests = 0
        self.volatile_dropped = 0
