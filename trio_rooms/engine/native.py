"""The native front door: HTTP/1.1 over trio streams (a lean path for long-polling, h11 for the rest),
long-polling, WebSocket and the upgrade.

Rule: each TCP connection is one task reading requests in turn (bounded, with deadlines); it asks
the engine what each request is (``EngineCore.route``) and answers it; a connection that becomes a
WebSocket is then served by the same task, which also hosts the session when it opened it.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum, auto
from functools import partial
from typing import Any, Final

import h11
import trio

from ..errors import DisconnectReason
from ..protocol.engineio import encode_ws
from ..protocol.http1 import (
    FALLBACK,
    SimpleHead,
    parse_simple_head,
    simple_response,
    switching_protocols,
)
from ..types import Transport
from .frontdoor import (
    EngineCore,
    PostOutcome,
    feed_post,
    hold_get,
    poll_get_refusal,
    poll_post_refusal,
    poll_refusal_reported,
)
from .h11io import (
    MAX_REQUEST_HEAD_BYTES,
    accept_websocket,
    linger,
    make_request,
    read_body,
    read_request,
    response_headers,
    send_response,
    server_connection,
    valid_websocket_request,
    websocket_accept_token,
)
from .http import EngineErrorCode, HttpRequest, HttpResponse, engine_error_body
from .rawsocket import raw_socket
from .routing import Action, Route
from .session import Session
from .wsphase import serve_upgrade, serve_websocket_session

__all__ = ["NativeFrontDoor"]

logger = logging.getLogger("trio_rooms")

_REQUEST_READ = (h11.DONE, h11.MUST_CLOSE)
#: h11's state of a client whose request proposed an upgrade not answered yet (public, not in __all__).
_MIGHT_SWITCH = h11.MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]
_RECEIVE_SIZE = 64 * 1024
_REASONS: Final = {413: b"Payload Too Large", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}
WebSocketPhase = Callable[[], Awaitable[None]]
"""What serves a connection once it is an accepted WebSocket."""


class After(Enum):
    """What becomes of the connection after an answer."""

    KEEP_ALIVE = auto()
    CLOSE = auto()


class NativeFrontDoor:
    """Serves the engine on trio listeners (TCP, TLS, memory).

    Args:
        engine: the Engine.IO server.
    """

    def __init__(self, engine: EngineCore) -> None:
        self._engine = engine

    async def serve_listeners(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until cancelled; each is served in the engine's nursery."""
        nursery = self._engine.nursery
        await nursery.start(
            partial(trio.serve_listeners, self._serve_stream, list(listeners), handler_nursery=nursery)
        )
        task_status.started()

    async def _serve_stream(self, stream: trio.abc.Stream) -> None:
        engine = self._engine
        try:
            websocket = await _HttpConnection(engine, stream).serve()
            if websocket is not None:
                # The HTTP phase is over (its parser and frames are freed): serve the WebSocket.
                serving = websocket()
                del websocket
                await serving
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            logger.exception("HTTP connection failed")
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(engine.options.close_timeout):
                await stream.aclose()


class _HttpConnection:
    """One TCP connection's HTTP phase: its requests, in turn.

    Requests of the simple shapes of long-polling (``protocol.http1``) are read and answered by the
    lean path (a byte buffer, raw ``recv``/``send`` on plain TCP); the first request of any other shape
    (a WebSocket handshake, a chunked body, anything odd) hands the connection to h11 for good, with the
    bytes already read, so that h11's guarantees, bounds and error answers hold for all the rest.
    """

    def __init__(self, engine: EngineCore, stream: trio.abc.Stream) -> None:
        self.engine = engine
        self.options = engine.options
        self.stream = stream
        self.sock = raw_socket(stream)
        self.secure = isinstance(stream, trio.SSLStream)
        #: h11, once a request was not of a simple shape (None: the lean path).
        self.http: h11.Connection | None = None
        #: The lean path's bytes read and not parsed yet (``buffer[offset:]``).
        self.buffer = bytearray()
        self.offset = 0
        #: The current lean request asked to keep the connection open.
        self.keep_alive = True
        #: The current lean request's body length (read or not).
        self.content_length = 0
        #: The current lean request proposes an upgrade (a WebSocket handshake).
        self.upgrade = False
        #: The client sent more while its GET was held (pipelining): close after the answer.
        self.pipelined = False
        #: The current request is a HEAD: its answer has the GET's headers and no body.
        self.head = False

    async def serve(self) -> WebSocketPhase | None:
        """Serve HTTP requests until the connection closes (None) or becomes a WebSocket (returned,
        accepted, for the caller to run)."""
        opts, counters = self.options, self.engine.counters
        timeout = opts.request_timeout
        first = True
        while True:
            request: HttpRequest | None = None
            try:
                with trio.move_on_after(timeout) as waiting:
                    request = await self._read_request()
                if waiting.cancelled_caught and (first or self._buffered()):
                    # A head (or a first request) slower than the deadline: slowloris. An idle
                    # keep-alive connection that sent nothing more is not counted.
                    counters.timed_out_requests += 1
            except h11.RemoteProtocolError as exc:
                counters.refused_requests += 1
                status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
                with trio.move_on_after(opts.close_timeout):
                    reason = _REASONS.get(status, b"Bad Request")
                    await send_response(self.stream, h11.Connection(h11.SERVER), status, reason)
                    await linger(self.stream)
                return None
            if request is None:
                return None
            after = await self._answer(request)
            if not isinstance(after, After):
                return after
            if after is After.CLOSE or not self._reusable():
                if self._unread():
                    # Closing with unread input would reset the connection before the client read
                    # our answer: half-close and drain first (bounded).
                    with trio.move_on_after(opts.close_timeout):
                        await linger(self.stream)
                return None
            if self.http is not None:
                self.http.start_next_cycle()
            timeout = opts.idle_timeout
            first = False

    # -- reading -------------------------------------------------------------------------------------
    async def _read_request(self) -> HttpRequest | None:
        """The next request (None when the client closed first); the caller sets the deadline."""
        while self.http is None:
            head = parse_simple_head(self.buffer, self.offset, max_head=MAX_REQUEST_HEAD_BYTES, upgrade=True)
            if isinstance(head, SimpleHead):
                self.offset = head.body_start
                self.keep_alive = head.keep_alive
                self.content_length = head.content_length
                self.upgrade = head.upgrade
                return make_request(head.method, head.target, head.headers)
            if head is FALLBACK:
                self.http = server_connection()
                self.http.receive_data(bytes(self.buffer[self.offset :]))
                self.buffer = bytearray()
                self.offset = 0
                break
            data = await self._receive()
            if not data:
                return None
            self._keep(data)
        return await read_request(self.stream, self.http)

    def _unread(self) -> bool:
        """Whether the client sent bytes we have not read (a body, a pipelined request)."""
        if self.http is not None:
            return self.http.their_state not in _REQUEST_READ or bool(self.http.trailing_data[0])
        return self.content_length > 0 or len(self.buffer) > self.offset

    def _buffered(self) -> bool:
        if self.http is not None:
            return bool(self.http.trailing_data[0])
        return len(self.buffer) > self.offset

    def _keep(self, data: bytes) -> None:
        if self.offset and self.offset == len(self.buffer):
            self.buffer.clear()
            self.offset = 0
        self.buffer += data

    async def _receive(self) -> bytes:
        """The next bytes from the client (b"" once it closed); raw ``recv`` on plain TCP."""
        sock = self.sock
        if sock is None:
            return bytes(await self.stream.receive_some(_RECEIVE_SIZE))
        while True:
            try:
                return sock.recv(_RECEIVE_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
            except OSError:
                return b""

    async def _read_body(self, limit: int) -> bytes | None:
        """The request's body; None when it is over ``limit`` bytes (the caller answers 413).

        Raises:
            h11.RemoteProtocolError: the client sent a broken body, or went away in the middle.
        """
        if self.http is not None:
            return await read_body(self.stream, self.http, limit=limit)
        length = self.content_length
        if length > limit:
            return None
        while len(self.buffer) - self.offset < length:
            data = await self._receive()
            if not data:
                raise h11.RemoteProtocolError("connection closed in the middle of a body")
            self._keep(data)
        body = bytes(self.buffer[self.offset : self.offset + length])
        self.offset += length
        self.content_length = 0
        return body

    def _body_read(self) -> bool:
        """Whether the whole request (its body included) was read."""
        if self.http is not None:
            return self.http.their_state in _REQUEST_READ
        return self.content_length == 0

    def _proposes_upgrade(self) -> bool:
        """Whether the current request proposes an upgrade (and no 101 answered it yet)."""
        if self.http is not None:
            return self.http.their_state is _MIGHT_SWITCH
        return self.upgrade

    def _reusable(self) -> bool:
        if self.http is not None:
            return self.http.our_state is h11.DONE and self.http.their_state is h11.DONE
        return self.keep_alive and self.content_length == 0

    # -- answers -------------------------------------------------------------------------------------
    async def _answer(self, request: HttpRequest) -> After | WebSocketPhase:
        engine = self.engine
        self.head = request.method == "HEAD"
        decision = engine.route(request, websocket=valid_websocket_request(request))
        action = decision.action
        if action is Action.FALLBACK:
            return await self._fallback(request)
        cors = self.options.cors_policy.headers(request)
        hooks = engine.hooks
        if action is Action.PREFLIGHT:
            headers = self.options.cors_policy.preflight_headers(request)
            await self._send(204, b"", headers, close=False)
            return After.KEEP_ALIVE
        if action is Action.REFUSE:
            if request.method == "OPTIONS":  # a preflight from an origin not allowed: no CORS headers
                assert decision.error is not None
                await self._send_error(decision.error, decision.status, (), close=False)
                return After.KEEP_ALIVE
            return await self._refuse(decision, cors, request)
        address = ""
        if action in (Action.OPEN_POLLING, Action.OPEN_WEBSOCKET):
            address = engine.client_address(_peer_address(self.stream), request)
            request = dataclasses.replace(request, address=address)  # as allow_request sees it
            if not await engine.allowed(request):
                return await self._refuse(Route.refuse(EngineErrorCode.FORBIDDEN, 403), cors, request)
        if action in (Action.OPEN_WEBSOCKET, Action.UPGRADE):
            extra = hooks.response_headers(request, (), handshake=action is Action.OPEN_WEBSOCKET)
            trailing = await self._accept_websocket(request, extra)
            if action is Action.UPGRADE:
                assert decision.session is not None
                return partial(serve_upgrade, engine, self.stream, trailing, decision.session)
            session, host = engine.open_session(Transport.WEBSOCKET, request, address, self.secure)
            return partial(serve_websocket_session, engine, self.stream, trailing, session, host)
        if action is Action.OPEN_POLLING:
            session, _host = engine.open_session(Transport.POLLING, request, address, self.secure)
            body = str(encode_ws(session.open_packet())).encode()
            await self._send(200, body, hooks.response_headers(request, cors, handshake=True), close=False)
            return After.KEEP_ALIVE
        assert decision.session is not None
        if action is Action.POLL_GET:
            return await self._poll_get(request, decision.session, cors)
        return await self._poll_post(request, decision.session, cors)

    async def _send(
        self,
        status: int,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        *,
        close: bool,
        content_type: str = "text/plain; charset=UTF-8",
    ) -> None:
        """Write a complete answer (every answer of this connection but the 101 goes through here).
        To a HEAD, the headers are those of ``body`` (its Content-Length) and no body is sent."""
        if self.http is not None:
            await send_response(
                self.stream,
                self.http,
                status,
                body,
                content_type=content_type,
                extra_headers=headers,
                close=close,
                keep_alive=self.options.idle_timeout,
                head=self.head,
            )
            return
        keep_alive = self.options.idle_timeout if self.keep_alive else None
        fields = response_headers(
            len(body), content_type=content_type, extra_headers=headers, close=close, keep_alive=keep_alive
        )
        data = simple_response(status, fields, body, request_keep_alive=self.keep_alive)
        await self._write(data[: len(data) - len(body)] if self.head else data)

    async def _write(self, data: bytes) -> None:
        """Send ``data`` (one non-blocking ``send`` on plain TCP when the kernel takes it all)."""
        sock = self.sock
        if sock is not None:
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise trio.BrokenResourceError("the client's connection broke") from exc
            if sent == len(data):
                await trio.lowlevel.checkpoint()
                return
            data = data[sent:]
        await self.stream.send_all(data)

    async def _accept_websocket(self, request: HttpRequest, extra: Sequence[tuple[str, str]]) -> bytes:
        """Answer 101 (with the ``extra`` headers) to a valid WebSocket handshake; return the bytes
        that came after its head."""
        if self.http is not None:
            return await accept_websocket(self.stream, self.http, request, extra)
        token = websocket_accept_token(request.header("sec-websocket-key") or "")
        await self._write(switching_protocols(token, extra))
        trailing = bytes(self.buffer[self.offset :])
        self.buffer = bytearray()
        self.offset = 0
        return trailing

    async def _send_error(
        self, code: EngineErrorCode, status: int, headers: Sequence[tuple[str, str]], *, close: bool
    ) -> None:
        """The reference server's JSON error ``{"code": N, "message": "..."}``."""
        await self._send(
            status, engine_error_body(code), headers, close=close, content_type="application/json"
        )

    async def _refuse(
        self, decision: Route, cors: Sequence[tuple[str, str]], request: HttpRequest | None = None
    ) -> After:
        """Answer an Engine.IO error and close; with ``request`` (a request refused as Node's server
        refuses one: by its route, ``allow_request`` or its session's state), tell the
        ``connection_error`` hooks."""
        assert decision.error is not None
        self.engine.counters.refused_requests += 1
        if request is not None:
            self.engine.hooks.connection_error(request, decision.error)
        # An error answer ends the connection (a request body we did not read would otherwise be
        # taken for the next request; and a client that erred is not worth keeping alive).
        await self._send_error(decision.error, decision.status, cors, close=True)
        return After.CLOSE

    async def _fallback(self, request: HttpRequest) -> After:
        response: HttpResponse | None = None
        fallback = self.options.fallback
        if fallback is not None:
            address = self.engine.client_address(_peer_address(self.stream), request)
            try:
                response = await fallback(dataclasses.replace(request, address=address))
            except Exception:
                logger.exception("fallback handler failed")
                response = HttpResponse(500, b"Internal Server Error")
        if response is None:
            response = HttpResponse(404, b"Not Found")
        # An upgrade proposal to a path not ours ends the connection after the answer, as Node's server
        # destroys a socket whose upgrade nobody took.
        close = not self._body_read() or self._proposes_upgrade()
        await self._send(
            response.status, response.body, response.headers, close=close, content_type=response.content_type
        )
        return After.CLOSE if close else After.KEEP_ALIVE

    # -- long-polling ---------------------------------------------------------------------------------
    async def _poll_get(
        self, request: HttpRequest, session: Session, cors: Sequence[tuple[str, str]]
    ) -> After:
        refusal = poll_get_refusal(session)
        if refusal is not None:
            return await self._refuse(
                Route.refuse(refusal), cors, request if poll_refusal_reported(refusal) else None
            )
        self.pipelined = False
        try:
            body = await hold_get(session, partial(self._hold, session))
        except trio.Cancelled:
            # The server shuts down and closes its sessions: this GET carries the session's last
            # packets and its close packet (as Node's server answers it), within the close deadline.
            with trio.CancelScope(shield=True), trio.move_on_after(self.options.close_timeout):
                await session.wait_closed()
                headers = self.engine.hooks.response_headers(request, cors, handshake=False)
                await self._send(200, session.polling_answer().encode(), headers, close=True)
            raise
        if body is None:
            return After.CLOSE  # the client went away while we held its GET
        # Pipelining (a request sent while its GET was held): answer this one, then close.
        headers = self.engine.hooks.response_headers(request, cors, handshake=False)
        await self._send(200, body.encode(), headers, close=self.pipelined)
        return After.CLOSE if self.pipelined else After.KEEP_ALIVE

    def _pipelined(self, data: bytes) -> None:
        """Bytes of a next request that came while a GET was held (answered, then refused cleanly)."""
        self.pipelined = True
        if self.http is not None:
            self.http.receive_data(data)
        else:
            self._keep(data)

    async def _hold(self, session: Session) -> bool:
        """Wait for packets (or a close, or an upgrade) while watching the client's connection; False
        once the client went away."""
        if self.sock is not None:
            return await self._hold_on_socket(self.sock, session)
        present = True

        async def watch() -> None:
            nonlocal present
            data = await self.stream.receive_some(65536)
            if data:
                self._pipelined(bytes(data))
                await trio.sleep_forever()  # answered when the packets come, then closed
            present = False
            session.polling.wake()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await session.polling.wait()
            nursery.cancel_scope.cancel()
        return present

    async def _hold_on_socket(self, sock: socket.socket, session: Session) -> bool:
        """``_hold`` on a plain TCP connection: one task waits for packets or for the socket."""
        while True:
            try:
                if await session.polling.wait_or_readable(sock):
                    return True
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except (OSError, trio.ClosedResourceError):
                data = b""
            if not data:
                return False
            self._pipelined(data)
            await session.polling.wait()
            return True

    async def _poll_post(
        self, request: HttpRequest, session: Session, cors: Sequence[tuple[str, str]]
    ) -> After:
        opts = self.options
        refusal = poll_post_refusal(session)
        if refusal is not None:
            return await self._refuse(
                Route.refuse(refusal), cors, request if poll_refusal_reported(refusal) else None
            )
        declared = request.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > opts.max_payload:
            self.engine.counters.refused_requests += 1
            session.close(DisconnectReason.TRANSPORT_ERROR)
            await self._send(413, b"Payload Too Large", cors, close=True)
            return After.CLOSE
        session.post_pending = True
        try:
            body: bytes | None = None
            with trio.move_on_after(opts.request_timeout) as reading:
                try:
                    body = await self._read_body(opts.max_payload)
                except h11.RemoteProtocolError:
                    session.close(DisconnectReason.TRANSPORT_ERROR)
                    return After.CLOSE  # the client sent a broken body or went away in the middle
            if reading.cancelled_caught:
                # A body trickled slower than the request deadline: cut, as a slow-request attack.
                self.engine.counters.timed_out_requests += 1
                session.close(DisconnectReason.TRANSPORT_ERROR)
                await self._send(408, b"Request Timeout", cors, close=True)
                return After.CLOSE
            if body is None:
                session.close(DisconnectReason.TRANSPORT_ERROR)
                if self._body_read():
                    return await self._refuse(Route.refuse(EngineErrorCode.BAD_REQUEST), cors)
                self.engine.counters.refused_requests += 1
                await self._send(413, b"Payload Too Large", cors, close=True)
                return After.CLOSE
            if await feed_post(session, body) is PostOutcome.BAD_REQUEST:
                return await self._refuse(Route.refuse(EngineErrorCode.BAD_REQUEST), cors)
        finally:
            session.post_pending = False
        headers = self.engine.hooks.response_headers(request, cors, handshake=False)
        await self._send(200, b"ok", headers, close=False, content_type="text/html")
        return After.KEEP_ALIVE


def _peer_address(stream: trio.abc.Stream) -> str:
    inner: Any = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(inner, trio.SocketStream):
        try:
            peer = inner.socket.getpeername()
        except OSError:
            return ""
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)
    return ""
