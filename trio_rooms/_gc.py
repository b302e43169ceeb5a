"""``Server(freeze_gc=True)``, the default: keep long-lived connection state out of the cyclic GC's
full scans.

Rule: CPython's full collections scan every tracked object, and a server with many connections
holds a lot of them (1.2 million at 10,000 WebSocket connections, their clients in the same
process): one full collection then takes 0.4-0.5 s on the benchmark machine, and CPython starts
one each time the objects that survived into the oldest generation grow by a quarter, so that
connecting 10,000 clients costs about ten of them (2.5 s of the 7 s of CPU the connects take).

What this does, in one task of the server's nursery:

- **Freeze.** Once a second while connections arrive, it collects the young generations (so that no
  fresh cyclic garbage is frozen) and then freezes everything the GC tracks (``gc.freeze()``,
  constant time). Frozen objects are still freed by reference counting, and trio_rooms' own objects
  hold no reference cycle once a connection is closed (tests/test_memory.py), so nothing of ours
  waits for a thaw.
- **Thaw.** Reference cycles among the application's own objects may have been frozen with the rest.
  Once the connections closed since the last thaw reach a quarter of the open ones (and at least
  ``THAW_MIN_CLOSED``), it unfreezes, runs one full collection and freezes again: the cadence of
  CPython's own rule (a full collection per quarter of growth), counted in connections, so that
  cyclic garbage is collected as often as it would be without freezing, and the full scans no longer
  come while clients connect.
- **Stop.** When the server stops, everything is unfrozen, so that the process's own collections
  see all of it again.

The GC's frozen generation is process-wide: two servers in one process share it (each freezes and
thaws all of it, which is harmless). ``Server(freeze_gc=False)`` leaves the GC alone.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Final

import trio

from .stats import Counters

__all__ = ["FREEZE_INTERVAL", "THAW_MIN_CLOSED", "manage_frozen_objects", "thaw_due"]

FREEZE_INTERVAL: Final = 1.0
#: The fewest closed connections that make a thaw (one full collection) worth its cost.
THAW_MIN_CLOSED: Final = 256


def thaw_due(closed_since_thaw: int, open_connections: int) -> bool:
    """Whether enough connections closed since the last thaw for one full collection."""
    return closed_since_thaw >= max(THAW_MIN_CLOSED, open_connections // 4)


async def manage_frozen_objects(
    counters: Counters,
    open_connections: Callable[[], int],
    interval: float = FREEZE_INTERVAL,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Until cancelled: every ``interval`` seconds, thaw and collect if enough connections closed
    since the last thaw, then freeze if connections arrived; unfreeze everything on the way out."""
    seen = counters.connections_total
    closed_at_thaw = seen - open_connections()
    task_status.started()
    try:
        while True:
            await trio.sleep(interval)
            now_open = open_connections()
            total = counters.connections_total
            closed = total - now_open
            if thaw_due(closed - closed_at_thaw, now_open):
                closed_at_thaw = closed
                gc.unfreeze()
                gc.collect()
                gc.freeze()
                seen = total
            elif total != seen:
                seen = total
                gc.collect(1)
                gc.freeze()
    finally:
        gc.unfreeze()
