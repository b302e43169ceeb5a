"""One trio_rooms member of the cluster: the room chat of ``python -m trio_rooms``, rooms shared via Redis.

Usage::

    python examples/cluster/member.py [--name py-1] [--port 3001] [--redis redis://127.0.0.1:6379]

The events are those of ``trio_rooms.__main__.add_chat`` (``join``, ``leave``, ``say``; ``joined``,
``left``, ``said`` to the room); ``examples/cluster/member.mjs`` serves the same ones on Node. With
``RedisAdapter`` (Node's ``@socket.io/redis-adapter`` wire format, key ``socket.io``) a room's
messages reach its members on every member server, trio_rooms or Node. Prints one line with its URL
once listening; Ctrl-C (or SIGTERM) stops it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio_rooms
from trio_rooms import RedisAdapter
from trio_rooms.__main__ import add_chat, configure_logging, run_server

__all__ = ["build_member"]


def build_member(name: str, redis_url: str, key: str = "socket.io") -> trio_rooms.Server:
    """A Server serving the room chat, whose rooms span every server on ``redis_url`` under ``key``."""
    server = trio_rooms.Server(adapter=RedisAdapter.factory(redis_url, key=key))
    add_chat(server.of("/"))

    @server.on("connection")
    async def welcome(socket: trio_rooms.Socket) -> None:
        socket.data["server"] = name
        await socket.emit("welcome", {"server": name})

    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A trio_rooms cluster member (room chat over Redis).")
    parser.add_argument("--name", default="py-1", help="this member's name (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=3001, help="port; 0 picks one (default: %(default)s)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis URL (default: %(default)s)")
    parser.add_argument("--key", default="socket.io", help="channel key, Node's `key` (default: %(default)s)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    server = build_member(args.name, args.redis, args.key)
    return run_server(server, args.host, args.port, title=f"cluster member {args.name}")


if __name__ == "__main__":
    sys.exit(main())
