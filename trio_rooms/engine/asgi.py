"""The ASGI front door: the Engine.IO server behind an ASGI 3 server (Hypercorn's trio worker).

Rule: the same session layer as the native front door, reached the same way: the scope becomes an
``HttpRequest``, ``EngineCore.route`` decides, and the shared steps of ``frontdoor`` do the rest
(``open_session``, ``run_session``, ``feed_post``, ``hold_get``, ``serve_websocket_session``,
``serve_upgrade``). What is ASGI's own: reading (``http.request`` bodies, ``websocket.receive`` whole
messages) and writing (a WebSocket's packets go through a ``MessageLane``: the queued lane only, since
an ASGI send is an ``await``). A connection's tasks (its reader, its writer, the watcher of a held GET)
live inside its ASGI call. The ASGI server owns the sockets and HTTP itself: request deadlines, keep-alive,
pipelining and WebSocket framing are its business.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from functools import partial
from typing import Any, Final, TypeAlias
from urllib.parse import parse_qsl

import trio

from ..errors import DisconnectReason
from ..protocol.engineio import encode_ws
from ..types import Transport
from .frontdoor import (
    EngineCore,
    PostOutcome,
    feed_post,
    hold_get,
    poll_get_refusal,
    poll_post_refusal,
    poll_refusal_reported,
    serve_upgrade,
    serve_websocket_session,
)
from .h11io import MAX_HEADERS
from .http import EngineErrorCode, HttpRequest, engine_error_body
from .lane import MessageLane
from .routing import Action, Route

__all__ = [
    "ASGIFrontDoor",
    "ASGIReceive",
    "ASGIScope",
    "ASGISend",
    "ASGIWebSocketReader",
    "RefusedRequestError",
    "request_of",
]

logger = logging.getLogger("trio_rooms")

ASGIScope: TypeAlias = MutableMapping[str, Any]
ASGIReceive: TypeAlias = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend: TypeAlias = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_MAX_QUERY_FIELDS: Final = 64
_TEXT: Final = "text/plain; charset=UTF-8"
_DENIAL_EXTENSION: Final = "websocket.http.response"
#: The close codes of a peer that went away normally (as ``WebSocketReader`` reads them).
_NORMAL_CLOSES: Final = frozenset((1000, 1001, 1005, 1006))


class RefusedRequestError(Exception):
    """A request the front door refuses before routing it (too many headers or query fields)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def request_of(scope: ASGIScope) -> HttpRequest:
    """The ``HttpRequest`` of an ASGI ``http`` or ``websocket`` scope, under the native front door's
    bounds: at most ``MAX_HEADERS`` headers (else 431) and 64 query fields (else 400).

    ``path`` is the scope's ``path`` (percent-decoded, the mount point included, as the client asked
    for it); ``target`` is the raw path and query string.

    Raises:
        RefusedRequestError: too many headers or query fields.
    """
    raw_headers = scope.get("headers") or ()
    if len(raw_headers) > MAX_HEADERS:
        raise RefusedRequestError(431, "too many headers")
    query_string = bytes(scope.get("query_string") or b"").decode("latin-1")
    try:
        query = dict(parse_qsl(query_string, keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS))
    except ValueError:
        raise RefusedRequestError(400, "too many query fields") from None
    path = str(scope.get("path") or "/")
    raw_path = scope.get("raw_path")
    target = bytes(raw_path).decode("latin-1") if raw_path else path
    if query_string:
        target += "?" + query_string
    headers = tuple((bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1")) for k, v in raw_headers)
    method = "GET" if scope["type"] == "websocket" else str(scope.get("method", "GET")).upper()
    return HttpRequest(method=method, target=target, path=path, query=query, headers=headers)


def _peer(scope: ASGIScope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _secure(scope: ASGIScope) -> bool:
    return scope.get("scheme") in ("https", "wss")


def _header_list(pairs: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def _respond(
    send: ASGISend,
    status: int,
    body: bytes,
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_type: str = _TEXT,
    close: bool = False,
) -> None:
    """A complete HTTP answer; ``close`` asks the ASGI server to close the connection after it (an
    error answer, as the native front door does: a body we did not read is not a next request)."""
    head = [("content-type", content_type), ("content-length", str(len(body)))]
    if close:
        head.append(("connection", "close"))
    await send({"type": "http.response.start", "status": status, "headers": _header_list([*head, *headers])})
    await send({"type": "http.response.body", "body": body})


class ASGIWebSocketReader:
    """Reads whole messages of an accepted ASGI WebSocket (``websocket.receive``), at most
    ``max_message`` each (a ``MessageReader``); the ASGI server answers WebSocket pings itself.

    After ``receive`` returned None, ``reason`` says why the WebSocket ended, ``close_code`` is the code
    of the close frame to send (1009 for a message too big) and ``peer_closed`` whether the client
    closed it (then no close frame is sent)."""

    __slots__ = ("_receive", "close_code", "max_message", "peer_closed", "reason")

    def __init__(self, receive: ASGIReceive, *, max_message: int) -> None:
        self._receive = receive
        self.max_message = max_message
        self.reason: DisconnectReason | None = None
        self.close_code = 1000
        self.peer_closed = False

    async def receive(self) -> str | bytes | None:
        """The next complete message, or None once the WebSocket is closed (see ``reason``)."""
        while True:
            message = await self._receive()
            kind = message.get("type")
            if kind == "websocket.receive":
                text = message.get("text")
                data: str | bytes | None = text if text is not None else message.get("bytes")
                if data is None:
                    self.close_code = 1002
                    self.reason = DisconnectReason.TRANSPORT_ERROR
                    return None
                if len(data) > self.max_message:
                    self.close_code = 1009
                    self.reason = DisconnectReason.TRANSPORT_ERROR
                    return None
                return data
            if kind == "websocket.disconnect":
                self.peer_closed = True
                code = message.get("code", 1005)
                normal = code in _NORMAL_CLOSES
                self.reason = DisconnectReason.TRANSPORT_CLOSE if normal else DisconnectReason.TRANSPORT_ERROR
                return None


class ASGIFrontDoor:
    """Serves the engine's requests (``http`` and ``websocket`` scopes under its path) as an ASGI 3
    application; the engine's machinery must be running (``EngineServer.running()``).

    Args:
        engine: the Engine.IO server.
    """

    def __init__(self, engine: EngineCore) -> None:
        self._engine = engine

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        """Serve one ``http`` or ``websocket`` scope for the Engine.IO path."""
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    # -- HTTP: long-polling -------------------------------------------------------------------------
    async def _http(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        engine = self._engine
        options = engine.options
        try:
            request = request_of(scope)
        except RefusedRequestError as exc:
            engine.counters.refused_requests += 1
            await _respond(send, exc.status, str(exc).encode(), close=True)
            return
        decision = engine.route(request, websocket=False)
        action = decision.action
        if action is Action.PREFLIGHT:
            await _respond(send, 204, b"", options.cors_policy.preflight_headers(request))
            return
        cors = options.cors_policy.headers(request)
        if action is Action.REFUSE:
            if request.method == "OPTIONS":  # a preflight from an origin not allowed: no CORS headers
                await self._refuse(send, decision, (), count=False)
            else:
                await self._refuse(send, decision, cors, request)
            return
        if action is Action.OPEN_POLLING:
            address = engine.client_address(_peer(scope), request)
            request = dataclasses.replace(request, address=address)  # as allow_request sees it
            if not await engine.allowed(request):
                await self._refuse(send, Route.refuse(EngineErrorCode.FORBIDDEN, 403), cors, request)
                return
            session, _host = engine.open_session(Transport.POLLING, request, address, _secure(scope))
            headers = engine.hooks.response_headers(request, cors, handshake=True)
            await _respond(send, 200, str(encode_ws(session.open_packet())).encode(), headers)
            return
        if action is Action.FALLBACK or decision.session is None:  # pragma: no cover - routed by the app
            await _respond(send, 404, b"Not Found", close=True)
            return
        if action is Action.POLL_GET:
            await self._poll_get(request, decision, receive, send, cors)
        elif action is Action.POLL_POST:
            await self._poll_post(request, decision, receive, send, cors)
        else:  # pragma: no cover - a WebSocket action is never routed for an http scope
            await self._refuse(send, Route.refuse(EngineErrorCode.BAD_REQUEST), cors)

    async def _refuse(
        self,
        send: ASGISend,
        decision: Route,
        cors: Iterable[tuple[str, str]],
        request: HttpRequest | None = None,
        *,
        count: bool = True,
    ) -> None:
        """Answer an Engine.IO error; with ``request``, tell the ``connection_error`` hooks."""
        assert decision.error is not None
        if count:
            self._engine.counters.refused_requests += 1
        if request is not None:
            self._engine.hooks.connection_error(request, decision.error)
        body = engine_error_body(decision.error)
        await _respond(send, decision.status, body, cors, content_type="application/json", close=True)

    async def _poll_get(
        self,
        request: HttpRequest,
        decision: Route,
        receive: ASGIReceive,
        send: ASGISend,
        cors: list[tuple[str, str]],
    ) -> None:
        session = decision.session
        assert session is not None
        refusal = poll_get_refusal(session)
        if refusal is not None:
            await self._refuse(
                send, Route.refuse(refusal), cors, request if poll_refusal_reported(refusal) else None
            )
            return

        async def hold() -> bool:
            """Wait for packets, a close or an upgrade, while watching for the client's departure."""
            present = True

            async def watch() -> None:
                nonlocal present
                while (await receive()).get("type") != "http.disconnect":
                    pass
                present = False
                session.polling.wake()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await session.polling.wait()
                nursery.cancel_scope.cancel()
            return present

        body = await hold_get(session, hold)
        if body is not None:
            headers = self._engine.hooks.response_headers(request, cors, handshake=False)
            await _respond(send, 200, body.encode(), headers)

    async def _poll_post(
        self,
        request: HttpRequest,
        decision: Route,
        receive: ASGIReceive,
        send: ASGISend,
        cors: list[tuple[str, str]],
    ) -> None:
        session = decision.session
        assert session is not None
        limit = self._engine.options.max_payload
        refusal = poll_post_refusal(session)
        if refusal is not None:
            await self._refuse(
                send, Route.refuse(refusal), cors, request if poll_refusal_reported(refusal) else None
            )
            return
        declared = request.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self._engine.counters.refused_requests += 1
            session.close(DisconnectReason.TRANSPORT_ERROR)
            await _respond(send, 413, b"Payload Too Large", cors, close=True)
            return
        session.post_pending = True
        try:
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                kind = message.get("type")
                if kind == "http.disconnect":
                    session.close(DisconnectReason.TRANSPORT_ERROR)  # gone in the middle of a body
                    return
                if kind != "http.request":
                    continue
                chunk = bytes(message.get("body") or b"")
                size += len(chunk)
                if size > limit:
                    self._engine.counters.refused_requests += 1
                    session.close(DisconnectReason.TRANSPORT_ERROR)
                    await _respond(send, 413, b"Payload Too Large", cors, close=True)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            outcome = await feed_post(session, b"".join(chunks))
        finally:
            session.post_pending = False
        if outcome is PostOutcome.BAD_REQUEST:
            await self._refuse(send, Route.refuse(EngineErrorCode.BAD_REQUEST), cors)
            return
        headers = self._engine.hooks.response_headers(request, cors, handshake=False)
        await _respond(send, 200, b"ok", headers, content_type="text/html")

    # -- WebSocket ------------------------------------------------------------------------------------
    async def _websocket(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        engine = self._engine
        if (await receive()).get("type") != "websocket.connect":
            return
        try:
            request = request_of(scope)
        except RefusedRequestError as exc:
            engine.counters.refused_requests += 1
            await _deny(scope, send, exc.status, str(exc).encode(), _TEXT)
            return
        decision = engine.route(request, websocket=True)
        address = ""
        if decision.action is Action.OPEN_WEBSOCKET:
            address = engine.client_address(_peer(scope), request)
            request = dataclasses.replace(request, address=address)  # as allow_request sees it
            if not await engine.allowed(request):
                decision = Route.refuse(EngineErrorCode.FORBIDDEN, 403)
        if decision.action is Action.REFUSE:
            assert decision.error is not None
            engine.counters.refused_requests += 1
            engine.hooks.connection_error(request, decision.error)
            body = engine_error_body(decision.error)
            await _deny(scope, send, decision.status, body, "application/json")
            return
        if decision.action not in (Action.OPEN_WEBSOCKET, Action.UPGRADE):  # pragma: no cover
            await send({"type": "websocket.close", "code": 1008})
            return
        opening = decision.action is Action.OPEN_WEBSOCKET
        extra = engine.hooks.response_headers(request, (), handshake=opening)
        await send({"type": "websocket.accept", "headers": _header_list(extra)})
        options = engine.options
        reader = ASGIWebSocketReader(receive, max_message=options.max_payload)
        host = None
        if decision.action is Action.OPEN_WEBSOCKET:
            session, host = engine.open_session(Transport.WEBSOCKET, request, address, _secure(scope))
        else:
            assert decision.session is not None
            session = decision.session
        lane = MessageLane(
            partial(_send_message, send),
            partial(_send_close, send),
            max_queued_bytes=options.max_queued_bytes,
            on_overflow=session.close_slow_consumer,
            stats=engine.counters,
        )

        async def finish(going_away: bool) -> None:
            code = None if reader.peer_closed else 1001 if going_away else reader.close_code
            with trio.CancelScope(shield=True) as closing:
                closing.deadline = trio.current_time() + options.close_timeout
                lane.close(code, closing.deadline)
                await lane.wait_closed()
            lane.abort()

        async with trio.open_nursery() as nursery:
            await nursery.start(lane.run)
            try:
                if decision.action is Action.OPEN_WEBSOCKET:
                    await serve_websocket_session(engine, session, host, lane, reader, finish)
                else:
                    await serve_upgrade(engine, session, lane, reader, finish)
            finally:
                lane.abort()  # ``finish`` ran (or the call failed before): the writer must end


async def _send_message(send: ASGISend, segment: str | bytes) -> None:
    if isinstance(segment, str):
        await send({"type": "websocket.send", "text": segment})
    else:
        await send({"type": "websocket.send", "bytes": segment})


async def _send_close(send: ASGISend, code: int) -> None:
    await send({"type": "websocket.close", "code": code})


async def _deny(scope: ASGIScope, send: ASGISend, status: int, body: bytes, content_type: str) -> None:
    """Refuse a WebSocket handshake with an HTTP answer (the ASGI "WebSocket Denial Response"
    extension, as the native front door answers); without the extension the ASGI server answers 403."""
    if _DENIAL_EXTENSION in (scope.get("extensions") or {}):
        head = [("content-type", content_type), ("content-length", str(len(body)))]
        await send({"type": "websocket.http.response.start", "status": status, "headers": _header_list(head)})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
