"""The Socket.IO protocol by hand: an echo client framed with the sans-IO ``trio_rooms.protocol``.

Usage::

    python examples/raw_client.py client --url ws://127.0.0.1:3000   # against python -m trio_rooms
    python examples/raw_client.py demo                               # with a server of its own

An application uses ``trio_rooms.open_client`` (``examples/echo.py``, ``examples/client.py``). This
example shows what travels underneath: ``RawClient`` opens a WebSocket with trio-websocket to
``/socket.io/?EIO=4&transport=websocket`` and speaks Engine.IO v4 / Socket.IO v5 with
``trio_rooms.protocol`` (``decode_ws``, ``encode_ws``, ``encode``, ``Decoder``, ``parse_open``): it reads
the OPEN packet, answers pings, CONNECTs to "/" (with an ``auth`` payload), emits "echo" with an ack
id and reassembles binary attachments. The check is ``examples/echo.py``'s: both the echoed event and
the ack carry what was sent (a str, a nested object and bytes). It exits 0 on success, 1 on a
mismatch, an error or a 10 s timeout.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import trio
import trio_websocket

import trio_rooms
from trio_rooms.__main__ import add_echo
from trio_rooms.protocol import (
    Decoder,
    EnginePacket,
    EnginePacketType,
    Packet,
    PacketType,
    decode_ws,
    encode,
    encode_ws,
    parse_open,
)

__all__ = ["CLIENT_TIMEOUT", "Event", "RawClient", "open_raw_client", "run_echo_client"]

CLIENT_TIMEOUT: Final = 10.0
ECHO_ARGS: Final[tuple[Any, ...]] = ("hello", {"n": 1, "nested": [1, 2.5, None, True]}, b"\x00\xffbytes")

Event = tuple[str, list[Any]]
"""A received EVENT: its name and its arguments."""


def engineio_url(url: str, path: str = "/socket.io/") -> str:
    """``ws://host:port`` (or ``http://...``) -> the Engine.IO v4 WebSocket URL on ``path``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"expected a ws://, wss://, http:// or https:// URL, got {url!r}")
    return urlunsplit((scheme, parts.netloc, path, "EIO=4&transport=websocket", ""))


class RawClient:
    """A minimal Socket.IO client of one namespace over one WebSocket, framed by hand.

    It is pull-based: Engine.IO pings are answered while the application waits in ``next_event``,
    ``call`` or ``wait_until`` (fine for short scripts; a real client answers from a reader task).
    Every EVENT received is appended to ``events``, in arrival order.
    """

    def __init__(self, ws: trio_websocket.WebSocketConnection, nsp: str = "/") -> None:
        self.ws = ws
        self.nsp = nsp
        self.sid: str | None = None
        self.events: list[Event] = []
        self._decoder = Decoder()
        self._ack_ids = itertools.count(1)
        self._acks: dict[int, list[Any]] = {}

    # -- sending ------------------------------------------------------------------------------
    async def send(self, packet: Packet) -> None:
        """Send one Socket.IO packet: its text, then each binary attachment, as Engine.IO MESSAGEs."""
        text, attachments = encode(packet)
        await self.ws.send_message(encode_ws(EnginePacket(EnginePacketType.MESSAGE, text)))
        for attachment in attachments:
            await self.ws.send_message(encode_ws(EnginePacket(EnginePacketType.MESSAGE, attachment)))

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args``, asking for no ack."""
        await self.send(Packet(PacketType.EVENT, self.nsp, [event, *args]))

    async def call(self, event: str, *args: Any) -> list[Any]:
        """Send ``event`` with an ack id and return the arguments of the server's ACK."""
        ack_id = next(self._ack_ids)
        await self.send(Packet(PacketType.EVENT, self.nsp, [event, *args], ack_id))
        while ack_id not in self._acks:
            await self._receive()
        return self._acks.pop(ack_id)

    # -- receiving ----------------------------------------------------------------------------
    async def _receive(self) -> Packet:
        """Read until one Socket.IO packet is complete (answering pings), and account for it."""
        while True:
            try:
                message = await self.ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                raise trio_rooms.Disconnected(f"transport close ({exc.reason})") from None
            engine = decode_ws(message)
            if engine.type is EnginePacketType.PING:
                await self.ws.send_message(encode_ws(EnginePacket(EnginePacketType.PONG, engine.data)))
            elif engine.type is EnginePacketType.CLOSE:
                raise trio_rooms.Disconnected("transport close")
            elif engine.type is EnginePacketType.MESSAGE:
                packet = self._decoder.feed(engine.data)
                if packet is not None:
                    break
        if packet.nsp == self.nsp:
            if packet.type is PacketType.EVENT:
                self.events.append((packet.data[0], packet.data[1:]))
            elif packet.type is PacketType.ACK and packet.ack_id is not None:
                self._acks[packet.ack_id] = packet.data
            elif packet.type is PacketType.DISCONNECT:
                raise trio_rooms.Disconnected("io server disconnect")
        return packet

    async def open(self) -> None:
        """Read the Engine.IO OPEN packet (the handshake)."""
        engine = decode_ws(await self.ws.get_message())
        if engine.type is not EnginePacketType.OPEN or not isinstance(engine.data, str):
            raise trio_rooms.RemoteProtocolError(f"expected an OPEN packet, got {engine.type.name}")
        parse_open(engine.data)  # sid, pingInterval, pingTimeout, maxPayload: checked, unused here

    async def connect(self, auth: dict[str, Any] | None = None) -> str:
        """CONNECT to the namespace (with ``auth``) and return the socket id the server gave."""
        await self.send(Packet(PacketType.CONNECT, self.nsp, auth))
        while True:
            packet = await self._receive()
            if packet.nsp != self.nsp:
                continue
            if packet.type is PacketType.CONNECT:
                self.sid = str(packet.data["sid"])
                return self.sid
            if packet.type is PacketType.CONNECT_ERROR:
                message = packet.data.get("message") if isinstance(packet.data, dict) else packet.data
                raise trio_rooms.NamespaceRejected(str(message), packet.data)

    async def next_event(self) -> Event:
        """Wait for the next EVENT (it is also recorded in ``events``)."""
        seen = len(self.events)
        while len(self.events) == seen:
            await self._receive()
        return self.events[seen]

    async def wait_until(self, done: Callable[[list[Event]], bool]) -> None:
        """Receive until ``done(self.events)`` is true."""
        while not done(self.events):
            await self._receive()

    async def disconnect(self) -> None:
        """Leave the namespace (DISCONNECT: the server's reason is "client namespace disconnect")."""
        await self.send(Packet(PacketType.DISCONNECT, self.nsp))


@asynccontextmanager
async def open_raw_client(url: str, *, auth: dict[str, Any] | None = None) -> AsyncIterator[RawClient]:
    """Connect to the server at ``url`` (``ws://host:port``) and to its main namespace.

    On a normal exit the client sends DISCONNECT, then the WebSocket is closed.
    """
    async with trio_websocket.open_websocket_url(engineio_url(url)) as ws:
        client = RawClient(ws)
        await client.open()
        await client.connect(auth)
        yield client
        if not ws.closed:
            await client.disconnect()


async def run_echo_client(url: str, *, args: Sequence[Any] = ECHO_ARGS) -> bool:
    """Emit "echo" with ``args`` and an ack id; check the echoed event and the ack. True when both match."""
    expected = list(args)
    async with open_raw_client(url) as client:
        print(f"connected to {url} as {client.sid}")
        ack = await client.call("echo", *args)
        print(f"echo ack: {ack!r}")
        await client.wait_until(lambda events: any(name == "echo" for name, _ in events))
        echoed = next(event_args for name, event_args in client.events if name == "echo")
        print(f"echo event: {echoed!r}")
    ok = ack == expected and echoed == expected
    if not ok:
        print(f"MISMATCH: sent {expected!r}", file=sys.stderr)
    return ok


async def client_main(url: str) -> int:
    """The ``client`` command: 0 on a matching echo, 1 otherwise (error, mismatch or timeout)."""
    with trio.move_on_after(CLIENT_TIMEOUT):
        try:
            return 0 if await run_echo_client(url) else 1
        except (OSError, trio_websocket.HandshakeError, trio_rooms.TrioRoomsError) as exc:
            print(f"raw client failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print(f"raw client: no complete echo within {CLIENT_TIMEOUT} s", file=sys.stderr)
    return 1


async def demo() -> int:
    """The ``demo`` command: the server on a free loopback port, the client against it, then stop."""
    async with trio.open_nursery() as nursery:
        server = trio_rooms.Server()
        add_echo(server.of("/"))
        listeners: list[trio.SocketListener] = await nursery.start(server.serve, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        code = await client_main(f"ws://127.0.0.1:{port}")
        nursery.cancel_scope.cancel()  # graceful shutdown of the server
    print("raw client demo: OK" if code == 0 else "raw client demo: FAILED")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="trio_rooms: a Socket.IO client framed by hand")
    commands = parser.add_subparsers(dest="command", required=True)
    client = commands.add_parser("client", help="echo once against a running server")
    client.add_argument("--url", default="ws://127.0.0.1:3000")
    commands.add_parser("demo", help="a server of its own on a free port, and the client against it")
    args = parser.parse_args(argv)
    if args.command == "client":
        return trio.run(client_main, args.url)
    return trio.run(demo)


if __name__ == "__main__":
    sys.exit(main())
