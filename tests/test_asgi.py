"""trio_rooms under an ASGI server: tests/interop/asgi_app.py (the interop app as ``trio_rooms.ASGIApp``,
beside an application route and lifespan of its own) served by Hypercorn's trio worker in a real
subprocess (``python -m hypercorn -k trio``), and ``ASGIApp``'s own rules in process.

Real sockets and processes, so real time: every test runs under ``trio.fail_after``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers.asgi_harness import hypercorn, require_hypercorn, subprocess_env
from helpers.interop_harness import INTEROP_DIR
from helpers.raw_clients import WsClient, WsRejected, request

import trio_rooms
from trio_rooms.asgi import NOT_RUNNING, NOT_TRIO

GUARD = 40.0  # seconds: the fail_after of each test (a Hypercorn start costs about a second)
TRANSPORTS = [("websocket",), ("polling", "websocket"), ("polling",)]


@pytest.fixture(autouse=True)
def _hypercorn() -> None:
    require_hypercorn()


@asynccontextmanager
async def interop_app(tmp_path: Path, *args: str, **env: str) -> AsyncIterator[Any]:
    async with hypercorn(
        "asgi_app:app", cwd=INTEROP_DIR, log=tmp_path / "hypercorn.log", args=args, env=subprocess_env(**env)
    ) as server:
        yield server


async def test_trio_client_and_the_application_route(tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        async with interop_app(tmp_path) as server:
            hello = await request(server.port, "GET", "/hello")
            assert (hello.status, hello.body) == (200, b"hello from the application")
            assert (await request(server.port, "GET", "/elsewhere")).status == 404
            with pytest.raises(WsRejected):  # a WebSocket outside the Engine.IO path: the app's (none)
                await WsClient.connect(server.port, "/elsewhere")
            for transports in TRANSPORTS:
                await _client_scenario(server.url, transports)
            # The application route still answers after all that, on the same port.
            assert (await request(server.port, "GET", "/hello")).status == 200
            assert await server.stop() == 0
    assert "Traceback" not in server.log_text()


async def _client_scenario(url: str, transports: tuple[str, ...]) -> None:
    """Rooms, a union broadcast (each member once), socket.to (the sender left out), a private
    message, acks both ways and binary, with the Trio Client over ``transports``."""
    got: dict[str, list[Any]] = {"a": [], "b": [], "both": []}
    options: dict[str, Any] = {"transports": transports, "reconnection": False}
    async with (
        trio_rooms.open_client(url, **options) as a,
        trio_rooms.open_client(url, **options) as b,
        trio_rooms.open_client(url, **options) as both,
    ):
        for name, client in (("a", a), ("b", b), ("both", both)):

            def keep(name: str) -> Any:
                async def on_msg(payload: Any) -> None:
                    got[name].append(payload)

                return on_msg

            client.on("msg")(keep(name))

        @both.on("question")
        async def question(q: Any) -> Any:
            return {"answer": q, "raw": b"\x00\xff"}

        assert await a.emit_with_ack("join", "r1", timeout=5) == sorted(["r1", a.id or ""])
        await b.emit_with_ack("join", "r2", timeout=5)
        await both.emit_with_ack("join", ["r1", "r2"], timeout=5)
        assert await a.emit_with_ack("to_rooms", ["r1", "r2"], [], {"tag": "union"}, timeout=5) is True
        assert await a.emit_with_ack("socket_to", ["r1", "r2"], {"tag": "to"}, timeout=5) is True
        private: list[Any] = []

        @b.on("private")
        async def on_private(payload: Any, sender: str) -> None:
            private.append((payload, sender))

        await a.emit_with_ack("private", b.id, "psst", timeout=5)
        echoed = await a.emit_with_ack("echo", "x", b"\x01\x02", {"n": [1, b"\x03"]}, timeout=5)
        assert echoed == ("x", b"\x01\x02", {"n": [1, b"\x03"]})
        asked = await a.emit_with_ack("ask_client", "hi", 2, timeout=5)  # answered by "a": no handler
        assert asked == {"timeout": True}
        answered = await both.emit_with_ack("ask_client", "hi", 2, timeout=5)
        assert answered == {"n": 1, "args": [{"answer": "hi", "raw": {"bytes": "00ff"}}]}
        await trio.sleep(0.3)
        assert got["a"] == [{"tag": "union"}], transports
        assert got["b"] == [{"tag": "union"}, {"tag": "to"}], transports
        assert got["both"] == [{"tag": "union"}, {"tag": "to"}], transports
        assert private == [("psst", a.id)]
        assert a.transport == transports[-1]


async def test_lifespan_shutdown_disconnects_every_socket(tmp_path: Path) -> None:
    """SIGTERM: Hypercorn ends the open connections after its graceful timeout; the WebSocket's
    socket is disconnected "server shutting down" and closed with 1001; the polling socket is
    disconnected with the same reason at the lifespan shutdown, before the application's own
    shutdown (forwarded after the server's)."""
    events = tmp_path / "events"
    with trio.fail_after(GUARD):
        async with interop_app(tmp_path, "--graceful-timeout", "1", TRIO_ROOMS_EVENTS=str(events)) as server:
            ws = await WsClient.connect(server.port, "/socket.io/?EIO=4&transport=websocket")
            assert str(await ws.recv()).startswith("0{")
            await ws.send("40")
            assert str(await ws.recv_app()).startswith("40{")
            polling = trio_rooms.Client(server.url, transports=("polling",), reconnection=False)
            async with polling:
                assert polling.transport == "polling"
                await server.stop(signal.SIGTERM)
                code, _seen = await ws.wait_closed()
            assert code == 1001
            assert server.process.returncode == 0
    lines = events.read_text().splitlines()
    assert lines == [
        "lifespan startup",
        "disconnect server shutting down",
        "disconnect server shutting down",
        "lifespan shutdown",
    ], server.log_text()
    assert "Traceback" not in server.log_text()


# -- ASGIApp's own rules, in process -------------------------------------------------------------------
Message = MutableMapping[str, Any]


async def _call_http(app: Any, path: str) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        await trio.lowlevel.checkpoint()
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        await trio.lowlevel.checkpoint()
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []}
    await app(scope, receive, send)
    return sent


async def test_a_request_without_the_lifespan_fails_loudly() -> None:
    app = trio_rooms.ASGIApp(trio_rooms.Server())
    for path in ("/socket.io/", "/other"):
        with pytest.raises(RuntimeError) as raised:
            await _call_http(app, path)
        assert str(raised.value) == NOT_RUNNING
    assert "lifespan" in NOT_RUNNING and "server.running()" in NOT_RUNNING


async def test_lifespan_runs_the_machinery_around_the_other_apps() -> None:
    order: list[str] = []
    server = trio_rooms.Server()

    async def other(scope: Message, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            kind = message["type"].split(".")[1]
            order.append(f"other {kind} (server running: {server.engine.serving})")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return

    app = trio_rooms.ASGIApp(server, other)
    to_app, inbox = trio.open_memory_channel[Message](1)
    answers: list[str] = []
    answered = trio.Event()

    async def send(message: Message) -> None:
        await trio.lowlevel.checkpoint()
        answers.append(message["type"])
        answered.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, {"type": "lifespan"}, inbox.receive, send)
            await to_app.send({"type": "lifespan.startup"})
            await answered.wait()
            assert server.engine.serving
            assert (await _call_http(app, "/socket.io/"))[0]["status"] == 400  # routed: no EIO
            await to_app.send({"type": "lifespan.shutdown"})
    assert answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert order == ["other startup (server running: False)", "other shutdown (server running: False)"]
    assert not server.engine.serving


async def test_an_app_without_lifespan_support_is_left_out_of_it() -> None:
    async def http_only(scope: Message, receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "this application knows no lifespan"

    server = trio_rooms.Server()
    app = trio_rooms.ASGIApp(server, http_only)
    to_app, inbox = trio.open_memory_channel[Message](1)
    answers: list[str] = []

    async def send(message: Message) -> None:
        await trio.lowlevel.checkpoint()
        answers.append(message["type"])

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, {"type": "lifespan"}, inbox.receive, send)
            await to_app.send({"type": "lifespan.startup"})
            await to_app.send({"type": "lifespan.shutdown"})
    assert answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_an_asyncio_server_gets_a_clear_error() -> None:
    app = trio_rooms.ASGIApp(trio_rooms.Server())

    async def under_asyncio() -> None:
        async def receive() -> Message:
            return {"type": "lifespan.startup"}

        async def send(message: Message) -> None:
            pass

        await app({"type": "lifespan"}, receive, send)

    with pytest.raises(RuntimeError) as raised:
        asyncio.run(under_asyncio())
    assert str(raised.value) == NOT_TRIO
