"""Fakes (not mocks) for the adapter and broadcast tests: a namespace and sockets on memory channels.

A ``FakeSocket`` implements the part of ``trio_rooms.Socket`` that the adapter calls (``deliver``,
``add_ack_callback``, ``remove_ack_callback``, ``join``, ``leave``, ``disconnect``, ``id``,
``handshake``, ``rooms``, ``data``, ``nsp``). What it is delivered goes onto a bounded trio memory
channel, so that a full channel stands for a slow consumer; tests decode what arrived with
``trio_rooms.protocol`` and assert on event names and arguments.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable, Set
from typing import Any, cast

import trio
from wsproto.frame_protocol import FrameProtocol, Opcode

from trio_rooms._util import rooms_arg
from trio_rooms.adapter.memory import InMemoryAdapter
from trio_rooms.broadcast import BroadcastOperator
from trio_rooms.protocol import Decoder, EnginePacketType, Packet, PacketType, decode_ws
from trio_rooms.protocol.encoded import Encoded
from trio_rooms.recovery import ConnectionStateRecovery
from trio_rooms.stats import Counters
from trio_rooms.types import Handshake, Room, SocketId

__all__ = ["FakeNamespace", "FakeSocket", "decode_frames", "make_handshake"]


def make_handshake(auth: dict[str, Any] | None = None) -> Handshake:
    """A plausible handshake for a fake socket."""
    return Handshake(
        headers={"host": "test"},
        time="Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)",
        address="127.0.0.1",
        xdomain=False,
        secure=False,
        issued=0,
        url="/socket.io/?EIO=4&transport=websocket",
        query={"EIO": "4", "transport": "websocket"},
        auth=dict(auth or {}),
    )


def decode_frames(frames: bytes) -> list[Packet]:
    """Decode server WebSocket frames (as a client would) into the Socket.IO packets they carry."""
    ws = FrameProtocol(client=True, extensions=[])
    ws.receive_bytes(frames)
    decoder = Decoder()
    packets: list[Packet] = []
    text: list[str] = []
    binary: list[bytes] = []
    opcode: Opcode | None = None
    for frame in ws.received_frames():
        if frame.opcode is not Opcode.CONTINUATION:
            opcode = frame.opcode
        if opcode is Opcode.TEXT:
            text.append(cast(str, frame.payload))
        elif opcode is Opcode.BINARY:
            binary.append(bytes(cast(bytes, frame.payload)))
        else:
            raise AssertionError(f"unexpected WebSocket frame {frame.opcode!r}")
        if not frame.message_finished:
            continue
        message: str | bytes = "".join(text) if opcode is Opcode.TEXT else b"".join(binary)
        text.clear()
        binary.clear()
        engine_packet = decode_ws(message)
        assert engine_packet.type is EnginePacketType.MESSAGE, engine_packet
        packet = decoder.feed(engine_packet.data)
        if packet is not None:
            packets.append(packet)
    assert not decoder.awaiting_attachments, "a binary packet is missing attachments"
    return packets


class FakeSocket:
    """A connected socket whose client is a bounded memory channel.

    Args:
        nsp: the fake namespace.
        sid: the socket id.
        capacity: how many deliveries the channel holds before ``deliver`` drops (slow consumer).
    """

    def __init__(self, nsp: FakeNamespace, sid: str, capacity: int = 64) -> None:
        self.id = SocketId(sid)
        self.nsp = nsp
        self.handshake = make_handshake({"token": sid})
        self.data: dict[str, Any] = {}
        self.connected = True
        self.send, self.receive = trio.open_memory_channel[bytes](capacity)
        #: One entry per ``deliver`` call: the volatile flag it was given.
        self.volatile_flags: list[bool] = []
        #: Deliveries refused because the channel was full.
        self.dropped = 0
        #: The ``close`` argument of each ``disconnect`` call.
        self.disconnect_calls: list[bool] = []
        self.acks: dict[int, tuple[Callable[[Any], None], Callable[[], None]]] = {}

    def __repr__(self) -> str:
        return f"<FakeSocket {self.id}>"

    # -- the interface the adapter uses -----------------------------------------------------------
    def deliver(self, item: Encoded, volatile: bool = False) -> bool:
        self.volatile_flags.append(volatile)
        try:
            self.send.send_nowait(item.frames)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.dropped += 1
            return False
        return True

    def add_ack_callback(self, ack_id: int, answer: Callable[[Any], None], gone: Callable[[], None]) -> None:
        self.acks[ack_id] = (answer, gone)

    def remove_ack_callback(self, ack_id: int) -> bool:
        return self.acks.pop(ack_id, None) is not None

    def join(self, room_or_rooms: str | Iterable[str]) -> None:
        rooms = rooms_arg(room_or_rooms)
        if self.connected:
            self.nsp.adapter.add_all(self.id, rooms)

    def leave(self, room: str) -> None:
        self.nsp.adapter.remove(self.id, room)

    @property
    def rooms(self) -> Set[Room]:
        return frozenset(self.nsp.adapter.sids.get(self.id, frozenset()))

    async def disconnect(self, close: bool = False) -> None:
        self.disconnect_calls.append(close)
        self.go_away()
        await trio.lowlevel.checkpoint()

    # -- test controls ----------------------------------------------------------------------------
    def go_away(self) -> None:
        """Tear down as the real socket does: pending acks get ``gone()``, then membership goes."""
        if not self.connected:
            return
        self.connected = False
        for _answer, gone in list(self.acks.values()):
            gone()
        self.acks.clear()
        self.nsp.adapter.remove_all(self.id)
        self.nsp.sockets.pop(self.id, None)
        self.send.close()

    def answer(self, ack_id: int | None, value: Any) -> None:
        """The client acks ``ack_id`` with ``value`` (an unknown or late ack is ignored, as in Socket)."""
        assert ack_id is not None, "that packet asked for no ack"
        callbacks = self.acks.pop(ack_id, None)
        if callbacks is not None:
            callbacks[0](value)

    @property
    def queued(self) -> int:
        """How many deliveries wait in the channel."""
        return self.receive.statistics().current_buffer_used

    def packets(self) -> list[Packet]:
        """Every packet delivered so far and not yet read, decoded, in order."""
        packets: list[Packet] = []
        while True:
            try:
                frames = self.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return packets
            packets.extend(decode_frames(frames))

    async def next_packet(self) -> Packet:
        """Wait for the next delivery and decode its one packet."""
        (packet,) = decode_frames(await self.receive.receive())
        return packet

    def events(self) -> list[tuple[str, list[Any]]]:
        """(event name, arguments) of every EVENT delivered so far and not yet read."""
        found = []
        for packet in self.packets():
            assert packet.type is PacketType.EVENT, packet
            assert packet.nsp == self.nsp.name, packet
            name, *args = packet.data
            found.append((name, args))
        return found

    def event_names(self) -> list[str]:
        return [name for name, _args in self.events()]


class FakeNamespace:
    """The part of ``Namespace`` the adapter uses (``adapter.base.NamespaceView``), and its adapter."""

    def __init__(self, name: str = "/", recovery: ConnectionStateRecovery | None = None) -> None:
        self.name = name
        self.recovery = recovery
        self.sockets: dict[SocketId, FakeSocket] = {}
        self._ack_ids = itertools.count()
        self.counters = Counters()
        self.adapter = InMemoryAdapter(self)

    def next_ack_id(self) -> int:
        return next(self._ack_ids)

    def server_side_handler(self, event: str) -> Callable[..., Awaitable[Any]] | None:
        return None

    def connect(self, sid: str, rooms: Iterable[str] = (), *, capacity: int = 64) -> FakeSocket:
        """A socket connects as in ``Socket.run``: registered, then in its own room; then joins ``rooms``."""
        socket = FakeSocket(self, sid, capacity)
        self.sockets[socket.id] = socket
        self.adapter.add_all(socket.id, (socket.id,))
        if not isinstance(rooms, str):
            rooms = list(rooms)
        if rooms:
            socket.join(rooms)
        return socket

    @property
    def op(self) -> BroadcastOperator:
        """A broadcast operator selecting every socket of this namespace."""
        return BroadcastOperator(self.adapter)
