"""The native front door: HTTP/1.1 on h11 over trio streams, long-polling, WebSocket and the upgrade.

Rule: each TCP connection is one task reading requests in turn (bounded, with deadlines); it asks
the engine what each request is (``EngineCore.route``) and answers it; a connection that becomes a
WebSocket is then served by the same task, which also hosts the session when it opened it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum, auto
from functools import partial
from typing import Any

import h11
import trio

from ..errors import DisconnectReason
from ..protocol.engineio import encode_ws
from ..protocol.websocket import text_frame
from ..types import Transport
from .frontdoor import EngineCore, PostOutcome, SessionHost, feed_post, going_away
from .h11io import (
    accept_websocket,
    linger,
    read_body,
    read_request,
    send_engine_error,
    send_response,
    server_connection,
    valid_websocket_request,
)
from .http import EngineErrorCode, HttpRequest, HttpResponse
from .outbound import Outbound
from .rawsocket import raw_socket
from .routing import Action, Route
from .session import Session
from .websocket import WebSocketReader, finish, probe, read_messages

__all__ = ["NativeFrontDoor"]

logger = logging.getLogger("trio_rooms")

_REQUEST_READ = (h11.DONE, h11.MUST_CLOSE)
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
    """One TCP connection's HTTP phase: its requests, in turn."""

    def __init__(self, engine: EngineCore, stream: trio.abc.Stream) -> None:
        self.engine = engine
        self.options = engine.options
        self.stream = stream
        self.http = server_connection()
        self.peer = _peer_address(stream)
        self.secure = isinstance(stream, trio.SSLStream)

    async def serve(self) -> WebSocketPhase | None:
        """Serve HTTP requests until the connection closes (None) or becomes a WebSocket (returned,
        accepted, for the caller to run)."""
        opts, http, counters = self.options, self.http, self.engine.counters
        timeout = opts.request_timeout
        first = True
        while True:
            request: HttpRequest | None = None
            try:
                with trio.move_on_after(timeout) as waiting:
                    request = await read_request(self.stream, http)
                if waiting.cancelled_caught and (first or http.trailing_data[0]):
                    # A head (or a first request) slower than the deadline: slowloris. An idle
                    # keep-alive connection that sent nothing more is not counted.
                    counters.timed_out_requests += 1
            except h11.RemoteProtocolError as exc:
                counters.refused_requests += 1
                status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
                with trio.move_on_after(opts.close_timeout):
                    await send_response(self.stream, h11.Connection(h11.SERVER), status, b"Bad Request")
                    await linger(self.stream)
                return None
            if request is None:
                return None
            after = await self._answer(request)
            if not isinstance(after, After):
                return after
            if after is After.CLOSE or http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                with trio.move_on_after(opts.close_timeout):
                    await linger(self.stream)
                return None
            http.start_next_cycle()
            timeout = opts.idle_timeout
            first = False

    async def _answer(self, request: HttpRequest) -> After | WebSocketPhase:
        engine = self.engine
        decision = engine.route(request, websocket=valid_websocket_request(request))
        action = decision.action
        if action is Action.FALLBACK:
            return await self._fallback(request)
        cors = self.options.cors_policy.headers(request)
        if action is Action.PREFLIGHT:
            headers = self.options.cors_policy.preflight_headers(request)
            await self._send(204, b"", headers, close=False)
            return After.KEEP_ALIVE
        if action is Action.REFUSE:
            if request.method == "OPTIONS":  # a preflight from an origin not allowed: no CORS headers
                assert decision.error is not None
                await send_engine_error(self.stream, self.http, decision.error, decision.status)
                return After.KEEP_ALIVE
            return await self._refuse(decision, cors)
        if action in (Action.OPEN_POLLING, Action.OPEN_WEBSOCKET) and not await engine.allowed(request):
            return await self._refuse(Route.refuse(EngineErrorCode.FORBIDDEN, 403), cors)
        address = engine.client_address(self.peer, request)
        if action is Action.OPEN_WEBSOCKET:
            trailing = await accept_websocket(self.stream, self.http, request)
            session, host = engine.open_session(Transport.WEBSOCKET, request, address, self.secure)
            return partial(_serve_websocket_session, engine, self.stream, trailing, session, host)
        if action is Action.UPGRADE:
            assert decision.session is not None
            trailing = await accept_websocket(self.stream, self.http, request)
            return partial(_serve_upgrade, engine, self.stream, trailing, decision.session)
        if action is Action.OPEN_POLLING:
            session, _host = engine.open_session(Transport.POLLING, request, address, self.secure)
            body = str(encode_ws(session.open_packet())).encode()
            await self._send(200, body, cors, close=False)
            return After.KEEP_ALIVE
        assert decision.session is not None
        if action is Action.POLL_GET:
            return await self._poll_get(decision.session, cors)
        return await self._poll_post(request, decision.session, cors)

    # -- answers ------------------------------------------------------------------------------------
    async def _send(
        self,
        status: int,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        *,
        close: bool,
        content_type: str = "text/plain; charset=UTF-8",
    ) -> None:
        await send_response(
            self.stream,
            self.http,
            status,
            body,
            content_type=content_type,
            extra_headers=headers,
            close=close,
            keep_alive=self.options.idle_timeout,
        )

    async def _refuse(self, decision: Route, cors: Sequence[tuple[str, str]]) -> After:
        assert decision.error is not None
        self.engine.counters.refused_requests += 1
        # An error answer ends the connection (a request body we did not read would otherwise be
        # taken for the next request; and a client that erred is not worth keeping alive).
        await send_engine_error(
            self.stream, self.http, decision.error, decision.status, extra_headers=cors, close=True
        )
        return After.CLOSE

    async def _fallback(self, request: HttpRequest) -> After:
        response: HttpResponse | None = None
        fallback = self.options.fallback
        if fallback is not None:
            try:
                response = await fallback(request)
            except Exception:
                logger.exception("fallback handler failed")
                response = HttpResponse(500, b"Internal Server Error")
        if response is None:
            response = HttpResponse(404, b"Not Found")
        close = self.http.their_state is not h11.DONE
        await self._send(
            response.status, response.body, response.headers, close=close, content_type=response.content_type
        )
        return After.CLOSE if close else After.KEEP_ALIVE

    # -- long-polling ---------------------------------------------------------------------------------
    async def _poll_get(self, session: Session, cors: Sequence[tuple[str, str]]) -> After:
        if session.expired():
            session.close(DisconnectReason.PING_TIMEOUT)
            return await self._refuse(Route.refuse(EngineErrorCode.UNKNOWN_SID), cors)
        if session.closed and (not session.collectable or session.final_delivered):
            return await self._refuse(Route.refuse(EngineErrorCode.UNKNOWN_SID), cors)
        if session.get_pending:
            session.close(DisconnectReason.TRANSPORT_ERROR)
            return await self._refuse(Route.refuse(EngineErrorCode.BAD_REQUEST), cors)
        after = After.KEEP_ALIVE
        session.get_pending = True
        try:
            if not (session.closed or session.upgrading):
                after = await self._hold(session)
            body = session.polling_answer()
        finally:
            session.get_pending = False
        if after is After.CLOSE and session.reason is DisconnectReason.TRANSPORT_CLOSE:
            return After.CLOSE  # the client went away while we held its GET
        await self._send(200, body.encode(), cors, close=after is After.CLOSE)
        return after

    async def _hold(self, session: Session) -> After:
        """Wait for packets (or a close, or an upgrade) while watching the client's connection."""
        sock = raw_socket(self.stream)
        if sock is not None:
            return await self._hold_on_socket(sock, session)
        after = After.KEEP_ALIVE

        async def watch() -> None:
            nonlocal after
            data = await self.stream.receive_some(65536)
            after = After.CLOSE
            if data:
                self.http.receive_data(bytes(data))
                await trio.sleep_forever()  # pipelining: answer this request, then close (refused cleanly)
            session.close(DisconnectReason.TRANSPORT_CLOSE)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await session.polling.wait()
            nursery.cancel_scope.cancel()
        return after

    async def _hold_on_socket(self, sock: socket.socket, session: Session) -> After:
        """``_hold`` on a plain TCP connection: one task waits for packets or for the socket."""
        while True:
            try:
                if await session.polling.wait_or_readable(sock):
                    return After.KEEP_ALIVE
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except (OSError, trio.ClosedResourceError):
                data = b""
            if data:
                self.http.receive_data(data)
                await session.polling.wait()
                return After.CLOSE  # pipelining: answer this request, then close (refused cleanly)
            session.close(DisconnectReason.TRANSPORT_CLOSE)
            return After.CLOSE

    async def _poll_post(
        self, request: HttpRequest, session: Session, cors: Sequence[tuple[str, str]]
    ) -> After:
        opts, http = self.options, self.http
        if session.expired():
            session.close(DisconnectReason.PING_TIMEOUT)
        if session.closed:
            return await self._refuse(Route.refuse(EngineErrorCode.UNKNOWN_SID), cors)
        if session.post_pending:
            session.close(DisconnectReason.TRANSPORT_ERROR)
            return await self._refuse(Route.refuse(EngineErrorCode.BAD_REQUEST), cors)
        declared = request.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > opts.max_payload:
            session.close(DisconnectReason.TRANSPORT_ERROR)
            await self._send(413, b"Payload Too Large", cors, close=True)
            return After.CLOSE
        session.post_pending = True
        try:
            body: bytes | None = None
            with trio.move_on_after(opts.request_timeout) as reading:
                try:
                    body = await read_body(self.stream, http, limit=opts.max_payload)
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
                if http.their_state in _REQUEST_READ:
                    return await self._refuse(Route.refuse(EngineErrorCode.BAD_REQUEST), cors)
                await self._send(413, b"Payload Too Large", cors, close=True)
                return After.CLOSE
            if await feed_post(session, body) is PostOutcome.BAD_REQUEST:
                return await self._refuse(Route.refuse(EngineErrorCode.BAD_REQUEST), cors)
        finally:
            session.post_pending = False
        await self._send(200, b"ok", cors, close=False, content_type="text/html")
        return After.KEEP_ALIVE


# -- WebSocket ----------------------------------------------------------------------------------------
def _websocket_parts(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session
) -> tuple[Outbound, WebSocketReader]:
    outbound = Outbound(
        stream,
        nursery=engine.nursery,
        max_queued_bytes=engine.options.max_queued_bytes,
        on_overflow=session.close_slow_consumer,
        stats=engine.counters,
    )
    return outbound, WebSocketReader(stream, outbound, trailing, max_message=engine.options.max_payload)


async def _serve_websocket_session(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session, host: SessionHost | None
) -> None:
    """A WebSocket session opened without polling: this task reads it, and hosts it if it has a host."""
    outbound, reader = _websocket_parts(engine, stream, trailing, session)
    scope = trio.CancelScope()
    session.attach_websocket(outbound, scope)
    outbound.write(text_frame(str(encode_ws(session.open_packet()))))
    try:
        if host is None:
            await read_messages(session, reader, scope)
        else:
            await engine.run_session(session, _read_hosted(host, session, reader, scope))
    finally:
        await finish(outbound, reader, engine.options.close_timeout, going_away(session))


async def _read_hosted(
    host: SessionHost, session: Session, reader: WebSocketReader, scope: trio.CancelScope
) -> None:
    async with host:
        await read_messages(session, reader, scope)


async def _serve_upgrade(
    engine: EngineCore, stream: trio.abc.Stream, trailing: bytes, session: Session
) -> None:
    """The WebSocket of a polling session's upgrade: the probe, then the session's messages."""
    outbound, reader = _websocket_parts(engine, stream, trailing, session)
    if session.transport is not Transport.POLLING or session.upgrading or session.closed:
        # A second WebSocket for an upgraded (or upgrading) session: accepted, then closed.
        await finish(outbound, reader, engine.options.close_timeout, False)
        return
    upgraded = False
    try:
        with trio.move_on_after(engine.options.upgrade_timeout) as probing:
            upgraded = await probe(session, outbound, reader)
        if probing.cancelled_caught:
            engine.counters.timed_out_requests += 1  # an upgrade handshake slower than its deadline
        if upgraded and not session.closed:
            scope = trio.CancelScope()
            session.attach_websocket(outbound, scope)
            await read_messages(session, reader, scope)
        elif upgraded and not session.closed_by_client:
            # Closed by the server mid-upgrade: the client waits on this WebSocket now, so the
            # last packets (a DISCONNECT, say) go here, then the close frame.
            for item in session.polling.take():
                outbound.deliver(item)
            session.set_final_delivered()
        else:
            session.abort_upgrade()
    finally:
        await finish(outbound, reader, engine.options.close_timeout, upgraded and going_away(session))


def _peer_address(stream: trio.abc.Stream) -> str:
    inner: Any = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(inner, trio.SocketStream):
        try:
            peer = inner.socket.getpeername()
        except OSError:
            return ""
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)
    return ""
