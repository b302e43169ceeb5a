"""Diagnostic stand-in for server_trio.py (storm.py): the same server and handlers, other listeners.

trio_rooms' ``Server.serve`` listens with ``trio.open_tcp_listeners``' default backlog (0xFFFF, which
the kernel caps at ``net.core.somaxconn``: 4096 here) and ``trio.serve_listeners`` accepts one
connection per pass of trio's scheduler. Node (libuv) listens with a backlog of 511 and accepts every
pending connection at each pass of its loop. This server changes only that, through
``Server.serve_listeners`` (nothing in trio_rooms changes):

- ``--backlog N``: the listen backlog;
- ``--accept-all``: a listener that, when woken, accepts every pending connection at once (until
  EAGAIN) and hands them out one by one (what libuv does).

Prints the same ready line as server_trio.py (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import os
import socket as stdlib_socket
import sys
from importlib.metadata import version
from pathlib import Path

import trio
from server_trio import build_server

SOMAXCONN = int(Path("/proc/sys/net/core/somaxconn").read_text())


class AcceptAllListener(trio.abc.Listener[trio.SocketStream]):
    """A TCP listener that accepts every pending connection when woken, and hands them out in turn."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self.listener = listener
        self.socket = listener.socket
        # the same listening socket (a dup of its descriptor, non-blocking as trio set it)
        self.raw = stdlib_socket.socket(fileno=os.dup(listener.socket.fileno()))
        self.pending: collections.deque[trio.socket.SocketType] = collections.deque()

    async def accept(self) -> trio.SocketStream:
        while not self.pending:
            await trio.lowlevel.wait_readable(self.socket)
            while True:
                try:
                    sock, _ = self.raw.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                        continue
                    raise
                self.pending.append(trio.socket.from_stdlib_socket(sock))
        stream = trio.SocketStream(self.pending.popleft())
        await trio.lowlevel.checkpoint()
        return stream

    async def aclose(self) -> None:
        while self.pending:
            self.pending.popleft().close()
        self.raw.close()
        await self.listener.aclose()


async def main(port: int, backlog: int | None, accept_all: bool) -> None:
    server = build_server()
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1", backlog=backlog)
    serving: list[trio.abc.Listener[trio.SocketStream]] = (
        [AcceptAllListener(listener) for listener in listeners] if accept_all else list(listeners)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_listeners, serving)
        sock = listeners[0].socket
        ready = {
            "server": "trio_rooms",
            "port": sock.getsockname()[1],
            "backlog": backlog,
            "accept_all": accept_all,
            "somaxconn": SOMAXCONN,
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
    parser.add_argument("--backlog", type=int, help="listen backlog (default: trio's, 0xFFFF capped)")
    parser.add_argument("--accept-all", action="store_true", help="accept every pending connection")
    cli = parser.parse_args()
    trio.run(main, cli.port, cli.backlog, cli.accept_all)
