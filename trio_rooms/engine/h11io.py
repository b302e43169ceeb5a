"""The native front door's HTTP/1.1, on h11: read one bounded request, answer, hand a WebSocket over.

Rule: every read here has a size bound (the exact head limit of ``Http11Connection``, ``max_payload``
for bodies) and a deadline (the caller's).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qsl, urlsplit

import h11
import trio

from ..protocol.http1 import reason_phrase
from ..protocol.http11 import Http11Connection
from .http import EngineErrorCode, HttpRequest, engine_error_body

__all__ = [
    "MAX_HEADERS",
    "MAX_REQUEST_HEAD_BYTES",
    "accept_websocket",
    "linger",
    "make_request",
    "parse_request",
    "read_body",
    "read_request",
    "response_headers",
    "send_engine_error",
    "send_response",
    "server_connection",
    "valid_websocket_request",
]

MAX_REQUEST_HEAD_BYTES: Final = 16 * 1024
"""The longest request head (request line and headers, up to the blank line) accepted; longer: 431."""
MAX_HEADERS: Final = 100
_RECEIVE_SIZE: Final = 16 * 1024
_WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The client's states once its whole request was read: DONE, or MUST_CLOSE for a request that
#: asked to close the connection after the answer ("Connection: close").
_REQUEST_READ: Final = (h11.DONE, h11.MUST_CLOSE)


#: Header names seen so far, decoded once and shared by every request (each connection's handshake
#: keeps its headers); bounded, so that odd names cannot grow it.
_HEADER_NAMES: dict[bytes, str] = {}
_HEADER_NAMES_MAX: Final = 512


def _header_name(raw: bytes) -> str:
    name = _HEADER_NAMES.get(raw)
    if name is None:
        name = raw.decode("latin-1").lower()
        if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
            _HEADER_NAMES[raw] = name
    return name


def server_connection() -> h11.Connection:
    """The h11 connection of one client: the exact head limit (MAX_REQUEST_HEAD_BYTES), and h11 driven
    in linear time whatever the client sends (``Http11Connection``)."""
    return Http11Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)


async def read_request(stream: trio.abc.Stream, conn: h11.Connection) -> HttpRequest | None:
    """Read one request head from ``stream``.

    Returns None when the peer closed before sending a request. Raises ``h11.RemoteProtocolError``
    for a malformed or oversized head (the caller answers 400/431); ``conn`` from
    ``server_connection()`` makes the head limit exact. The caller sets the deadline.
    """
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_RECEIVE_SIZE)
            conn.receive_data(bytes(data))
            if not data and conn.their_state is h11.IDLE:
                return None
            continue
        if isinstance(event, h11.Request):
            request = parse_request(event)
            if not _declares_body(request) and not request.wants_websocket():
                # A request without a body ends here: consume its end now, so that the connection
                # is reusable (keep-alive) once it is answered.
                end = conn.next_event()
                if not isinstance(end, h11.EndOfMessage):  # pragma: no cover - h11 guarantees it
                    raise h11.RemoteProtocolError(
                        "a request without a body did not end", error_status_hint=400
                    )
            return request
        if isinstance(event, h11.ConnectionClosed):
            return None
        raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}", error_status_hint=400)


def parse_request(event: h11.Request) -> HttpRequest:
    """The request of a parsed head: at most MAX_HEADERS headers and 64 query fields (linear time).

    Raises:
        h11.RemoteProtocolError: too many headers (431) or query fields (400).
    """
    if len(event.headers) > MAX_HEADERS:
        raise h11.RemoteProtocolError("too many headers", error_status_hint=431)
    return make_request(
        event.method.decode("ascii", "replace").upper(),
        event.target.decode("latin-1"),
        tuple((_header_name(k), v.decode("latin-1")) for k, v in event.headers),
    )


def make_request(method: str, target: str, headers: tuple[tuple[str, str], ...]) -> HttpRequest:
    """The request of a head read by h11 or by the lean reader: its path and query (64 fields at most).

    Raises:
        h11.RemoteProtocolError: too many query fields (400).
    """
    split = urlsplit(target)
    try:
        query = dict(parse_qsl(split.query, keep_blank_values=True, max_num_fields=64))
    except ValueError:
        raise h11.RemoteProtocolError("too many query fields", error_status_hint=400) from None
    return HttpRequest(method=method, target=target, path=split.path, query=query, headers=headers)


async def send_response(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=UTF-8",
    extra_headers: Iterable[tuple[str, str]] = (),
    close: bool = True,
    keep_alive: float | None = None,
    head: bool = False,
) -> None:
    """Send a complete response; ``close`` marks the connection to close after it. Otherwise
    ``keep_alive`` (the server's idle timeout, seconds) is announced in a ``Keep-Alive: timeout=N``
    header, as Node's server does, so that a client's connection pool closes an idle connection
    before the server does instead of sending a request on a connection being closed. ``head``:
    the answer to a HEAD, whose Content-Length is ``body``'s but which sends no body."""
    headers = response_headers(
        len(body),
        content_type=content_type,
        extra_headers=extra_headers,
        close=close,
        keep_alive=keep_alive if conn.their_state is not h11.MUST_CLOSE else None,  # (asked to close)
    )
    data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason_phrase(status))) or b""
    if body and not head:
        data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


def response_headers(
    length: int,
    *,
    content_type: str,
    extra_headers: Iterable[tuple[str, str]],
    close: bool,
    keep_alive: float | None,
) -> list[tuple[str, str]]:
    """The headers of a complete response of ``length`` bytes (both front-door paths write these)."""
    headers = [("content-type", content_type), ("content-length", str(length))]
    if close:
        headers.append(("connection", "close"))
    elif keep_alive is not None:
        headers.append(("keep-alive", f"timeout={max(1, int(keep_alive))}"))
    headers.extend(extra_headers)
    return headers


def _declares_body(request: HttpRequest) -> bool:
    length = request.header("content-length")
    return request.header("transfer-encoding") is not None or (length is not None and length.strip() != "0")


async def read_body(stream: trio.abc.Stream, conn: h11.Connection, *, limit: int) -> bytes | None:
    """Read the request body; None when it is larger than ``limit`` bytes (the caller answers 413).

    The caller sets the deadline (a body trickled slowly is cut by it).
    """
    if conn.their_state in _REQUEST_READ:
        return b""  # a request without a body (already consumed by ``read_request``)
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_RECEIVE_SIZE)
            if not data:
                raise h11.RemoteProtocolError("connection closed in the middle of a body")
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return None
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(chunks)
        else:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a body")


async def send_engine_error(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    code: EngineErrorCode,
    status: int = 400,
    *,
    extra_headers: Iterable[tuple[str, str]] = (),
    close: bool = False,
) -> None:
    """Answer with the reference server's JSON error ``{"code": N, "message": "..."}``."""
    await send_response(
        stream,
        conn,
        status,
        engine_error_body(code),
        content_type="application/json",
        extra_headers=extra_headers,
        close=close,
    )


async def linger(stream: trio.abc.Stream, *, max_bytes: int = 256 * 1024) -> None:
    """Half-close and drain what the client still sends (bounded), so that closing the socket
    with unread input does not reset the connection before the client read our answer.
    The caller sets the deadline."""
    if isinstance(stream, trio.abc.HalfCloseableStream):
        try:
            await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
    drained = 0
    try:
        while drained < max_bytes:
            data = await stream.receive_some(_RECEIVE_SIZE)
            if not data:
                return
            drained += len(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


def websocket_accept_token(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + _WS_GUID).digest()).decode("ascii")


def valid_websocket_request(request: HttpRequest) -> bool:
    """A GET with the upgrade headers, a key and version 13."""
    return (
        request.method == "GET"
        and request.wants_websocket()
        and bool(request.header("sec-websocket-key"))
        and request.header("sec-websocket-version") == "13"
    )


async def accept_websocket(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    request: HttpRequest,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """Answer 101 Switching Protocols (check ``valid_websocket_request`` first), with
    ``extra_headers`` after its own; return the bytes received after the request head. No
    extension is negotiated: compression stays off, as in Node's default.
    """
    key = request.header("sec-websocket-key") or ""
    response = h11.InformationalResponse(
        status_code=101,
        reason=b"Switching Protocols",
        headers=[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", websocket_accept_token(key)),
            *extra_headers,
        ],
    )
    await stream.send_all(conn.send(response) or b"")
    trailing, _closed = conn.trailing_data
    return bytes(trailing)
