"""The Trio Client's application hooks (issue 15): ``on_any``, ``prepend_any``, ``off_any``,
``on_any_outgoing``, ``off_any_outgoing``, ``off``, ``timeout``, ``volatile`` and ``send``, against
our own Server on real TCP (127.0.0.1, port 0), over each transport set.

End to end, never interop (the JavaScript client's checks of the server's hooks are in
test_interop_hooks.py). Real sockets, so real time: every test runs under ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from helpers.serving import serving_url

import trio_rooms
from trio_rooms.client import open_client

GUARD = 20.0
TRANSPORTS = [
    pytest.param(("websocket",), id="websocket"),
    pytest.param(("polling", "websocket"), id="polling+upgrade"),
    pytest.param(("polling",), id="polling"),
]
FAST: dict[str, Any] = {
    "reconnection_delay": 0.05,
    "reconnection_delay_max": 0.2,
    "wait_timeout": 3.0,
    "timeout": 3.0,
}


def build_server(received: list[Any], **options: Any) -> trio_rooms.Server:
    """A server whose sockets record what they receive in ``received``, and push on demand."""
    server = trio_rooms.Server(**options)

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("echo")
        async def echo(*args: Any) -> tuple[Any, ...]:
            received.append(["echo", *args])
            return args

        @socket.on("message")
        async def message(*args: Any) -> None:
            received.append(["message", *args])
            await socket.send("got", *args)

        @socket.on("push")
        async def push(event: str, *args: Any) -> bool:
            await socket.emit(event, *args)
            return True

        @socket.on("ask")
        async def ask() -> Any:
            return await socket.emit_with_ack("question", 1, timeout=2)

        @socket.on("drop")
        async def drop() -> None:
            # Close the connection under the client (no DISCONNECT packet): it reconnects.
            socket._session.close(trio_rooms.DisconnectReason.TRANSPORT_CLOSE)
            await trio.lowlevel.checkpoint()

    return server


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (polled; the test's ``fail_after`` bounds the wait)."""
    for _ in range(2000):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("the condition never held")


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_catch_all_listeners_off_any_and_off(transports: tuple[str, ...]) -> None:
    """Catch-all listeners see every server event (prepended first, handled or not) before the
    handler; ``off_any(listener)``, ``off_any()`` and ``off(event)`` remove what they name."""
    seen: list[Any] = []
    with trio.fail_after(GUARD):
        async with (
            serving_url(build_server([])) as url,
            open_client(url, transports=transports, reconnection=False) as client,
        ):

            async def any1(event: str, *args: Any) -> None:
                seen.append(["any1", event, *args])

            async def any2(event: str, *args: Any) -> None:
                seen.append(["any2", event])

            async def pre(event: str, *args: Any) -> None:
                seen.append(["pre", event])

            @client.on("handled")
            async def handled(*args: Any) -> None:
                seen.append(["handler", "handled", *args])

            client.on_any(any1)
            client.on_any(any2)
            client.prepend_any(pre)
            assert await client.emit_with_ack("push", "unhandled", 1) is True
            assert await client.emit_with_ack("push", "handled", 2) is True
            await eventually(lambda: len(seen) == 7)
            assert seen == [
                ["pre", "unhandled"],
                ["any1", "unhandled", 1],
                ["any2", "unhandled"],
                ["pre", "handled"],
                ["any1", "handled", 2],
                ["any2", "handled"],
                ["handler", "handled", 2],
            ]
            seen.clear()
            client.off_any(any1)
            client.off("handled", any1)  # not its handler: kept
            await client.emit_with_ack("push", "handled", 3)
            await eventually(lambda: len(seen) == 3)
            assert seen == [["pre", "handled"], ["any2", "handled"], ["handler", "handled", 3]]
            seen.clear()
            client.off_any()
            client.off("handled")
            await client.emit_with_ack("push", "handled", 4)
            await client.emit_with_ack("echo")  # a round trip: anything from "push" came before
            await trio.sleep(0.1)
            assert seen == []


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_outgoing_listeners_timeout_volatile_and_send(transports: tuple[str, ...]) -> None:
    """``on_any_outgoing`` sees every emit form once and never an ack; ``timeout(s)`` bounds
    ``emit_with_ack``; ``send`` emits "message" both ways; ``off_any_outgoing`` removes it."""
    received: list[Any] = []
    out: list[Any] = []
    got: list[Any] = []
    with trio.fail_after(GUARD):
        async with (
            serving_url(build_server(received)) as url,
            open_client(url, transports=transports, reconnection=False) as client,
        ):

            @client.on("question")
            async def question(n: int) -> int:
                return n * 10

            @client.on("message")
            async def message(*args: Any) -> None:
                got.append(list(args))

            def outgoing(event: str, *args: Any) -> None:
                out.append([event, *args])

            assert client.on_any_outgoing(outgoing) is outgoing
            await client.emit("echo", "a")
            assert await client.emit_with_ack("echo", "b") == "b"
            assert await client.timeout(2).emit_with_ack("echo", "c") == "c"
            await client.volatile.emit("echo", "d")
            await client.send("hi", 5)
            assert await client.emit_with_ack("ask") == 10  # the client's ack of "question" is no emit
            with pytest.raises(trio_rooms.AckTimeout):
                await client.timeout(0.2).emit_with_ack("silence")  # no handler: no ack
            await eventually(lambda: got == [["got", "hi", 5]])
            client.off_any_outgoing(outgoing)
            await client.emit("echo", "e")
            await eventually(lambda: ["echo", "e"] in received)
    assert out == [
        ["echo", "a"],
        ["echo", "b"],
        ["echo", "c"],
        ["echo", "d"],
        ["message", "hi", 5],
        ["ask"],
        ["silence"],
    ]
    assert ["message", "hi", 5] in received


async def test_volatile_is_dropped_while_disconnected_and_buffered_emits_are_told_when_sent() -> None:
    """While the client reconnects, a volatile emit is dropped (no error, never sent) and a plain one
    is buffered; the outgoing listener hears of the buffered one when it is sent."""
    received: list[Any] = []
    out: list[Any] = []
    with trio.fail_after(GUARD):
        async with (
            serving_url(build_server(received)) as url,
            open_client(url, transports=("websocket",), **FAST) as client,
        ):
            client.on_any_outgoing(lambda event, *args: out.append([event, *args]))
            reconnected = trio.Event()

            @client.on("connect")
            async def on_connect() -> None:
                reconnected.set()

            await client.emit("drop")
            await eventually(lambda: not client.connected)
            await client.volatile.emit("echo", "volatile")
            await client.emit("echo", "buffered")
            assert out == [["drop"]]  # the buffered one is not sent yet
            await reconnected.wait()
            await eventually(lambda: ["echo", "buffered"] in received)
            await client.emit_with_ack("echo", "last")
    assert ["echo", "volatile"] not in received
    assert out == [["drop"], ["echo", "buffered"], ["echo", "last"]]


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_catch_all_listeners_never_see_the_reserved_events(transports: tuple[str, ...]) -> None:
    """As socket.io-client's ``onAny``: "connect", "disconnect" and "connect_error" reach their
    handlers only, never ``on_any``/``prepend_any`` (whether the connection was lost, an attempt
    failed, or the client left), and the outgoing listeners see only what was emitted."""
    refusing = False

    async def allow_request(request: trio_rooms.HttpRequest) -> bool:
        await trio.lowlevel.checkpoint()
        return not refusing

    handled: list[Any] = []
    caught: list[Any] = []
    out: list[Any] = []
    with trio.fail_after(GUARD):
        async with serving_url(build_server([], allow_request=allow_request)) as url:
            async with open_client(url, transports=transports, **FAST) as client:

                @client.on("connect")
                async def on_connect() -> None:
                    handled.append("connect")

                @client.on("disconnect")
                async def on_disconnect(reason: str) -> None:
                    handled.append("disconnect")

                @client.on("connect_error")
                async def on_connect_error(error: Any) -> None:
                    handled.append("connect_error")

                async def catch(event: str, *args: Any) -> None:
                    caught.append(event)

                client.on_any(catch)
                client.prepend_any(catch)
                client.on_any_outgoing(lambda event, *args: out.append(event))
                await client.emit_with_ack("push", "before", 1)
                refusing = True  # the reconnection attempts fail (403) until allowed again
                await client.emit("drop")
                await eventually(lambda: "connect_error" in handled)
                refusing = False
                await eventually(lambda: handled.count("connect") == 2 and client.connected)
                await client.emit_with_ack("push", "after", 2)
                await eventually(lambda: caught.count("after") == 2)
            assert handled[0] == "connect" and handled[-1] == "disconnect"  # the block's end: awaited
    assert set(handled) == {"connect", "disconnect", "connect_error"}
    assert handled.count("disconnect") == 2
    assert caught == ["before", "before", "after", "after"]
    assert out == ["push", "drop", "push"]
