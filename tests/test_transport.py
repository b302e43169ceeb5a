"""The HTTP and WebSocket edge on real TCP: routing and the Engine.IO error answers, bounds on
the request head and on messages, WebSocket control frames, no compression."""

from __future__ import annotations

import json

import pytest
import trio
from helpers.serving import serving_port
from wsproto.events import Ping, Pong

import trio_rooms
from trio_rooms.protocol import PacketType
from trio_rooms.testing import open_test_client


async def tcp(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def raw_request(port: int, data: bytes, *, head_only: bool = False) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        received = b""
        while not (head_only and b"\r\n\r\n" in received):
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            received += chunk
        return received


def get(target: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: localhost", *extra, "", ""]
    return "\r\n".join(lines).encode()


UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
)


@pytest.mark.parametrize(
    ("target", "headers", "status", "code"),
    [
        ("/socket.io/?transport=websocket", UPGRADE, 400, 5),
        ("/socket.io/?EIO=3&transport=websocket", UPGRADE, 400, 5),
        ("/socket.io/?EIO=4", UPGRADE, 400, 0),
        ("/socket.io/?EIO=4&transport=carrier-pigeon", UPGRADE, 400, 0),
        ("/socket.io/?EIO=4&transport=websocket&sid=nope", UPGRADE, 400, 1),
        ("/socket.io/?EIO=4&transport=websocket", (), 400, 3),
        ("/elsewhere", UPGRADE, 404, None),
    ],
)
async def test_engine_error_answers(
    target: str, headers: tuple[str, ...], status: int, code: int | None
) -> None:
    server = trio_rooms.Server()
    with trio.fail_after(10):
        async with serving_port(server) as port:
            response = await raw_request(port, get(target, *headers))
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    if code is not None:
        assert json.loads(body)["code"] == code
        assert isinstance(json.loads(body)["message"], str)


async def test_oversized_request_head_is_refused() -> None:
    server = trio_rooms.Server()
    many = tuple(f"X-H{i}: {'v' * 50}" for i in range(1000))
    with trio.fail_after(10):
        async with serving_port(server) as port:
            response = await raw_request(port, get("/socket.io/?EIO=4&transport=websocket", *many))
    assert response.split(b" ")[1] in (b"400", b"431")


async def test_silent_client_is_dropped_after_handshake_timeout() -> None:
    server = trio_rooms.Server(request_timeout=0.3)
    with trio.fail_after(10):
        async with serving_port(server) as port:
            start = trio.current_time()
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                assert await stream.receive_some(100) == b""
            assert 0.25 < trio.current_time() - start < 3


async def test_upgrade_answer_has_no_compression_and_sid_per_session() -> None:
    server = trio_rooms.Server()
    with trio.fail_after(10):
        async with serving_port(server) as port:
            response = await raw_request(
                port,
                get(
                    "/socket.io/?EIO=4&transport=websocket",
                    *UPGRADE,
                    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                ),
                head_only=True,
            )
    head = response.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 101")
    assert b"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in head
    assert b"sec-websocket-extensions" not in head


async def test_oversized_message_closes_with_1009() -> None:
    server = trio_rooms.Server(max_payload=1000)
    with trio.fail_after(10):
        async with serving_port(server) as port, open_test_client(await tcp(port)) as client:
            await client.connect()
            await client.send_raw('42["big","' + "y" * 2000 + '"]')
            with pytest.raises(trio_rooms.Disconnected):
                while True:
                    await client.receive()
            assert client.closed is not None and client.closed.code == 1009


async def test_websocket_ping_is_answered_and_binary_roundtrip() -> None:
    server = trio_rooms.Server()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("bin")
        async def echo(data: dict[str, bytes]) -> tuple[bytes, dict[str, bytes]]:
            return data["a"] + data["b"], data

    with trio.fail_after(10):
        async with serving_port(server) as port, open_test_client(await tcp(port)) as client:
            await client.connect()
            await client.stream.send_all(client._ws.send(Ping(b"hi")))
            data = await client.stream.receive_some(100)
            client._ws.receive_data(bytes(data))
            assert any(isinstance(e, Pong) and e.payload == b"hi" for e in client._ws.events())
            await client.emit("bin", {"a": b"\x00\x01", "b": b"\xff"}, ack_id=4)
            ack = await client.receive()
    assert ack.type is PacketType.ACK  # the decoder reports reassembled binary packets as ACK
    assert ack.data == [b"\x00\x01\xff", {"a": b"\x00\x01", "b": b"\xff"}]


async def test_client_close_frame_is_answered() -> None:
    server = trio_rooms.Server()
    with trio.fail_after(10):
        async with serving_port(server) as port:
            async with open_test_client(await trio.open_tcp_stream("127.0.0.1", port)) as client:
                await client.connect()
                await client.close()
                with pytest.raises(trio_rooms.Disconnected):
                    while True:
                        await client.receive()
                assert client.closed is not None and client.closed.code == 1000
            await trio.sleep(0.05)
            assert server.stats()["connections"] == 0
