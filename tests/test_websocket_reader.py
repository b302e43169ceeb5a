"""The server's WebSocketReader over a memory stream: the messages it returns, the pongs it writes, why the
connection ended (``reason``) and the close frame it gives to send last (``closing_frame()``), for each way
a client's frames can end the reading.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from helpers.worst_shapes import BINARY, CONTINUATION, PING, TEXT, ws_frame

from trio_rooms.engine.outbound import Outbound
from trio_rooms.engine.websocket import WebSocketReader
from trio_rooms.errors import DisconnectReason
from trio_rooms.protocol.websocket import close_frame, pong_frame
from trio_rooms.stats import Counters

CLOSE = 0x8
PONG = 0xA
GUARD = 5.0


@dataclass
class Pair:
    """The server's side of a connection as two memory streams: the client's bytes are put into ``inbound``,
    what the server writes is taken from ``outbound``."""

    inbound: trio.testing.MemoryReceiveStream
    outbound: trio.testing.MemorySendStream
    reader: WebSocketReader

    async def send(self, data: bytes) -> None:
        self.inbound.put_data(data)

    def close(self) -> None:
        self.inbound.put_eof()

    async def sent_to_client(self) -> bytes:
        """What the server wrote so far."""
        await trio.testing.wait_all_tasks_blocked()
        try:
            return bytes(self.outbound.get_data_nowait())
        except trio.WouldBlock:
            return b""


@asynccontextmanager
async def reading(trailing: bytes = b"", *, max_message: int = 1_000) -> AsyncIterator[Pair]:
    inbound, outbound = trio.testing.MemoryReceiveStream(), trio.testing.MemorySendStream()
    server = trio.StapledStream(outbound, inbound)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            writer = Outbound(server, nursery=nursery, on_overflow=lambda: None, stats=Counters())
            yield Pair(inbound, outbound, WebSocketReader(server, writer, trailing, max_message=max_message))
            nursery.cancel_scope.cancel()


async def test_messages_and_one_pong_for_a_run_of_pings() -> None:
    async with reading(ws_frame(TEXT, b"first")) as pair:
        await pair.send(
            ws_frame(PING, b"1")
            + ws_frame(PING, b"2")
            + ws_frame(PONG, b"ignored")
            + ws_frame(BINARY, b"\x00", fin=False)
            + ws_frame(CONTINUATION, b"\x01")
        )
        assert await pair.reader.receive() == "first"  # the bytes after the handshake come first
        assert await pair.reader.receive() == b"\x00\x01"
        assert await pair.sent_to_client() == pong_frame(b"2")
        assert pair.reader.reason is None


async def test_end_of_stream() -> None:
    async with reading() as pair:
        pair.close()
        assert await pair.reader.receive() is None
        assert pair.reader.reason is DisconnectReason.TRANSPORT_CLOSE
        assert pair.reader.closing_frame() == close_frame(1000)
        assert pair.reader.closing_frame() == b""  # given once


@pytest.mark.parametrize(
    ("payload", "reason", "answer"),
    [
        (b"\x03\xe8", DisconnectReason.TRANSPORT_CLOSE, 1000),
        (b"\x03\xe9bye", DisconnectReason.TRANSPORT_CLOSE, 1000),
        (b"", DisconnectReason.TRANSPORT_CLOSE, 1000),
        (b"\x03\xf3", DisconnectReason.TRANSPORT_ERROR, 1002),  # 1011, internal error
        (b"\x0f\xa0", DisconnectReason.TRANSPORT_ERROR, 1002),  # 4000, an application's code
    ],
    ids=["1000", "1001", "no-code", "1011", "4000"],
)
async def test_client_close(payload: bytes, reason: DisconnectReason, answer: int) -> None:
    """A valid close frame ends the reading; a ping just before it is not answered any more."""
    async with reading() as pair:
        await pair.send(ws_frame(PING, b"late") + ws_frame(CLOSE, payload))
        assert await pair.reader.receive() is None
        assert pair.reader.reason is reason
        assert pair.reader.closing_frame() == close_frame(answer)
        assert await pair.sent_to_client() == b""


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (ws_frame(TEXT, b"ok\xff"), 1007),
        (ws_frame(TEXT, b"\xc3", fin=False) + ws_frame(CONTINUATION, b"\x28"), 1007),
        (b"\x81\x02hi", 1002),  # unmasked
        (ws_frame(TEXT, b"x", fin=False) + ws_frame(TEXT, b"y"), 1002),
        (ws_frame(CLOSE, b"\x03\xed"), 1002),  # 1005 may not be sent
        (ws_frame(BINARY, b"x" * 1_001), 1009),
        (ws_frame(TEXT, b"x" * 600, fin=False) + ws_frame(CONTINUATION, b"x" * 401), 1009),
    ],
    ids=[
        "utf8",
        "utf8-across-fragments",
        "unmasked",
        "no-continuation",
        "close-1005",
        "too-big",
        "too-big-fragments",
    ],
)
async def test_protocol_errors_close_with_their_code(frames: bytes, code: int) -> None:
    """A violation ends the reading as a transport error; the close frame carries its code, after the pong
    of a ping that came before it."""
    async with reading() as pair:
        await pair.send(ws_frame(TEXT, b"before") + ws_frame(PING, b"p") + frames)
        assert await pair.reader.receive() == "before"
        assert await pair.reader.receive() is None
        assert pair.reader.reason is DisconnectReason.TRANSPORT_ERROR
        assert await pair.sent_to_client() == pong_frame(b"p")
        assert pair.reader.closing_frame() == close_frame(code)


async def test_message_at_the_limit() -> None:
    async with reading(max_message=10) as pair:
        assert pair.reader.max_message == 10
        await pair.send(ws_frame(TEXT, "é".encode() * 5))
        assert await pair.reader.receive() == "é" * 5


async def test_going_away_and_no_pong_after_the_close_frame() -> None:
    async with reading() as pair:
        pair.reader.set_close_code(1001)
        assert pair.reader.closing_frame() == close_frame(1001)
        pair.reader.set_close_code(1000)  # too late: the close frame was given
        assert pair.reader.closing_frame() == b""
        await pair.send(ws_frame(PING, b"p") + ws_frame(TEXT, b"m"))
        assert await pair.reader.receive() == "m"
        assert await pair.sent_to_client() == b""
