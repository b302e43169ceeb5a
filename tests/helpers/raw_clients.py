"""Raw protocol clients for the conformance tests: HTTP over h11 and WebSocket over wsproto, by hand.

Rule: independent of trio_rooms' own code (no import of trio_rooms), so that our server and our
client, which share ``trio_rooms.protocol``, cannot agree on a shared mistake here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

RS: Final = "\x1e"
EIO_PATH: Final = "/engine.io/"
SIO_PATH: Final = "/socket.io/"


# ------------------------------------------------------------------------------------------------
# Raw HTTP (h11 client)
# ------------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    #: Every header line as sent (names lower-cased), repeated names included.
    lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def packets(self) -> list[str]:
        """The long-polling payload split into its packets."""
        return self.text.split(RS)


class HttpClient:
    """One HTTP/1.1 connection (keep-alive) driven by an h11 client."""

    def __init__(self, stream: trio.SocketStream, port: int) -> None:
        self.stream = stream
        self.port = port
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> HttpClient:
        return cls(await trio.open_tcp_stream("127.0.0.1", port), port)

    async def request(
        self, method: str, target: str, body: bytes | str = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        data = body.encode() if isinstance(body, str) else body
        head = [("host", f"127.0.0.1:{self.port}"), *headers]
        if method in ("POST", "PUT") or data:
            head.append(("content-length", str(len(data))))
        out = conn.send(h11.Request(method=method, target=target, headers=head)) or b""
        if data:
            out += conn.send(h11.Data(data=data)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(out)
        return await self.read_response()

    async def read_response(self) -> Response:
        conn = self.h11
        status = 0
        headers: dict[str, str] = {}
        lines: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await self.stream.receive_some(65536)))
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    key = name.decode().lower()
                    lines.append((key, value.decode()))
                    headers[key] = f"{headers[key]}, {value.decode()}" if key in headers else value.decode()
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, headers, b"".join(chunks), lines)
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("connection closed before a complete response")

    async def at_eof(self) -> bool:
        """True when the server closed the connection (within a short wait)."""
        with trio.move_on_after(1):
            try:
                return await self.stream.receive_some(1) == b""
            except trio.BrokenResourceError:
                return True
        return False

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def request(
    port: int,
    method: str,
    target: str,
    body: bytes | str = b"",
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """One request on a fresh connection."""
    client = await HttpClient.open(port)
    try:
        return await client.request(method, target, body, headers)
    finally:
        await client.aclose()


def polling(sid: str | None = None, path: str = EIO_PATH) -> str:
    target = f"{path}?EIO=4&transport=polling"
    return target if sid is None else f"{target}&sid={sid}"


async def open_polling(port: int, path: str = EIO_PATH, headers: Iterable[tuple[str, str]] = ()) -> str:
    """Open a long-polling session; return its sid."""
    response = await request(port, "GET", polling(path=path), headers=headers)
    assert response.status == 200, response
    assert response.text[0] == "0"
    sid = json.loads(response.text[1:])["sid"]
    assert isinstance(sid, str)
    return sid


async def get(port: int, sid: str, path: str = EIO_PATH) -> Response:
    return await request(port, "GET", polling(sid, path))


async def post(port: int, sid: str, body: str | bytes, path: str = EIO_PATH) -> Response:
    return await request(port, "POST", polling(sid, path), body)


def assert_engine_error(response: Response, status: int, code: int, message: str) -> None:
    """The reference server's error answer: ``status`` and JSON ``{"code", "message"}``."""
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": code, "message": message}


# ------------------------------------------------------------------------------------------------
# Raw WebSocket (wsproto client)
# ------------------------------------------------------------------------------------------------


class WsRejected(Exception):  # noqa: N818
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upgrade refused with {status}")
        self.status = status
        self.body = body


class WsClosed(Exception):  # noqa: N818
    def __init__(self, code: int) -> None:
        super().__init__(f"websocket closed ({code})")
        self.code = code


class WsClient:
    """A raw WebSocket client: text and binary messages as they are on the wire."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.close_code: int | None = None
        #: The extra header lines of the server's 101 answer (names lower-cased).
        self.accept_headers: list[tuple[str, str]] = []

    @classmethod
    async def connect(cls, port: int, target: str, headers: Sequence[tuple[str, str]] = ()) -> WsClient:
        """Open the WebSocket (raises ``WsRejected`` with the HTTP status when refused)."""
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        extra = [(k.encode(), v.encode()) for k, v in headers]
        await client.stream.send_all(
            client.ws.send(Request(host=f"127.0.0.1:{port}", target=target, extra_headers=extra))
        )
        status = 0
        body = b""
        while True:
            for event in client.ws.events():
                if isinstance(event, AcceptConnection):
                    client.accept_headers = [(k.decode().lower(), v.decode()) for k, v in event.extra_headers]
                    return client
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        await client.aclose()
                        raise WsRejected(status, body)
                if isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished:
                        await client.aclose()
                        raise WsRejected(status, body)
            data = await client.stream.receive_some(65536)
            if not data:
                await client.aclose()
                raise WsRejected(status, body)
            client.ws.receive_data(bytes(data))

    async def recv(self) -> str | bytes:
        """The next message; raises ``WsClosed`` when the server closed the WebSocket."""
        text: list[str] = []
        raw: list[bytes] = []
        while True:
            for event in self.ws.events():
                if isinstance(event, Ping):
                    await self.stream.send_all(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await self.stream.send_all(self.ws.send(event.response()))
                    raise WsClosed(event.code)
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
                self.close_code = 1006
                raise WsClosed(1006)
            self.ws.receive_data(bytes(data))

    async def recv_app(self) -> str | bytes:
        """The next message other than an Engine.IO ping, which is answered with a pong."""
        while True:
            message = await self.recv()
            if message == "2":
                await self.send("3")
                continue
            return message

    async def wait_closed(self, *, pong: bool = True) -> tuple[int, list[str | bytes]]:
        """Read until the server closes; return the close code and the messages seen meanwhile."""
        seen: list[str | bytes] = []
        try:
            while True:
                message = await (self.recv_app() if pong else self.recv())
                seen.append(message)
        except WsClosed as closed:
            return closed.code, seen

    async def send(self, message: str | bytes) -> None:
        event = Message(data=message) if isinstance(message, str) else Message(data=bytes(message))
        await self.stream.send_all(self.ws.send(event))

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


def websocket(sid: str | None = None, path: str = EIO_PATH) -> str:
    target = f"{path}?EIO=4&transport=websocket"
    return target if sid is None else f"{target}&sid={sid}"


@asynccontextmanager
async def ws_session(port: int, path: str = EIO_PATH) -> AsyncIterator[tuple[WsClient, dict[str, Any]]]:
    """A WebSocket-only Engine.IO session: the client and the open packet's JSON."""
    client = await WsClient.connect(port, websocket(path=path))
    try:
        opening = await client.recv()
        assert isinstance(opening, str) and opening[0] == "0"
        yield client, json.loads(opening[1:])
    finally:
        await client.aclose()


@asynccontextmanager
async def sio_client(port: int, auth: str = "") -> AsyncIterator[WsClient]:
    """A WebSocket connected to the main namespace of the reference server ("auth" read)."""
    async with ws_session(port, SIO_PATH) as (client, _open):
        await client.send("40" + auth)
        connected = await client.recv_app()
        assert isinstance(connected, str) and connected.startswith("40{")
        assert await client.recv_app() == f'42["auth",{auth or "{}"}]'
        yield client


async def upgrade(port: int, sid: str, path: str = EIO_PATH) -> WsClient:
    """Upgrade polling session ``sid`` to WebSocket: 2probe, 3probe, 5."""
    client = await WsClient.connect(port, websocket(sid, path))
    await client.send("2probe")
    assert await client.recv() == "3probe"
    await client.send("5")
    return client
