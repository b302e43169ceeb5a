"""The Engine.IO layer on its own (``trio_rooms.engine.EngineServer``), as python-engineio is used:
a connection handler iterating messages, sending, closing; over WebSocket and long-polling."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from trio_rooms.engine import EngineServer, EngineSession
from trio_rooms.errors import Disconnected
from trio_rooms.protocol import EnginePacket, EnginePacketType
from trio_rooms.testing import open_test_client


@asynccontextmanager
async def serving(engine: EngineServer) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(engine.serve, "127.0.0.1", 0)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


def echo_engine(**options: Any) -> tuple[EngineServer, list[str]]:
    engine = EngineServer(**options)
    log: list[str] = []

    @engine.on("connection")
    async def handler(session: EngineSession) -> None:
        log.append("open")
        async for message in session:
            if message == "bye":
                await session.close()
                break
            await session.send(message)
            await session.send(b"\x00" + (message.encode() if isinstance(message, str) else message))
        log.append(f"closed: {session.reason}")

    return engine, log


async def test_default_path_is_engine_io() -> None:
    assert EngineServer().options.path == "/engine.io/"
    with pytest.raises(ValueError, match="connection"):
        EngineServer().on("message")
    with pytest.raises(TypeError, match="async def"):
        EngineServer().on("connection")(lambda session: None)


async def test_websocket_messages_round_trip_and_close() -> None:
    engine, log = echo_engine()
    with trio.fail_after(10):
        async with serving(engine) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with open_test_client(stream, path="/engine.io/?EIO=4&transport=websocket") as client:
                await client.send_engine(EnginePacket(EnginePacketType.MESSAGE, "hello"))
                assert await client.receive_engine() == EnginePacket(EnginePacketType.MESSAGE, "hello")
                assert await client.receive_engine() == EnginePacket(EnginePacketType.MESSAGE, b"\x00hello")
                await client.send_engine(EnginePacket(EnginePacketType.MESSAGE, b"\x01\x02"))
                assert await client.receive_engine() == EnginePacket(EnginePacketType.MESSAGE, b"\x01\x02")
                assert await client.receive_engine() == EnginePacket(
                    EnginePacketType.MESSAGE, b"\x00\x01\x02"
                )
                await client.send_engine(EnginePacket(EnginePacketType.MESSAGE, "bye"))
                with pytest.raises(Disconnected):
                    while True:
                        await client.receive_engine()
            await trio.sleep(0.05)
    assert log == ["open", "closed: forced close"]


async def http(port: int, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        head = f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
        await stream.send_all(head.encode() + b"Connection: close\r\n\r\n" + body)
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


async def test_long_polling_messages_round_trip() -> None:
    engine, log = echo_engine()
    with trio.fail_after(10):
        async with serving(engine) as port:
            status, body = await http(port, "GET", "/engine.io/?EIO=4&transport=polling")
            assert status == 200 and body.startswith(b"0{")
            sid = json.loads(body[1:])["sid"]
            target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
            assert await http(port, "POST", target, b"4hi\x1ebAQI=") == (200, b"ok")
            status, body = await http(port, "GET", target)
            assert status == 200
            assert body.split(b"\x1e") == [b"4hi", b"bAGhp", b"bAQI=", b"bAAEC"]
            assert await http(port, "POST", target, b"4bye") == (200, b"ok")
            status, body = await http(port, "GET", target)
            assert (status, body) == (200, b"1")
            status, body = await http(port, "GET", target)
            assert status == 400 and json.loads(body)["code"] == 1
    assert log == ["open", "closed: forced close"]


async def test_handler_returning_closes_the_session() -> None:
    engine = EngineServer()

    @engine.on("connection")
    async def handler(session: EngineSession) -> None:
        await session.send("only this")

    with trio.fail_after(10):
        async with serving(engine) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with open_test_client(stream, path="/engine.io/?EIO=4&transport=websocket") as client:
                assert (await client.receive_engine()).data == "only this"
                with pytest.raises(Disconnected):
                    await client.receive_engine()
            await trio.sleep(0.05)
            assert not engine.sessions
