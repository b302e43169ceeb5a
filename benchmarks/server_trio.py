"""Benchmark server on trio_rooms: the handlers every benchmark server has (see README.md).

- ``"join", rooms``: joins the list of rooms; acks ``true``.
- ``"bench", {targets, except?, count, seq0, rate, pad}``: broadcasts ``count`` events
  ``"m", {"i": seq0 + i, "p": pad}``, event ``i`` to the rooms ``targets[i % len(targets)]`` (the union
  of those rooms, each member once), leaving out the members of ``except``; ``rate`` > 0 paces them
  at that many per second from an absolute schedule, 0 sends them back to back. Acks
  ``{"sent": count}`` when done, when the client asked for an ack.

Prints ``{"server": "trio_rooms", "port": PORT, ...}`` on one line when it listens (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version
from typing import Any

import trio

import trio_rooms


def build_server() -> trio_rooms.Server:
    server = trio_rooms.Server()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("join")
        async def join(rooms: list[str]) -> bool:
            socket.join(rooms)
            return True

        @socket.on("bench")
        async def bench(req: dict[str, Any]) -> dict[str, int]:
            targets: list[list[str]] = req["targets"]
            excluded: list[str] = req.get("except") or []
            count = int(req["count"])
            seq0 = int(req["seq0"])
            rate = float(req.get("rate") or 0)
            pad = str(req.get("pad", ""))
            ops = [server.to(t).except_(excluded) if excluded else server.to(t) for t in targets]
            start = trio.current_time()
            for i in range(count):
                if rate > 0:
                    await trio.sleep_until(start + i / rate)
                await ops[i % len(ops)].emit("m", {"i": seq0 + i, "p": pad})
            return {"sent": count}

    return server


async def main(port: int) -> None:
    server = build_server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", port)
        ready = {
            "server": "trio_rooms",
            "port": listeners[0].socket.getsockname()[1],
            "versions": {
                "python": sys.version.split()[0],
                "trio": trio.__version__,
                "trio_rooms": version("trio-rooms"),
            },
        }
        print(json.dumps(ready), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    trio.run(main, parser.parse_args().port)
