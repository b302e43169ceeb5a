"""The broadcast path alone, in one process: CPU per delivery of ``InMemoryAdapter.broadcast`` to a room
of 100 sockets whose ``deliver`` only counts (no system call, no network, no load client), so that the
Python work of a broadcast is measured with little noise, and a difference in it is magnified (a real
delivery adds a ``send(2)`` of 10-20 us).

Measures trio_rooms as imported (``PYTHONPATH``), with connection state recovery off, or on with
``--recovery``; ``--compare LABEL=DIR`` runs this tree off and on and each other tree (its
``trio_rooms`` first on ``PYTHONPATH``) off, interleaved, ``--rounds`` times, in fresh processes, and
prints the medians (ns per delivery). Issue 17 used it to check that recovery off costs the broadcast
path nothing it did not cost before::

    python benchmarks/broadcast_path.py --compare before=/path/to/checkout/before --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class CountingSocket:
    """A socket as the adapter sees it, whose ``deliver`` takes the packet and counts it."""

    def __init__(self, sid: str) -> None:
        self.id = sid
        self.delivered = 0

    def deliver(self, frames: object, volatile: bool) -> bool:
        self.delivered += 1
        return True


class BareNamespace:
    """The part of a namespace the in-memory adapter uses (``recovery`` is ignored by older trees)."""

    def __init__(self, recovery: Any) -> None:
        self.name = "/"
        self.recovery = recovery
        self.sockets: dict[str, CountingSocket] = {}

    def next_ack_id(self) -> int:
        return 0

    def server_side_handler(self, event: str) -> None:
        return None


def measure(recovery: bool, broadcasts: int, room_size: int) -> dict[str, Any]:
    import trio

    from trio_rooms.adapter.memory import InMemoryAdapter
    from trio_rooms.protocol.socketio import event_packet
    from trio_rooms.types import BroadcastOptions

    options = None
    if recovery:
        from trio_rooms.recovery import ConnectionStateRecovery

        options = ConnectionStateRecovery()
    namespace = BareNamespace(options)
    adapter = InMemoryAdapter(namespace)  # type: ignore[arg-type]
    for n in range(room_size):
        sid = f"s{n}"
        namespace.sockets[sid] = CountingSocket(sid)
        adapter.add_all(sid, (sid, "room"))  # type: ignore[arg-type]
    opts = BroadcastOptions(frozenset({"room"}))
    pad = "x" * 71

    async def run() -> float:
        started = time.process_time()
        for i in range(broadcasts):
            await adapter.broadcast(event_packet("/", "m", ({"i": i, "p": pad},)), opts)
        return time.process_time() - started

    seconds = trio.run(run)
    deliveries = sum(socket.delivered for socket in namespace.sockets.values())
    assert deliveries == broadcasts * room_size, deliveries
    return {"ns_per_delivery": seconds / deliveries * 1e9, "deliveries": deliveries, "recovery": recovery}


def one(tree: Path, recovery: bool, broadcasts: int, room_size: int) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, __file__, "--broadcasts", str(broadcasts), "--room", str(room_size)]
    if recovery:
        argv.append("--recovery")
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=tree).stdout
    return float(json.loads(out)["ns_per_delivery"])


def compare(trees: dict[str, Path], rounds: int, broadcasts: int, room_size: int) -> dict[str, Any]:
    runs: list[tuple[str, Path, bool]] = [("this", ROOT, False), ("this recovery on", ROOT, True)]
    runs += [(label, path, False) for label, path in trees.items()]
    figures: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    for _ in range(rounds):
        for label, path, recovery in runs:
            figures[label].append(one(path, recovery, broadcasts, room_size))
    medians = {label: statistics.median(values) for label, values in figures.items()}
    return {"ns_per_delivery": figures, "median": medians, "broadcasts": broadcasts, "room": room_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--recovery", action="store_true", help="connection state recovery on")
    parser.add_argument("--broadcasts", type=int, default=20_000)
    parser.add_argument("--room", type=int, default=100, help="recipients of each broadcast")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--rounds", type=int, default=5)
    cli = parser.parse_args()
    if cli.compare:
        trees = {spec.split("=", 1)[0]: Path(spec.split("=", 1)[1]).resolve() for spec in cli.compare}
        print(json.dumps(compare(trees, cli.rounds, cli.broadcasts, cli.room), indent=1))
    else:
        print(json.dumps(measure(cli.recovery, cli.broadcasts, cli.room)))


if __name__ == "__main__":
    main()
