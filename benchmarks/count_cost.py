"""What the broadcast path's counting costs (issue 16): ``InMemoryAdapter.deliver`` to a room of 100
sockets whose ``deliver`` does nothing, so that the adapter's own work per broadcast (the loop, the
pacing, and the counting of ``Counters.delivered``) is all that is measured, in CPU time.

Run it against two trees, interleaved, and compare (the same interpreter for both)::

    for i in 1 2 3; do
        PYTHONPATH=/path/to/main python benchmarks/count_cost.py main
        PYTHONPATH=. python benchmarks/count_cost.py branch
    done

Prints one line per run: the median and the minimum of 7 repetitions of 20,000 broadcasts, in
microseconds of CPU per broadcast.
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any

import trio

from trio_rooms.adapter.memory import InMemoryAdapter
from trio_rooms.protocol.encoded import Encoded
from trio_rooms.protocol.socketio import event_packet
from trio_rooms.stats import Counters
from trio_rooms.types import BroadcastOptions, SocketId

RECIPIENTS = 100
BROADCASTS = 20_000
REPETITIONS = 7


class NullSocket:
    """A socket whose delivery does nothing (the send is not what is measured here)."""

    __slots__ = ("id",)

    def __init__(self, sid: str) -> None:
        self.id = SocketId(sid)

    def deliver(self, item: Encoded, volatile: bool = False) -> bool:
        return True


class Namespace:
    """What the adapter uses of its namespace (``adapter.base.NamespaceView``)."""

    def __init__(self) -> None:
        self.name = "/"
        self.sockets: dict[SocketId, NullSocket] = {}
        self.counters = Counters()
        self._ack_ids = itertools.count()
        self.adapter = InMemoryAdapter(self)  # type: ignore[arg-type]

    def next_ack_id(self) -> int:
        return next(self._ack_ids)

    def server_side_handler(self, event: str) -> Any:
        return None


async def main(label: str) -> None:
    nsp = Namespace()
    for n in range(RECIPIENTS):
        socket = NullSocket(f"s{n}")
        nsp.sockets[socket.id] = socket
        nsp.adapter.add_all(socket.id, [socket.id, "room"])
    frames = Encoded.of(event_packet("/", "m", [{"i": 1, "p": "x" * 60}]))
    opts = BroadcastOptions(frozenset({"room"}))
    results = []
    for _ in range(REPETITIONS):
        started = time.process_time()
        for _ in range(BROADCASTS):
            await nsp.adapter.deliver(frames, opts)
        results.append((time.process_time() - started) / BROADCASTS * 1e6)
    results.sort()
    print(
        f"{label}: CPU per broadcast to {RECIPIENTS}: median {results[REPETITIONS // 2]:.2f} us, "
        f"min {results[0]:.2f} us"
    )


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "trio_rooms")
