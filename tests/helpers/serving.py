"""A server serving on a free loopback port for the duration of a block (the tests' common set-up)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

import trio_rooms


@asynccontextmanager
async def serving_port(server: trio_rooms.Server) -> AsyncIterator[int]:
    """Serve ``server`` on 127.0.0.1, port 0, for the block; yield the port it got. Leaving the block
    shuts it down (as cancelling ``serve`` does)."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def serving_url(server: trio_rooms.Server) -> AsyncIterator[str]:
    """``serving_port``, yielding the URL a client takes (``http://127.0.0.1:PORT``)."""
    async with serving_port(server) as port:
        yield f"http://127.0.0.1:{port}"
