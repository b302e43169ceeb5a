"""ASGIApp: a trio_rooms server as an ASGI 3 application, beside the application you already have.

Rule: requests under the server's path go to the Engine.IO server's ASGI front door, everything else
to ``other_asgi_app``; the lifespan starts the server's machinery (``Server.running()``) and stops it,
with the other application's lifespan around it. A Trio ASGI server is required (Hypercorn's trio
worker: ``hypercorn -k trio``), and so is its lifespan: without it, requests fail loudly.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, TypeAlias

import trio

from ._util import unwrap_group
from .engine.asgi import ASGIFrontDoor, ASGIReceive, ASGIScope, ASGISend, RefusedRequestError, request_of
from .engine.http import HttpResponse
from .engine.routing import on_engine_path
from .engine.server import EngineServer
from .metrics import METRICS_PATH, MetricsEndpoint
from .server import Server

__all__ = ["ASGIApp", "ASGIApplication"]

logger = logging.getLogger("trio_rooms")

ASGIApplication: TypeAlias = Callable[[Any, Any, Any], Awaitable[None]]
"""Any ASGI 3 application: ``async (scope, receive, send) -> None`` (frameworks type the three
differently: Starlette with mappings, Quart and Hypercorn with typed dicts; all are accepted)."""

NOT_RUNNING: Final = (
    "trio_rooms.ASGIApp: the server is not running: its machinery (heartbeats, adapters) starts at "
    "the ASGI lifespan startup, and none came. Serve the app with an ASGI server that sends the "
    "lifespan (hypercorn -k trio does), and if you mount it inside another application, forward "
    "the lifespan to it (or make ASGIApp the outer application: ASGIApp(server, other_asgi_app)); "
    "or run the machinery yourself around the ASGI server: `async with server.running(): ...`."
)
NOT_TRIO: Final = (
    "trio_rooms.ASGIApp runs under Trio only: serve it with a Trio ASGI server, such as Hypercorn's "
    "trio worker (hypercorn -k trio module:app)."
)


class ASGIApp:
    """A trio_rooms ``Server`` (or an ``EngineServer``) as an ASGI 3 application.

    ``http`` and ``websocket`` requests whose path is the server's ``path`` ("/socket.io/" by default,
    matched against the scope's full path) are served by the Engine.IO server: long-polling,
    WebSocket and the upgrade, with the same semantics and limits as ``server.serve``. Every other
    request goes to ``other_asgi_app`` (404, or a refused WebSocket, when there is none), except
    ``GET /metrics`` when the ``Server`` has ``metrics`` on: the server's Prometheus metrics, as on
    its native front door.

    The ``lifespan`` scope runs the server's machinery (``Server.running()``: the heartbeat schedule,
    the adapters' ``run``, the polling sessions' hosts) from startup to shutdown; with
    ``other_asgi_app``, its lifespan is forwarded, around the server's: its startup completes first
    and its shutdown runs after the server's (so that socket handlers may use what it holds). At
    shutdown every socket still connected is disconnected with reason "server shutting down". The
    ASGI server ends its open connections before it sends the lifespan shutdown (Hypercorn: after
    ``--graceful-timeout``); a WebSocket connection cancelled that way is disconnected with the
    same reason and closed with 1001.

    A call raises ``RuntimeError`` under an ASGI server that is not Trio's, or when a request comes
    while the server's machinery is not running (no lifespan startup); the message says what to do.

    Args:
        server: the ``Server`` (or ``EngineServer``) to serve.
        other_asgi_app: the application that serves every other request, and whose lifespan is
            forwarded (default None).
    """

    def __init__(self, server: Server | EngineServer, other_asgi_app: ASGIApplication | None = None) -> None:
        self.server = server
        self.other_asgi_app = other_asgi_app
        self._engine = server.engine if isinstance(server, Server) else server
        self._door = ASGIFrontDoor(self._engine)
        self._metrics = server.metrics_endpoint if isinstance(server, Server) else None

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        """The ASGI 3 entry point."""
        _require_trio()
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind in ("http", "websocket"):
            if not self._engine.serving:
                raise RuntimeError(NOT_RUNNING)
            path = str(scope.get("path", ""))
            if on_engine_path(path, self._engine.options):
                await self._door(scope, receive, send)
                return
            if path == METRICS_PATH and kind == "http" and self._metrics is not None:
                await self._scrape(self._metrics, scope, send)
                return
        if self.other_asgi_app is not None:
            await self.other_asgi_app(scope, receive, send)
        elif kind == "http":
            body = b"Not Found"
            headers = [(b"content-type", b"text/plain; charset=UTF-8"), (b"content-length", b"9")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1000})

    async def _scrape(self, metrics: MetricsEndpoint, scope: ASGIScope, send: ASGISend) -> None:
        """Answer ``GET /metrics`` (the server's ``metrics`` on), as the native front door does."""
        try:
            request = request_of(scope)
        except RefusedRequestError as exc:
            response = HttpResponse(exc.status, str(exc).encode())
        else:
            client = scope.get("client")
            address = self._engine.client_address(str(client[0]) if client else "", request)
            response = await metrics.respond(dataclasses.replace(request, address=address))
        head = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            *response.headers,
        ]
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    # -- lifespan -------------------------------------------------------------------------------------
    async def _lifespan(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if (await receive()).get("type") != "lifespan.startup":
            return
        async with trio.open_nursery() as nursery:
            other: _ForwardedLifespan | None = None
            if self.other_asgi_app is not None:
                other = _ForwardedLifespan(self.other_asgi_app, scope)
                nursery.start_soon(other.run)
                failed = await other.start()
                if failed is not None:
                    await send({"type": "lifespan.startup.failed", "message": failed})
                    nursery.cancel_scope.cancel()
                    return
            started = False
            try:
                with unwrap_group():
                    async with self.server.running():
                        await send({"type": "lifespan.startup.complete"})
                        started = True
                        while (await receive()).get("type") != "lifespan.shutdown":
                            pass
            except Exception as exc:
                # The machinery failed (an adapter could not start, say): say so to the ASGI server.
                logger.exception("trio_rooms server failed")
                if other is not None:
                    await other.stop()
                phase = "shutdown" if started else "startup"
                await send({"type": f"lifespan.{phase}.failed", "message": f"{type(exc).__name__}: {exc}"})
                nursery.cancel_scope.cancel()
                return
            failed = None if other is None else await other.stop()
            if failed is None:
                await send({"type": "lifespan.shutdown.complete"})
            else:
                await send({"type": "lifespan.shutdown.failed", "message": failed})
            nursery.cancel_scope.cancel()


def _require_trio() -> None:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        raise RuntimeError(NOT_TRIO) from None


class _ForwardedLifespan:
    """The other application's lifespan, run as a child task fed with our own startup and shutdown.

    An application that raises before it answered the startup does not support the lifespan (the ASGI
    spec): it is then left out, as an ASGI server would."""

    def __init__(self, app: ASGIApplication, scope: ASGIScope) -> None:
        self._app = app
        self._scope = scope
        self._to_app, self._app_inbox = trio.open_memory_channel[MutableMapping[str, Any]](1)
        self._answer: MutableMapping[str, Any] | None = None
        self._answered = trio.Event()
        self._supported = True
        self._finished = False

    async def run(self) -> None:
        try:
            await self._app(self._scope, self._app_inbox.receive, self._receive_answer)
        except Exception:
            if self._answer is None:
                logger.debug("the other ASGI application does not support the lifespan", exc_info=True)
                self._supported = False
            else:
                logger.exception("the other ASGI application's lifespan failed")
        finally:
            self._finished = True
            self._answered.set()

    async def _receive_answer(self, message: MutableMapping[str, Any]) -> None:
        self._answer = message
        self._answered.set()
        await trio.lowlevel.checkpoint()

    async def _ask(self, message_type: str) -> str | None:
        """Send ``message_type``; wait for the answer; return the failure message (None: complete)."""
        if not self._supported or self._finished:
            await trio.lowlevel.checkpoint()
            return None
        self._answered = trio.Event()
        self._answer = None
        try:
            await self._to_app.send({"type": message_type})
        except (trio.BrokenResourceError, trio.ClosedResourceError):  # pragma: no cover - it returned
            return None
        await self._answered.wait()
        answer = self._answer
        if answer is None or not self._supported:
            return None  # it returned without answering, or does not support the lifespan
        if str(answer.get("type", "")).endswith(".failed"):
            return str(answer.get("message", "")) or f"{message_type} failed"
        return None

    async def start(self) -> str | None:
        """Forward the startup; the failure message, or None."""
        return await self._ask("lifespan.startup")

    async def stop(self) -> str | None:
        """Forward the shutdown; the failure message, or None."""
        return await self._ask("lifespan.shutdown")
