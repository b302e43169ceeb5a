"""Public test helpers: an in-memory listener and a raw Engine.IO/Socket.IO test client.

Rule: the client speaks the wire protocol by hand over any trio stream (memory streams for
virtual-time tests, TCP for real ones), so tests see exactly the packets the server sends.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from .errors import Disconnected, RemoteProtocolError
from .protocol.engineio import EnginePacket, EnginePacketType, OpenInfo, decode_ws, encode_ws, parse_open
from .protocol.socketio import Decoder, Packet, PacketType, encode

if TYPE_CHECKING:
    from .server import Server

__all__ = ["MemoryListener", "TestClient", "open_memory_server", "open_test_client"]


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose connections are in-memory stream pairs (``connect()`` makes one)."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](math.inf)

    async def connect(self) -> trio.abc.Stream:
        """Open a connection; return the client's end."""
        client, server = trio.testing.memory_stream_pair()
        self._send.send_nowait(server)
        await trio.lowlevel.checkpoint()
        return client

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("listener closed") from None

    async def aclose(self) -> None:
        self._receive.close()
        await trio.lowlevel.checkpoint()


@asynccontextmanager
async def open_memory_server(server: Server) -> AsyncIterator[MemoryListener]:
    """Serve ``server`` on a ``MemoryListener`` for the duration of the block (then shut down)."""
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_listeners, [listener])
        yield listener
        nursery.cancel_scope.cancel()


class TestClient:
    """A raw client for tests: WebSocket + Engine.IO + Socket.IO framing done by hand.

    Attributes:
        open_info: the server's open packet.
        answer_pings: answer Engine.IO pings automatically (set False to play a dead client).
        engine_packets: non-message Engine.IO packets seen (pings included), in order.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, stream: trio.abc.Stream, *, answer_pings: bool = True) -> None:
        self.stream = stream
        self.answer_pings = answer_pings
        self.open_info: OpenInfo | None = None
        self.engine_packets: list[EnginePacket] = []
        self.closed: CloseConnection | None = None
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._decoder = Decoder(max_attachments=1000, max_depth=1000)
        self._parts: list[Any] = []

    async def _send(self, event: Any) -> None:
        await self.stream.send_all(self._ws.send(event))

    async def handshake(self, path: str = "/socket.io/?EIO=4&transport=websocket") -> OpenInfo:
        """Upgrade to WebSocket and read the open packet."""
        await self._send(Request(host="localhost", target=path))
        while True:
            for event in self._ws.events():
                if isinstance(event, AcceptConnection):
                    message = await self.receive_engine()
                    if message.type is not EnginePacketType.OPEN or not isinstance(message.data, str):
                        raise RemoteProtocolError(f"expected an open packet, got {message!r}")
                    self.open_info = parse_open(message.data)
                    return self.open_info
                if isinstance(event, RejectConnection):
                    raise Disconnected(f"upgrade rejected with {event.status_code}")
            data = await self.stream.receive_some(65536)
            if not data:
                raise Disconnected("closed during handshake")
            self._ws.receive_data(bytes(data))

    async def _next_message(self) -> str | bytes:
        text: list[str] = []
        raw: list[bytes] = []
        while True:
            for event in self._ws.events():
                if isinstance(event, Ping):
                    await self._send(event.response())
                elif isinstance(event, CloseConnection):
                    self.closed = event
                    if self._ws.state.name in ("REMOTE_CLOSING", "OPEN"):
                        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                            await self._send(event.response())
                    raise Disconnected(f"websocket closed ({event.code})")
                elif isinstance(event, TextMessage):
                    text.append(event.data)
                    if event.message_finished:
                        return "".join(text)
                elif isinstance(event, BytesMessage):
                    raw.append(bytes(event.data))
                    if event.message_finished:
                        return b"".join(raw)
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.closed = CloseConnection(code=1006)
                raise Disconnected("transport closed")
            self._ws.receive_data(bytes(data))

    async def receive_engine(self) -> EnginePacket:
        """The next Engine.IO packet (pings are answered first when ``answer_pings``)."""
        packet = decode_ws(await self._next_message())
        if packet.type is EnginePacketType.PING and self.answer_pings:
            await self.send_engine(EnginePacket(EnginePacketType.PONG, packet.data))
        return packet

    async def receive(self) -> Packet:
        """The next Socket.IO packet; other Engine.IO packets are recorded in ``engine_packets``."""
        while True:
            packet = await self.receive_engine()
            if packet.type is not EnginePacketType.MESSAGE:
                self.engine_packets.append(packet)
                if packet.type is EnginePacketType.CLOSE:
                    raise Disconnected("engine.io close packet")
                continue
            decoded = self._decoder.feed(packet.data)
            if decoded is not None:
                return decoded

    async def send_engine(self, packet: EnginePacket) -> None:
        """Send one Engine.IO packet."""
        data = encode_ws(packet)
        await self._send(Message(data=data))

    async def send_raw(self, message: str | bytes) -> None:
        """Send one WebSocket message as is."""
        await self._send(Message(data=message))

    async def send_raw_many(self, messages: list[str]) -> None:
        """Send several text messages as is, in one write (the server reads them at once)."""
        data = b""
        for message in messages:
            data += self._ws.send(Message(data=message))
        await self.stream.send_all(data)

    async def send(self, packet: Packet) -> None:
        """Send one Socket.IO packet (with its binary attachments)."""
        text, attachments = encode(packet)
        await self.send_raw("4" + text)
        for attachment in attachments:
            await self.send_raw(attachment)

    async def connect(self, nsp: str = "/", auth: dict[str, Any] | None = None) -> Packet:
        """Send CONNECT and return the answer (CONNECT with the sid, or CONNECT_ERROR)."""
        await self.send(Packet(PacketType.CONNECT, nsp, auth))
        while True:
            packet = await self.receive()
            if packet.nsp == nsp and packet.type in (PacketType.CONNECT, PacketType.CONNECT_ERROR):
                return packet

    async def emit(self, event: str, *args: Any, nsp: str = "/", ack_id: int | None = None) -> None:
        """Send an EVENT (asking for an ack when ``ack_id`` is given)."""
        await self.send(Packet(PacketType.EVENT, nsp, [event, *args], ack_id))

    async def close(self, code: int = 1000) -> None:
        """Close the WebSocket from our side."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._send(CloseConnection(code=code))


@asynccontextmanager
async def open_test_client(
    stream: trio.abc.Stream, *, answer_pings: bool = True, path: str = "/socket.io/?EIO=4&transport=websocket"
) -> AsyncIterator[TestClient]:
    """A ``TestClient`` on ``stream``, handshake done; the stream is closed on exit.

    Args:
        stream: a connected stream to the server (``MemoryListener.connect()``, or
            ``trio.open_tcp_stream``).
        answer_pings: answer the server's Engine.IO pings (False plays a dead client).
        path: the request target of the WebSocket handshake (the Engine.IO path and its query).
    """
    client = TestClient(stream, answer_pings=answer_pings)
    try:
        await client.handshake(path)
        yield client
    finally:
        await trio.aclose_forcefully(stream)
