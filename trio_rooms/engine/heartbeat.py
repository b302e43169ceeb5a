"""One task pings every session of a server on time (instead of one sleeping task per session).

Rule: a timer in trio is a cancel scope, and each expiry costs tens of microseconds; so due times
are rounded up to ``resolution`` (1 ms by default) and every session due at one tick is handled by
a single wake-up. Per session: a ping every ``ping_interval`` after the last pong, and the end
("ping timeout") when no pong came ``ping_timeout`` after the ping was queued.
"""

from __future__ import annotations

import heapq
import itertools
import math
import weakref
from typing import Final, Protocol

import trio

__all__ = ["DEFAULT_RESOLUTION", "Due", "Heartbeats"]

DEFAULT_RESOLUTION: Final = 0.001


class Due(Protocol):
    """What the schedule calls: a session (its ping or pong deadline), or a connection (its
    connect deadline). Held weakly."""

    def heartbeat_due(self, now: float, generation: int) -> None: ...


class Heartbeats:
    """The heartbeat schedule of every session of one server; ``run`` is its task."""

    def __init__(self, resolution: float = DEFAULT_RESOLUTION) -> None:
        self.resolution = resolution
        # Sessions are held weakly: a closed session leaves the schedule with its memory, at once.
        self._heap: list[tuple[float, int, int, weakref.ref[Due]]] = []
        self._order = itertools.count()
        self._wake = trio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def _tick(self, when: float) -> float:
        resolution = self.resolution
        if resolution <= 0:
            return when
        return math.ceil(when / resolution - 1e-6) * resolution

    def schedule(self, session: Due, when: float, generation: int) -> None:
        """Call ``session.heartbeat_due(now, generation)`` at ``when`` (rounded up to a tick), unless
        ``session`` was freed by then."""
        when = self._tick(when)
        if not self._heap or when < self._heap[0][0]:
            self._wake.set()
        heapq.heappush(self._heap, (when, next(self._order), generation, weakref.ref(session)))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wake at each due tick and let the sessions due then ping or time out; until cancelled."""
        task_status.started()
        heap = self._heap
        while True:
            if not heap:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            due = heap[0][0]
            if due > trio.current_time():
                with trio.move_on_at(due):
                    await self._wake.wait()
                if self._wake.is_set():
                    self._wake = trio.Event()
                    continue
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _when, _order, generation, ref = heapq.heappop(heap)
                session = ref()
                if session is not None:
                    session.heartbeat_due(now, generation)
