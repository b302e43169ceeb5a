"""The client's HTTP/1.1 side: where the server is, the transports' settings, the session's end signal,
and a tiny keep-alive HTTP client on h11 for long-polling.

Rule: one request at a time per connection, every read bounded in size and time.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
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
    "MAX_RESPONSE_HEAD",
    "EngineClosed",
    "HttpConnection",
    "Target",
    "TransportOptions",
    "parse_target",
]

logger = logging.getLogger("trio_rooms.client")

#: Largest HTTP response head (status line and headers) accepted from the server (exactly: h11 is
#: driven by ``Http11Connection``, which also keeps h11 in linear time on a chunked body).
MAX_RESPONSE_HEAD: Final = 16 * 1024


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
    """Where the Engine.IO server is: scheme, host, port and path."""

    secure: bool
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        """The Host header value (the port only when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.secure else 80) else f"{host}:{self.port}"

    def target(self, transport: Transport, sid: str | None = None) -> str:
        """The request target (path and query) for ``transport``, with the session id if any."""
        query = f"{self.path}?EIO=4&transport={transport}"
        return query if sid is None else f"{query}&sid={quote(sid, safe='')}"

    def ws_url(self, sid: str | None = None) -> str:
        """The WebSocket URL, with the session id for an upgrade."""
        return f"{'wss' if self.secure else 'ws'}://{self.host_header}{self.target(Transport.WEBSOCKET, sid)}"


def parse_target(url: str, path: str) -> Target:
    """Read ``http(s)://`` or ``ws(s)://`` ``url`` (no path, query or fragment) and the Engine.IO path.

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
    return Target(secure, parts.hostname, parts.port or (443 if secure else 80), "/" + path.strip("/") + "/")


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """The client's Engine.IO transport settings (seconds and bytes).

    Attributes:
        transports: The transports' names (``Transport`` values), in order: the first opens the
            session, a later ``"websocket"`` allows the upgrade.
    """

    transports: tuple[str, ...]
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
        headers = [("Host", self._target.host_header), ("Accept", "*/*")]
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
