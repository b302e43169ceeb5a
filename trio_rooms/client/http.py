"""The client's HTTP/1.1 side: where the server is, the transports' settings, the session's end signal,
and a tiny keep-alive HTTP client on h11 for long-polling.

Rule: one request at a time per connection, every read bounded in size and time.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

import h11
import trio

from ..errors import TrioRoomsError
from ..protocol.http11 import Http11Connection
from ..types import Transport
from .state import ClientDisconnectReason

__all__ = [
    "MAX_EXTRA_FIELDS",
    "MAX_EXTRAS_SIZE",
    "MAX_RESPONSE_HEAD",
    "EngineClosed",
    "HttpConnection",
    "Target",
    "TransportOptions",
    "parse_target",
    "request_extras",
]

logger = logging.getLogger("trio_rooms.client")

#: Largest HTTP response head (status line and headers) accepted from the server (exactly: h11 is
#: driven by ``Http11Connection``, which also keeps h11 in linear time on a chunked body).
MAX_RESPONSE_HEAD: Final = 16 * 1024
#: The application's extra headers and query parameters (``Client(headers=, query=)``), together, at
#: most (bytes as written: ``name: value\r\n`` and ``&name=value``), well under a server's head limit.
MAX_EXTRAS_SIZE: Final = 8 * 1024
#: At most this many extra headers, and as many extra query parameters.
MAX_EXTRA_FIELDS: Final = 32
#: Headers the client writes itself (the framing, the connection, the WebSocket handshake).
OWNED_HEADERS: Final = frozenset(
    {"host", "accept", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive"}
    | {"upgrade", "te", "trailer", "proxy-connection", "http2-settings"}
)
#: Query parameters Engine.IO uses (``t`` is socket.io-client's cache buster).
RESERVED_QUERY: Final = frozenset({"EIO", "transport", "sid", "t"})
_TOKEN: Final = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class EngineClosed(TrioRoomsError):  # noqa: N818 - an internal signal, not a public error
    """The Engine.IO session ended (or could not start); ``reason`` says why, ``detail`` how."""

    def __init__(self, reason: ClientDisconnectReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @classmethod
    def from_error(cls, reason: ClientDisconnectReason, exc: BaseException) -> EngineClosed:
        """The end of the session for ``reason``, caused by ``exc`` (named in the detail)."""
        return cls(reason, f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class Target:
    """Where the Engine.IO server is: scheme, host, port and path; ``query``: the application's
    parameters, encoded (``&name=value``...), added to every request target."""

    secure: bool
    host: str
    port: int
    path: str
    query: str = ""

    @property
    def host_header(self) -> str:
        """The Host header value (the port only when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.secure else 80) else f"{host}:{self.port}"

    def target(self, transport: Transport, sid: str | None = None) -> str:
        """The request target (path and query) for ``transport``, with the session id if any."""
        query = f"{self.path}?EIO=4&transport={transport}"
        return (query if sid is None else f"{query}&sid={quote(sid, safe='')}") + self.query

    def ws_url(self, sid: str | None = None) -> str:
        """The WebSocket URL, with the session id for an upgrade."""
        return f"{'wss' if self.secure else 'ws'}://{self.host_header}{self.target(Transport.WEBSOCKET, sid)}"


def parse_target(url: str, path: str, query: str = "") -> Target:
    """Read ``http(s)://`` or ``ws(s)://`` ``url`` (no path, query or fragment) and the Engine.IO path;
    ``query`` is the application's, encoded (see ``request_extras``).

    Raises:
        ValueError: another scheme, no host, or a path/query in the URL (use ``namespace=``/``path=``).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"the URL scheme must be http, https, ws or wss, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: give the namespace as namespace= and the Engine.IO path as path=")
    secure = parts.scheme in ("https", "wss")
    port = parts.port or (443 if secure else 80)
    return Target(secure, parts.hostname, port, "/" + path.strip("/") + "/", query)


def _printable(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    if not all(" " <= char <= "~" or char == "\t" for char in text):
        raise ValueError(f"{what} must be printable ASCII (no CR, LF, NUL or non-ASCII)")
    return text


def _fields(mapping: Mapping[str, str] | None, what: str) -> list[tuple[str, str]]:
    if mapping is None:
        return []
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{what} must be a mapping of str to str or None")
    if len(mapping) > MAX_EXTRA_FIELDS:
        raise ValueError(f"at most {MAX_EXTRA_FIELDS} {what} fields, not {len(mapping)}")
    return [
        (_printable(k, f"the {what} name {k!r}"), _printable(v, f"the {what} value of {k!r}"))
        for k, v in mapping.items()
    ]


def request_extras(
    headers: Mapping[str, str] | None, query: Mapping[str, str] | None
) -> tuple[tuple[tuple[str, str], ...], str]:
    """Check and freeze ``Client``'s ``headers`` and ``query``: the header pairs, and the query's
    encoded tail (``&name=value``..., percent-encoded) for ``Target.query``.

    Raises:
        TypeError: not a mapping of str to str.
        ValueError: a name or value that is not printable ASCII (CR, LF, NUL, non-ASCII), a header
            name that is not an HTTP token or one the client writes itself (``OWNED_HEADERS``,
            ``Sec-WebSocket-*``), one given twice (in any case), a value with spaces around it, an
            empty or reserved query name (``RESERVED_QUERY``), more than ``MAX_EXTRA_FIELDS`` of
            either, or more than ``MAX_EXTRAS_SIZE`` bytes together.
    """
    header_fields = _fields(headers, "header")
    seen: set[str] = set()
    for name, value in header_fields:
        lower = name.lower()
        if not name or not set(name) <= _TOKEN:
            raise ValueError(f"{name!r} is not an HTTP header name")
        if lower in OWNED_HEADERS or lower.startswith("sec-websocket-"):
            raise ValueError(f"the client writes the {name!r} header itself")
        if lower in seen:
            raise ValueError(f"the header {name!r} is given twice")
        if value != value.strip(" \t"):
            raise ValueError(f"the value of header {name!r} has spaces around it")
        seen.add(lower)
    query_fields = _fields(query, "query")
    for name, _ in query_fields:
        if not name or name in RESERVED_QUERY:
            raise ValueError(f"the query parameter {name!r} is empty or reserved ({sorted(RESERVED_QUERY)})")
    tail = "".join(f"&{quote(name, safe='')}={quote(value, safe='')}" for name, value in query_fields)
    size = sum(len(name) + len(value) + 4 for name, value in header_fields) + len(tail)
    if size > MAX_EXTRAS_SIZE:
        raise ValueError(f"the extra headers and query take {size} bytes, more than {MAX_EXTRAS_SIZE}")
    return tuple(header_fields), tail


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """The client's Engine.IO transport settings (seconds and bytes).

    Attributes:
        transports: The transports' names (``Transport`` values), in order: the first opens the
            session, a later ``"websocket"`` allows the upgrade.
        headers: The application's extra headers, sent with every request (``request_extras``).
    """

    transports: tuple[str, ...]
    headers: tuple[tuple[str, str], ...] = ()
    ssl_context: ssl.SSLContext | None = None
    connect_timeout: float = 20.0
    request_timeout: float = 20.0
    upgrade_timeout: float = 10.0
    close_timeout: float = 2.0
    max_message_size: int = 10_000_000


# ---------------------------------------------------------------------------------------------------------
# HTTP/1.1 on h11: one keep-alive connection, one request at a time
# ---------------------------------------------------------------------------------------------------------


class _StaleConnectionError(Exception):
    """The server closed the connection before answering our request (nothing received)."""


class HttpConnection:
    """A tiny keep-alive HTTP/1.1 client on h11 (one request at a time; reconnects when needed)."""

    def __init__(self, target: Target, options: TransportOptions) -> None:
        self._target = target
        self._options = options
        self._stream: trio.abc.Stream | None = None
        self._h11: h11.Connection = Http11Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)

    async def _connect(self) -> trio.abc.Stream:
        target = self._target
        if target.secure:
            context = self._options.ssl_context or ssl.create_default_context()
            return await trio.open_ssl_over_tcp_stream(target.host, target.port, ssl_context=context)
        return await trio.open_tcp_stream(target.host, target.port)

    async def request(self, method: str, path: str, body: bytes, *, timeout: float) -> tuple[int, bytes]:
        """Send one request and read the whole response (status, body), within ``timeout`` seconds.

        Raises:
            EngineClosed: "transport error" on any connection, HTTP, size or time failure.

        Cancellation: the connection is left unusable and closed; the next request opens a new one.
        """
        answered = False
        try:
            with trio.fail_after(timeout):
                response = await self._request(method, path, body)
            answered = True
            return response
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as exc:
            raise EngineClosed.from_error(ClientDisconnectReason.TRANSPORT_ERROR, exc) from None
        except trio.TooSlowError:
            raise EngineClosed(
                ClientDisconnectReason.TRANSPORT_ERROR, f"HTTP {method} timed out after {timeout} s"
            ) from None
        finally:
            if not answered:
                # Failed or cancelled mid-request: the connection's state is unknown. aclose is
                # shielded and bounded, so this also runs inside a cancelled scope.
                await self.aclose()

    async def _request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self._stream is not None:
            try:
                return await self._exchange(self._stream, method, path, body)
            except _StaleConnectionError:
                # The server closed the kept-alive connection before answering (it may not keep
                # connections alive): retry once, on a fresh connection.
                await self.aclose()
        self._stream = await self._connect()
        self._h11 = Http11Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        try:
            return await self._exchange(self._stream, method, path, body)
        except _StaleConnectionError:
            raise trio.BrokenResourceError("the server closed the connection without answering") from None

    async def _exchange(
        self, stream: trio.abc.Stream, method: str, path: str, body: bytes
    ) -> tuple[int, bytes]:
        conn = self._h11
        headers = [("Host", self._target.host_header), ("Accept", "*/*"), *self._options.headers]
        if method == "POST":
            headers += [("Content-Type", "text/plain;charset=UTF-8"), ("Content-Length", str(len(body)))]
        data = conn.send(h11.Request(method=method, target=path, headers=headers))
        if body:
            data = (data or b"") + (conn.send(h11.Data(data=body)) or b"")
        data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
        try:
            await stream.send_all(data)
        except trio.BrokenResourceError:
            raise _StaleConnectionError from None
        received_any = False
        status = 0
        chunks: list[bytes] = []
        size = 0
        limit = self._options.max_message_size * 2  # a polling body may hold base64 (4/3) and separators
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                chunk = bytes(await stream.receive_some(65536))
                if not chunk and not received_any:
                    raise _StaleConnectionError
                received_any = True
                conn.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise h11.RemoteProtocolError(f"response body larger than {limit} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("the server closed the connection mid-response")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:  # the server asked to close (or HTTP/1.0): the next request reconnects
            await self.aclose()
        return status, b"".join(chunks)

    async def aclose(self) -> None:
        """Close the connection (bounded; never raises)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            timeout, errors = self._options.close_timeout, (OSError, trio.BrokenResourceError)
            with trio.CancelScope(shield=True), trio.move_on_after(timeout), contextlib.suppress(*errors):
                await stream.aclose()


# ---------------------------------------------------------------------------------------------------------
# Transports
# ---------------------------------------------------------------------------------------------------------
