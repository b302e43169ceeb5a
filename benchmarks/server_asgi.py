"""Benchmark server: trio_rooms as an ASGI application (``trio_rooms.ASGIApp``) under Hypercorn's trio
worker, with the handlers of server_trio.py (``build_server``; see its docstring).

As a module, ``app`` is the ASGI application: ``hypercorn -k trio --bind 127.0.0.1:3000 server_asgi:app``
(from benchmarks/). Run as a script, it serves ``app`` with ``hypercorn.trio.serve`` in this process
(so that the runner's /proc figures are the server's own: the ``hypercorn`` command runs its worker
in a child process) on 127.0.0.1, access log off, and prints
``{"server": "trio_rooms (ASGI, Hypercorn)", "port": PORT, ...}`` on one line when it listens.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version
from typing import Any

import trio
from server_trio import build_server  # type: ignore[import-not-found, unused-ignore]

import trio_rooms

server = build_server()
app = trio_rooms.ASGIApp(server)


async def main(port: int) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    asgi: Any = app  # Hypercorn types ASGI messages as TypedDicts, trio_rooms as mappings
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, asgi, config)
        ready = {
            "server": "trio_rooms (ASGI, Hypercorn)",
            "port": int(binds[0].rsplit(":", 1)[1]),
            "versions": {
                "python": sys.version.split()[0],
                "trio": trio.__version__,
                "trio_rooms": version("trio-rooms"),
                "hypercorn": version("hypercorn"),
            },
        }
        print(json.dumps(ready), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    trio.run(main, parser.parse_args().port)
