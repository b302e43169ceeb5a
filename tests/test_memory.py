"""A closed connection leaves no reference cycle behind: reference counting frees its sessions,
sockets, handlers and transport state at once, without waiting for the cyclic GC (and an
application that freezes the GC after start-up, ``gc.freeze()``, loses nothing to it).

Checked with the GC disabled and ``gc.DEBUG_SAVEALL``: whatever a collection then finds is cyclic
garbage, and none of it may be a trio_rooms object. Real sockets on 127.0.0.1, our own Client.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms._gc import FREEZE_INTERVAL, THAW_MIN_CLOSED, manage_frozen_objects, thaw_due
from trio_rooms.client import open_client
from trio_rooms.stats import Counters

CLIENT_OPTIONS: dict[str, Any] = {"reconnection": False, "wait_timeout": 5.0, "timeout": 5.0}


def build_server() -> trio_rooms.Server:
    server = trio_rooms.Server(ping_interval=0.5, ping_timeout=0.5)

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        socket.join(["room-a", "room-b"])
        socket.data["me"] = socket  # an application's own reference to the socket

        @socket.on("echo")
        async def echo(value: Any) -> Any:
            await server.to("room-a").emit("seen", value)
            return value

        # The application hooks are closures over the socket too (the outgoing listener swaps the
        # socket's delivery for a bound method of its own while registered).
        @socket.on_any
        async def every(event: str, *args: Any) -> None:
            socket.data["last"] = event

        @socket.use
        async def check(event: str, args: list[Any]) -> None:
            socket.data["checked"] = event

        socket.on_any_outgoing(lambda event, *args: socket.data.update(out=event))

        @socket.on("leave-me")
        async def leave_me() -> None:
            await socket.disconnect()

        @socket.on("disconnect")
        async def gone(reason: str) -> None:
            socket.data.clear()

    return server


@contextmanager
def cyclic_garbage() -> Iterator[list[object]]:
    """Collect first, then keep the GC off; on exit, the cyclic garbage made in the block."""
    found: list[object] = []
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


def ours(garbage: list[object]) -> list[str]:
    return sorted(
        {
            type(obj).__module__ + "." + type(obj).__qualname__
            for obj in garbage
            if type(obj).__module__.startswith("trio_rooms")
        }
    )


async def session_ends_by_client(url: str, transports: tuple[str, ...]) -> None:
    async with open_client(url, transports=transports, **CLIENT_OPTIONS) as client:
        assert await client.emit_with_ack("echo", 7) == 7


async def session_ends_by_server(url: str, transports: tuple[str, ...]) -> None:
    async with open_client(url, transports=transports, **CLIENT_OPTIONS) as client:
        left = trio.Event()
        client.on("disconnect")(_setter(left))
        await client.emit("leave-me")
        await left.wait()


def _setter(event: trio.Event) -> Callable[..., Awaitable[None]]:
    async def handler(*args: Any) -> None:
        event.set()

    return handler


@pytest.mark.parametrize(
    "ending", [session_ends_by_client, session_ends_by_server], ids=["client-close", "server-disconnect"]
)
@pytest.mark.parametrize(
    "transports",
    [("websocket",), ("polling",), ("polling", "websocket")],
    ids=["websocket", "polling", "upgrade"],
)
async def test_closed_connections_leave_no_reference_cycle(
    transports: tuple[str, ...], ending: Callable[[str, tuple[str, ...]], Awaitable[None]]
) -> None:
    server = build_server()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(server.serve, "127.0.0.1", 0)
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            await ending(url, transports)  # warm-up: caches, lazily built module state
            with cyclic_garbage() as garbage:
                for _ in range(5):
                    await ending(url, transports)
                for _ in range(300):  # the server's side of the last close ends on its own
                    if not server.engine.sessions:
                        break
                    await trio.sleep(0.01)
                assert not server.engine.sessions
                assert not server.of("/").adapter.rooms
            nursery.cancel_scope.cancel()
    assert ours(garbage) == []


async def test_freeze_gc_is_on_by_default_freezes_once_connections_arrive_and_thaws_at_stop() -> None:
    server = trio_rooms.Server()
    assert server.freeze_gc is True
    gc.unfreeze()
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(server.serve, "127.0.0.1", 0)
                url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
                await trio.sleep(1.5)
                assert gc.get_freeze_count() == 0, "no connection arrived: nothing to freeze"
                async with open_client(url, transports=("websocket",), **CLIENT_OPTIONS) as client:
                    for _ in range(100):  # within about a second
                        if gc.get_freeze_count():
                            break
                        await trio.sleep(0.05)
                    assert gc.get_freeze_count() > 0
                    assert client.connected
                nursery.cancel_scope.cancel()
        assert gc.get_freeze_count() == 0, "the server unfreezes everything when it stops"
    finally:
        gc.unfreeze()


async def test_freeze_gc_false_leaves_the_gc_alone() -> None:
    server = trio_rooms.Server(freeze_gc=False)
    gc.unfreeze()
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(server.serve, "127.0.0.1", 0)
                url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
                async with open_client(url, transports=("websocket",), **CLIENT_OPTIONS) as client:
                    await trio.sleep(1.5)
                    assert client.connected
                    assert gc.get_freeze_count() == 0
                nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()


class _Cycle:
    """An application object in a reference cycle (garbage only the cyclic GC can free)."""

    def __init__(self) -> None:
        self.me = self


def test_a_thaw_is_due_after_a_quarter_of_the_open_connections_closed() -> None:
    assert not thaw_due(THAW_MIN_CLOSED - 1, 0)
    assert thaw_due(THAW_MIN_CLOSED, 0)
    assert not thaw_due(2_499, 10_000)
    assert thaw_due(2_500, 10_000)


async def test_frozen_cyclic_garbage_is_collected_once_enough_connections_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    counters = Counters()
    open_now = [0]
    gc.unfreeze()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(manage_frozen_objects, counters, lambda: open_now[0])
            cycle = _Cycle()
            alive = weakref.ref(cycle)
            gc.collect()  # into the oldest generation, as a long-lived object would be
            counters.connections_total = open_now[0] = 1_000  # connections arrive
            await trio.sleep(FREEZE_INTERVAL * 1.5)
            assert gc.get_freeze_count() > 0
            del cycle
            gc.collect()
            assert alive() is not None, "frozen: the full collections no longer see it"
            open_now[0] = 1_000 - (THAW_MIN_CLOSED - 1)  # not enough closed for a thaw
            await trio.sleep(FREEZE_INTERVAL)
            assert alive() is not None
            open_now[0] -= 1  # now THAW_MIN_CLOSED closed, and at least a quarter of the open
            await trio.sleep(FREEZE_INTERVAL)
            assert alive() is None, "the thaw's full collection freed it"
            assert gc.get_freeze_count() > 0, "and froze the survivors again"
            nursery.cancel_scope.cancel()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
