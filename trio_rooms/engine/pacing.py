"""A process-wide hint from the writers of queued packets to the broadcasters: a writer is behind.

Rule: a WebSocket writer whose queue passes half its bound (``Outbound``, ``MessageLane``) raises the
hint; a broadcaster that would otherwise run on without yielding (``adapter.memory``: a burst of
broadcasts runs as one piece for a few milliseconds) yields to the event loop at its next broadcast
while the hint is raised, and lowers it. So a burst never outruns the writers into the slow-consumer
bound (with ASGI a writer sends one message per scheduler turn), and without a backlog it costs nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BACKLOG", "Backlog"]


class Backlog:
    """The hint (one per process: ``BACKLOG``)."""

    __slots__ = ("behind",)

    def __init__(self) -> None:
        #: A writer's queue passed half its bound since the last broadcaster's yield.
        self.behind = False


BACKLOG: Final = Backlog()
