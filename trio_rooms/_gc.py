"""``Server(freeze_gc=True)``: keep long-lived connection state out of the cyclic GC's full scans.

Rule: CPython's full collections scan every tracked object, and a server with many connections
holds a lot of them (about 150 per idle WebSocket connection): at 10,000 connections one full
collection takes about a second here, and the heap's growth triggers one every 25 %. Once a second
while connections arrive, this collects the young generations (so that no fresh cyclic garbage is
frozen) and then freezes everything (``gc.freeze()``, constant time): frozen objects are still freed
by reference counting, and trio_rooms' own objects hold no reference cycle once a connection is closed
(tests/test_memory.py), so nothing of ours leaks. An application whose own objects form reference
cycles should not use it, or should ``gc.unfreeze()`` and ``gc.collect()`` in quiet periods.
"""

from __future__ import annotations

import gc
from typing import Final

import trio

from .stats import Counters

__all__ = ["FREEZE_INTERVAL", "freeze_new_objects"]

FREEZE_INTERVAL: Final = 1.0


async def freeze_new_objects(
    counters: Counters,
    interval: float = FREEZE_INTERVAL,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Until cancelled: every ``interval`` seconds in which connections arrived, collect the young
    generations, then freeze every object the GC tracks."""
    task_status.started()
    seen = counters.connections_total
    while True:
        await trio.sleep(interval)
        if counters.connections_total != seen:
            seen = counters.connections_total
            gc.collect(1)
            gc.freeze()
