"""EngineServer: the Engine.IO v4 server (long-polling, WebSocket, the upgrade between them), usable
on its own as python-engineio is; the Socket.IO ``Server`` is built on it.

Rule: each HTTP connection is one task reading requests in turn (h11, bounded, with deadlines);
each Engine.IO session is one task (the application's handler) that outlives the requests of a
long-polling client; one server-wide task pings every session.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, Final, TypeVar

import h11
import trio

from ._util import check_async_callable, unwrap_group
from .engine_options import EngineOptions
from .errors import DisconnectReason, RemoteProtocolError
from .protocol.engineio import RECORD_SEPARATOR as RECORD_SEPARATOR_TEXT
from .protocol.engineio import decode_payload, encode_ws
from .protocol.websocket import text_frame
from .stats import Counters
from .transport.heartbeat import Heartbeats
from .transport.http import (
    EngineErrorCode,
    HttpRequest,
    HttpResponse,
    accept_websocket,
    linger,
    read_body,
    read_request,
    send_engine_error,
    send_response,
    server_connection,
    valid_websocket_request,
)
from .transport.outbound import Outbound, raw_socket
from .transport.policy import client_address
from .transport.session import EngineSession, Transport
from .transport.websocket import WebSocketReader, finish, probe, read_messages

__all__ = ["EngineOptions", "EngineServer", "EngineSession", "HttpRequest", "HttpResponse"]

logger = logging.getLogger("trio_rooms")

SessionHandler = Callable[[EngineSession], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

#: Server-decided closes after which a polling session stays findable until a GET has collected its
#: last packets (as the reference server drains its buffer before closing). Any other close (an
#: error, a ping timeout, the client's own close) forgets the session at once: a later request on
#: its sid gets 400.
_COLLECTABLE: Final = frozenset(
    {
        DisconnectReason.FORCED_CLOSE,
        DisconnectReason.FORCED_SERVER_CLOSE,
        DisconnectReason.SERVER_SHUTTING_DOWN,
    }
)
_KEEP: Final = "keep"
#: What serves a connection once it is an accepted WebSocket.
_WebSocketPhase = Callable[[], Awaitable[None]]
_CLOSE: Final = "close"


class EngineServer:
    """An Engine.IO v4 server.

    ``@engine.on("connection")`` registers ``async def handler(session)``: ``async for message in
    session`` yields each message (str or bytes) until the session ends, ``await
    session.send(message)`` sends one, ``await session.close()`` ends it; the session closes when
    the handler returns. Serve with ``await nursery.start(engine.serve, host, port)``.
    Options: see ``EngineOptions`` (the path defaults to "/engine.io/").
    """

    def __init__(self, *, counters: Counters | None = None, **options: Any) -> None:
        self.options = EngineOptions(**options)
        self.counters = counters if counters is not None else Counters()
        self._handler: SessionHandler | None = None
        #: Called synchronously with each new session, before its transport reads anything; returns
        #: the session's host (instead of the "connection" handler), an async context manager entered
        #: for the session's life: by a WebSocket session's own reading task, around its reading (no
        #: task of its own), or by a task that waits for a polling session to end. The Socket.IO
        #: server's hook (its ``Connection``).
        self.open_session: Callable[[EngineSession], AbstractAsyncContextManager[object]] | None = None
        self._sessions: dict[str, EngineSession] = {}
        self._heartbeats = Heartbeats(self.options.heartbeat_resolution)
        self._nursery: trio.Nursery | None = None

    @property
    def heartbeats(self) -> Heartbeats:
        """The server's heartbeat schedule (it also keeps the Socket.IO connect deadlines)."""
        return self._heartbeats

    @property
    def sessions(self) -> dict[str, EngineSession]:
        """The open sessions by id (read it, do not change it)."""
        return self._sessions

    def on(self, event: str) -> Callable[[F], F]:
        """Register the ``"connection"`` handler: ``async def handler(session)``."""
        if event != "connection":
            raise ValueError('EngineServer has one event: "connection"')

        def register(handler: F) -> F:
            check_async_callable(handler, "connection handler")
            self._handler = handler
            return handler

        return register

    # -- serving ------------------------------------------------------------------------------------
    async def serve(
        self,
        host: str | None,
        port: int,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host``:``port`` (0 picks a free port) and serve until cancelled."""
        with unwrap_group():
            listeners = await trio.open_tcp_listeners(port, host=host)
            await self.serve_listeners(listeners, task_status=task_status)

    async def serve_listeners(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve any trio listeners until cancelled; then every session is closed in turn."""
        with unwrap_group():
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self._heartbeats.run)
                await nursery.start(
                    partial(
                        trio.serve_listeners, self._handle_stream, list(listeners), handler_nursery=nursery
                    )
                )
                task_status.started(list(listeners))

    # -- one HTTP connection ------------------------------------------------------------------------
    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        try:
            websocket = await self._serve_http(stream)
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
            with trio.CancelScope(shield=True), trio.move_on_after(self.options.close_timeout):
                await stream.aclose()

    async def _serve_http(self, stream: trio.abc.Stream) -> _WebSocketPhase | None:
        """Serve HTTP requests until the connection closes (None) or becomes a WebSocket (returned,
        accepted, for the caller to run)."""
        opts = self.options
        http = server_connection()
        peer = _peer_address(stream)
        timeout = opts.request_timeout
        first = True
        while True:
            request: HttpRequest | None = None
            try:
                with trio.move_on_after(timeout) as waiting:
                    request = await read_request(stream, http)
                if waiting.cancelled_caught and (first or http.trailing_data[0]):
                    # A head (or a first request) slower than the deadline: slowloris. An idle
                    # keep-alive connection that sent nothing more is not counted.
                    self.counters.timed_out_requests += 1
            except h11.RemoteProtocolError as exc:
                self.counters.refused_requests += 1
                status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
                with trio.move_on_after(opts.close_timeout):
                    await send_response(stream, h11.Connection(h11.SERVER), status, b"Bad Request")
                    await linger(stream)
                return None
            if request is None:
                return None
            outcome = await self._dispatch(stream, http, request, peer)
            if not isinstance(outcome, str):
                return outcome
            if outcome != _KEEP or http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                with trio.move_on_after(opts.close_timeout):
                    await linger(stream)
                return None
            http.start_next_cycle()
            timeout = opts.idle_timeout
            first = False

    async def _dispatch(
        self, stream: trio.abc.Stream, http: h11.Connection, request: HttpRequest, peer: str
    ) -> str | _WebSocketPhase:
        opts = self.options
        cors = opts._cors.headers(request)
        if request.path != opts.path and request.path + "/" != opts.path:
            return await self._fallback(stream, http, request, cors)
        if request.method == "OPTIONS":
            if not opts._cors.allows(request):
                await send_engine_error(stream, http, EngineErrorCode.FORBIDDEN, 403)
                return _KEEP
            await send_response(
                stream,
                http,
                204,
                b"",
                extra_headers=opts._cors.preflight_headers(request),
                close=False,
                keep_alive=opts.idle_timeout,
            )
            return _KEEP
        if not opts._cors.allows(request):
            return await self._refuse(stream, http, EngineErrorCode.FORBIDDEN, cors, status=403)
        if request.query.get("EIO") != "4":
            return await self._refuse(stream, http, EngineErrorCode.UNSUPPORTED_PROTOCOL_VERSION, cors)
        transport = request.query.get("transport")
        if transport not in opts.transports:
            return await self._refuse(stream, http, EngineErrorCode.UNKNOWN_TRANSPORT, cors)
        sid = request.query.get("sid")
        if transport == Transport.WEBSOCKET:
            if not valid_websocket_request(request):
                return await self._refuse(stream, http, EngineErrorCode.BAD_REQUEST, cors)
            if sid is None:
                if not await self._allowed(request):
                    return await self._refuse(stream, http, EngineErrorCode.FORBIDDEN, cors, status=403)
                trailing = await accept_websocket(stream, http, request)
                return partial(self._websocket_session, stream, trailing, request, peer)
            session = self._sessions.get(sid)
            if session is None:
                return await self._refuse(stream, http, EngineErrorCode.UNKNOWN_SID, cors)
            trailing = await accept_websocket(stream, http, request)
            return partial(self._upgrade, stream, trailing, session)
        if sid is None:
            if request.method != "GET":
                return await self._refuse(stream, http, EngineErrorCode.BAD_HANDSHAKE_METHOD, cors)
            if not await self._allowed(request):
                return await self._refuse(stream, http, EngineErrorCode.FORBIDDEN, cors, status=403)
            return await self._polling_session(stream, http, request, peer, cors)
        session = self._sessions.get(sid)
        if session is None:
            return await self._refuse(stream, http, EngineErrorCode.UNKNOWN_SID, cors)
        if session.transport != Transport.POLLING:
            return await self._refuse(stream, http, EngineErrorCode.BAD_REQUEST, cors)
        if request.method == "GET":
            return await self._poll_get(stream, http, session, cors)
        if request.method == "POST":
            return await self._poll_post(stream, http, request, session, cors)
        return await self._refuse(stream, http, EngineErrorCode.BAD_HANDSHAKE_METHOD, cors)

    async def _refuse(
        self,
        stream: trio.abc.Stream,
        http: h11.Connection,
        code: int,
        cors: list[tuple[str, str]],
        status: int = 400,
    ) -> str:
        self.counters.refused_requests += 1
        # An error answer ends the connection (a request body we did not read would otherwise be
        # taken for the next request; and a client that erred is not worth keeping alive).
        await send_engine_error(stream, http, code, status, extra_headers=cors, close=True)
        return _CLOSE

    async def _allowed(self, request: HttpRequest) -> bool:
        check = self.options.allow_request
        if check is None:
            await trio.lowlevel.checkpoint()
            return True
        try:
            return bool(await check(request))
        except Exception:
            logger.exception("allow_request failed; request refused")
            return False

    async def _fallback(
        self, stream: trio.abc.Stream, http: h11.Connection, request: HttpRequest, cors: list[tuple[str, str]]
    ) -> str:
        response: HttpResponse | None = None
        if self.options.fallback is not None:
            try:
                response = await self.options.fallback(request)
            except Exception:
                logger.exception("fallback handler failed")
                response = HttpResponse(500, b"Internal Server Error")
        if response is None:
            response = HttpResponse(404, b"Not Found")
        close = http.their_state is not h11.DONE
        await send_response(
            stream,
            http,
            response.status,
            response.body,
            content_type=response.content_type,
            extra_headers=response.headers,
            close=close,
            keep_alive=self.options.idle_timeout,
        )
        return _CLOSE if close else _KEEP

    # -- sessions -------------------------------------------------------------------------------------
    def _new_session(
        self, transport: str, request: HttpRequest, peer: str, secure: bool
    ) -> tuple[EngineSession, AbstractAsyncContextManager[object] | None]:
        """Make and register a session and start serving it, except a WebSocket session with a host:
        that host is returned, for the caller's reading task to enter."""
        opts = self.options
        session = EngineSession(
            transport=transport,
            ping_interval=opts.ping_interval,
            ping_timeout=opts.ping_timeout,
            max_payload=opts.max_payload,
            max_queued_bytes=opts.max_queued_bytes,
            upgrades=(Transport.WEBSOCKET,) if Transport.WEBSOCKET in opts.transports else (),
            counters=self.counters,
        )
        session.request = request
        session.address = client_address(peer, request, opts._networks)
        session.secure = secure
        self._sessions[session.sid] = session
        self.counters.connections_total += 1
        assert self._nursery is not None
        host = self.open_session(session) if self.open_session is not None else None
        if host is not None and transport == Transport.WEBSOCKET:
            return session, host  # the WebSocket's reading task hosts it (``_websocket_session``)
        if host is not None:
            serve: Callable[[], Awaitable[object]] = partial(_host_until_closed, host, session)
        elif self._handler is not None:
            serve = partial(self._handler, session)
        else:
            serve = session.wait_closed
        self._nursery.start_soon(self._run_session, session, serve())
        return session, None

    async def _run_session(self, session: EngineSession, serving: Awaitable[object]) -> None:
        session.start_heartbeat(self._heartbeats)
        try:
            await serving
        except Exception:
            logger.exception("Engine.IO connection handler failed")
        finally:
            if session.reason is None:
                cancelled = trio.current_effective_deadline() == -float("inf")
                reason = DisconnectReason.SERVER_SHUTTING_DOWN if cancelled else DisconnectReason.FORCED_CLOSE
                session.end(reason)
            if session.transport == Transport.POLLING and _collectable(session):
                # Keep the session findable so that the next GET collects the last packets.
                with trio.CancelScope(shield=True), trio.move_on_after(self.options.close_timeout):
                    await session.wait_final_delivered()
            self._sessions.pop(session.sid, None)

    # -- long-polling -----------------------------------------------------------------------------------
    async def _polling_session(
        self,
        stream: trio.abc.Stream,
        http: h11.Connection,
        request: HttpRequest,
        peer: str,
        cors: list[tuple[str, str]],
    ) -> str:
        session, _host = self._new_session(
            Transport.POLLING, request, peer, isinstance(stream, trio.SSLStream)
        )
        body = str(encode_ws(session.open_packet())).encode()
        await send_response(
            stream, http, 200, body, extra_headers=cors, close=False, keep_alive=self.options.idle_timeout
        )
        return _KEEP

    async def _poll_get(
        self,
        stream: trio.abc.Stream,
        http: h11.Connection,
        session: EngineSession,
        cors: list[tuple[str, str]],
    ) -> str:
        if session.expired():
            session.end(DisconnectReason.PING_TIMEOUT)
            return await self._refuse(stream, http, EngineErrorCode.UNKNOWN_SID, cors)
        if session.closed and (not _collectable(session) or session.final_delivered):
            return await self._refuse(stream, http, EngineErrorCode.UNKNOWN_SID, cors)
        if session.get_pending:
            session.end(DisconnectReason.TRANSPORT_ERROR)
            return await self._refuse(stream, http, EngineErrorCode.BAD_REQUEST, cors)
        outcome = _KEEP
        session.get_pending = True
        try:
            if not (session.closed or session.upgrading):
                outcome = await self._hold(stream, http, session)
            body = self._poll_body(session)
        finally:
            session.get_pending = False
        if outcome != _KEEP and session.reason is DisconnectReason.TRANSPORT_CLOSE:
            return _CLOSE  # the client went away while we held its GET
        await send_response(
            stream,
            http,
            200,
            body.encode(),
            extra_headers=cors,
            close=outcome != _KEEP,
            keep_alive=self.options.idle_timeout,
        )
        return outcome

    def _poll_body(self, session: EngineSession) -> str:
        if session.closed:
            if session.closed_by_client:
                return "6"
            items = session.poll.take()
            items.append(session.final_polling_item())
            session.set_final_delivered()
            return RECORD_SEPARATOR_TEXT.join(item.polling for item in items)
        if session.upgrading or session.transport != Transport.POLLING:
            return "6"
        return session.poll.payload()

    async def _hold(self, stream: trio.abc.Stream, http: h11.Connection, session: EngineSession) -> str:
        """Wait for packets (or a close, or an upgrade) while watching the client's connection."""
        sock = raw_socket(stream)
        if sock is not None:
            return await self._hold_on_socket(sock, http, session)
        outcome = _KEEP

        async def watch() -> None:
            nonlocal outcome
            data = await stream.receive_some(65536)
            if data:
                http.receive_data(bytes(data))
                outcome = _CLOSE  # pipelining: answer this request, then close (refused cleanly)
                await trio.sleep_forever()
            outcome = _CLOSE
            session.end(DisconnectReason.TRANSPORT_CLOSE)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await session.poll.wait()
            nursery.cancel_scope.cancel()
        return outcome

    async def _hold_on_socket(self, sock: socket.socket, http: h11.Connection, session: EngineSession) -> str:
        """``_hold`` on a plain TCP connection: one task waits for packets or for the socket."""
        while True:
            try:
                if await session.poll.wait_or_readable(sock):
                    return _KEEP
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except (OSError, trio.ClosedResourceError):
                data = b""
            if data:
                http.receive_data(data)
                await session.poll.wait()
                return _CLOSE  # pipelining: answer this request, then close (refused cleanly)
            session.end(DisconnectReason.TRANSPORT_CLOSE)
            return _CLOSE

    async def _poll_post(
        self,
        stream: trio.abc.Stream,
        http: h11.Connection,
        request: HttpRequest,
        session: EngineSession,
        cors: list[tuple[str, str]],
    ) -> str:
        opts = self.options
        if session.expired():
            session.end(DisconnectReason.PING_TIMEOUT)
        if session.closed:
            return await self._refuse(stream, http, EngineErrorCode.UNKNOWN_SID, cors)
        if session.post_pending:
            session.end(DisconnectReason.TRANSPORT_ERROR)
            return await self._refuse(stream, http, EngineErrorCode.BAD_REQUEST, cors)
        declared = request.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > opts.max_payload:
            session.end(DisconnectReason.TRANSPORT_ERROR)
            await send_response(stream, http, 413, b"Payload Too Large", extra_headers=cors)
            return _CLOSE
        session.post_pending = True
        try:
            body: bytes | None = None
            timed_out = True
            with trio.move_on_after(opts.request_timeout):
                try:
                    body = await read_body(stream, http, limit=opts.max_payload)
                except h11.RemoteProtocolError:
                    session.end(DisconnectReason.TRANSPORT_ERROR)
                    return _CLOSE  # the client sent a broken body or went away in the middle
                timed_out = False
            if timed_out:
                # A body trickled slower than the request deadline: cut, as a slow-request attack.
                self.counters.timed_out_requests += 1
                session.end(DisconnectReason.TRANSPORT_ERROR)
                await send_response(stream, http, 408, b"Request Timeout", extra_headers=cors)
                return _CLOSE
            if body is None:
                session.end(DisconnectReason.TRANSPORT_ERROR)
                if http.their_state in (h11.DONE, h11.MUST_CLOSE):
                    return await self._refuse(stream, http, EngineErrorCode.BAD_REQUEST, cors)
                await send_response(stream, http, 413, b"Payload Too Large", extra_headers=cors)
                return _CLOSE
            try:
                packets = decode_payload(body.decode("utf-8"))
            except (RemoteProtocolError, UnicodeDecodeError) as exc:
                error = (
                    exc if isinstance(exc, RemoteProtocolError) else RemoteProtocolError("body is not UTF-8")
                )
                session.protocol_error(error)
                return await self._refuse(stream, http, EngineErrorCode.BAD_REQUEST, cors)
            for packet in packets:
                await session.feed(packet)
            if session.reason is DisconnectReason.PARSE_ERROR:
                # A packet a client may not send (open, upgrade outside an upgrade...): invalid.
                return await self._refuse(stream, http, EngineErrorCode.BAD_REQUEST, cors)
        finally:
            session.post_pending = False
        await send_response(
            stream,
            http,
            200,
            b"ok",
            content_type="text/html",
            extra_headers=cors,
            close=False,
            keep_alive=opts.idle_timeout,
        )
        return _KEEP

    # -- WebSocket ------------------------------------------------------------------------------------
    def _websocket_parts(
        self, stream: trio.abc.Stream, trailing: bytes, session: EngineSession | None
    ) -> tuple[Outbound, WebSocketReader]:
        def overflow() -> None:
            if session is not None:
                session.close_slow_consumer()

        assert self._nursery is not None
        outbound = Outbound(
            stream,
            nursery=self._nursery,
            max_queued_bytes=self.options.max_queued_bytes,
            on_overflow=overflow,
            stats=self.counters,
        )
        return outbound, WebSocketReader(stream, outbound, trailing, max_message=self.options.max_payload)

    async def _websocket_session(
        self, stream: trio.abc.Stream, trailing: bytes, request: HttpRequest, peer: str
    ) -> None:
        session, host = self._new_session(
            Transport.WEBSOCKET, request, peer, isinstance(stream, trio.SSLStream)
        )
        outbound, reader = self._websocket_parts(stream, trailing, session)
        scope = trio.CancelScope()
        session.attach_websocket(outbound, scope)
        outbound.write(text_frame(str(encode_ws(session.open_packet()))))
        try:
            if host is None:
                await read_messages(session, reader, scope)
            else:
                await self._run_session(session, _read_hosted(host, session, reader, scope))
        finally:
            await finish(outbound, reader, self.options.close_timeout, _going_away(session))

    async def _upgrade(self, stream: trio.abc.Stream, trailing: bytes, session: EngineSession) -> None:
        outbound, reader = self._websocket_parts(stream, trailing, session)
        if session.transport != Transport.POLLING or session.upgrading or session.closed:
            # A second WebSocket for an upgraded (or upgrading) session: accepted, then closed.
            await finish(outbound, reader, self.options.close_timeout, False)
            return
        upgraded = False
        try:
            with trio.move_on_after(self.options.upgrade_timeout) as probing:
                upgraded = await probe(session, outbound, reader)
            if probing.cancelled_caught:
                self.counters.timed_out_requests += 1  # an upgrade handshake slower than its deadline
            if upgraded and not session.closed:
                scope = trio.CancelScope()
                session.attach_websocket(outbound, scope)
                await read_messages(session, reader, scope)
            elif upgraded and not session.closed_by_client:
                # Closed by the server mid-upgrade: the client waits on this WebSocket now, so the
                # last packets (a DISCONNECT, say) go here, then the close frame.
                for item in session.poll.take():
                    outbound.write(item.frames)
                session.set_final_delivered()
            else:
                session.abort_upgrade()
        finally:
            await finish(outbound, reader, self.options.close_timeout, upgraded and _going_away(session))


async def _host_until_closed(host: AbstractAsyncContextManager[object], session: EngineSession) -> None:
    async with host:
        await session.wait_closed()


async def _read_hosted(
    host: AbstractAsyncContextManager[object],
    session: EngineSession,
    reader: WebSocketReader,
    scope: trio.CancelScope,
) -> None:
    async with host:
        await read_messages(session, reader, scope)


def _going_away(session: EngineSession) -> bool:
    """Whether a WebSocket's close frame says 1001 ("going away"): the server is shutting down."""
    return session.reason is None or session.reason is DisconnectReason.SERVER_SHUTTING_DOWN


def _collectable(session: EngineSession) -> bool:
    """Whether a closed polling session keeps its last packets for the next GET."""
    return session.reason in _COLLECTABLE and not session.closed_by_client


def _peer_address(stream: trio.abc.Stream) -> str:
    inner: Any = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(inner, trio.SocketStream):
        try:
            peer = inner.socket.getpeername()
        except OSError:
            return ""
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)
    return ""
