"""Benchmark server: python-socketio 5's ``ASGIApp`` under uvicorn (what a python-socketio user adds to
an ASGI application), with the handlers of server_psio.py (``build_server``; see its docstring).

uvicorn runs in this process (so that the runner's /proc figures are the server's own), with its
defaults for an ASGI app (uvloop, httptools and the ``websockets`` implementation when installed,
as ``pip install "uvicorn[standard]"`` brings them), access log off, compression off
(``http_compression=False``; the load client offers no permessage-deflate). Prints
``{"server": "python-socketio (ASGI, uvicorn)", "port": PORT, ...}`` on one line when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from importlib.metadata import PackageNotFoundError, version

import socketio  # type: ignore[import-untyped]
import uvicorn
from server_psio import build_server  # type: ignore[import-not-found, unused-ignore]


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


async def main(port: int) -> None:
    sio: socketio.AsyncServer = build_server(async_mode="asgi")
    app = socketio.ASGIApp(sio)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, access_log=False, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    ready = {
        "server": "python-socketio (ASGI, uvicorn)",
        "port": sock.getsockname()[1],
        "versions": {
            "python": sys.version.split()[0],
            "python-socketio": _version("python-socketio"),
            "python-engineio": _version("python-engineio"),
            "uvicorn": _version("uvicorn"),
            "uvloop": _version("uvloop"),
            "httptools": _version("httptools"),
            "websockets": _version("websockets"),
        },
    }
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
        await asyncio.sleep(0.01)
    print(json.dumps(ready), flush=True)
    await serving


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
