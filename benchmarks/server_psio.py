"""Benchmark server on python-socketio 5 (asyncio, aiohttp): the same handlers as server_trio.py.

- ``"join", rooms``: joins the list of rooms; acks ``true``.
- ``"bench", {targets, except?, count, seq0, rate, pad}``: broadcasts ``count`` events
  ``"m", {"i": seq0 + i, "p": pad}``, event ``i`` to the rooms ``targets[i % len(targets)]`` (each
  member once), leaving out the members of ``except``; ``rate`` > 0 paces them at that many per
  second from an absolute schedule, 0 sends them back to back. Acks ``{"sent": count}`` when done.

Compression is off (``http_compression=False``; the load client offers no permessage-deflate), the
access log is off. Prints ``{"server": "python-socketio", "port": PORT, ...}`` on one line when it
listens (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from importlib.metadata import version
from typing import Any

import socketio  # type: ignore[import-untyped]
from aiohttp import web


def build_server(async_mode: str = "aiohttp") -> socketio.AsyncServer:
    sio = socketio.AsyncServer(async_mode=async_mode, http_compression=False)

    @sio.on("join")  # type: ignore[untyped-decorator]
    async def join(sid: str, rooms: list[str]) -> bool:
        for room in rooms:
            await sio.enter_room(sid, room)
        return True

    @sio.on("bench")  # type: ignore[untyped-decorator]
    async def bench(sid: str, req: dict[str, Any]) -> dict[str, int]:
        targets: list[list[str]] = req["targets"]
        excluded: list[str] = req.get("except") or []
        count = int(req["count"])
        seq0 = int(req["seq0"])
        rate = float(req.get("rate") or 0)
        pad = str(req.get("pad", ""))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(count):
            if rate > 0:
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            # python-socketio has no except(rooms): leave out the members of those rooms by sid.
            skip = [s for s, _ in sio.manager.get_participants("/", excluded)] if excluded else None
            await sio.emit("m", {"i": seq0 + i, "p": pad}, to=targets[i % len(targets)], skip_sid=skip)
        return {"sent": count}

    return sio


async def main(port: int) -> None:
    sio = build_server()
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    ready = {
        "server": "python-socketio",
        "port": sockets[0].getsockname()[1],
        "versions": {
            "python": sys.version.split()[0],
            "python-socketio": version("python-socketio"),
            "python-engineio": version("python-engineio"),
            "aiohttp": version("aiohttp"),
        },
    }
    print(json.dumps(ready), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
