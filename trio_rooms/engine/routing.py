"""What an Engine.IO request asks for, decided once for every front door.

Rule: a pure function of the request, the options and the open sessions: the front door reads the
request its own way (h11, ASGI), asks ``route``, then does what the route says, so that both front
doors refuse the same requests with the same codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, auto

from ..types import Transport
from .http import EngineErrorCode, HttpRequest
from .options import EngineOptions
from .session import Session

__all__ = ["Action", "Route", "on_engine_path", "route"]


class Action(Enum):
    """What a request asks for."""

    FALLBACK = auto()
    """Outside the Engine.IO path: the application's own pages."""
    PREFLIGHT = auto()
    """A CORS preflight (OPTIONS) the policy allows: 204."""
    REFUSE = auto()
    """An Engine.IO error answer (``Route.error``, ``Route.status``)."""
    OPEN_POLLING = auto()
    """The polling handshake (after ``allow_request``)."""
    OPEN_WEBSOCKET = auto()
    """A WebSocket session without polling first (after ``allow_request``)."""
    UPGRADE = auto()
    """The WebSocket of a polling session's upgrade (``Route.session``)."""
    POLL_GET = auto()
    """A long-polling GET of ``Route.session``."""
    POLL_POST = auto()
    """A long-polling POST of ``Route.session``."""


@dataclass(frozen=True, slots=True)
class Route:
    """The decision: an action, with its session or its error."""

    action: Action
    session: Session | None = None
    error: EngineErrorCode | None = None
    status: int = 400

    @classmethod
    def refuse(cls, error: EngineErrorCode, status: int = 400) -> Route:
        return cls(Action.REFUSE, error=error, status=status)


def on_engine_path(path: str, options: EngineOptions) -> bool:
    """Whether a request for ``path`` is the Engine.IO server's (``options.path``, with or without its
    trailing slash); anything else is the application's own."""
    return path == options.path or path + "/" == options.path


def route(
    request: HttpRequest, options: EngineOptions, sessions: Mapping[str, Session], *, websocket: bool
) -> Route:
    """Decide what ``request`` asks for.

    Args:
        request: the request.
        options: the server's options.
        sessions: the open sessions, by id.
        websocket: the request is a well-formed WebSocket opening (its front door checked it).

    Returns:
        The route. A ``REFUSE`` for an OPTIONS request without an allowed origin carries status 403.
    """
    if not on_engine_path(request.path, options):
        return Route(Action.FALLBACK)
    cors = options.cors_policy
    if request.method == "OPTIONS":
        if not cors.allows(request):
            return Route.refuse(EngineErrorCode.FORBIDDEN, 403)
        return Route(Action.PREFLIGHT)
    if not cors.allows(request):
        return Route.refuse(EngineErrorCode.FORBIDDEN, 403)
    if request.query.get("EIO") != "4":
        return Route.refuse(EngineErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
    name = request.query.get("transport")
    if name not in options.transports:
        return Route.refuse(EngineErrorCode.UNKNOWN_TRANSPORT)
    sid = request.query.get("sid")
    if name == Transport.WEBSOCKET:
        if not websocket:
            return Route.refuse(EngineErrorCode.BAD_REQUEST)
        if sid is None:
            return Route(Action.OPEN_WEBSOCKET)
        session = sessions.get(sid)
        if session is None:
            return Route.refuse(EngineErrorCode.UNKNOWN_SID)
        return Route(Action.UPGRADE, session)
    if sid is None:
        if request.method != "GET":
            return Route.refuse(EngineErrorCode.BAD_HANDSHAKE_METHOD)
        return Route(Action.OPEN_POLLING)
    session = sessions.get(sid)
    if session is None:
        return Route.refuse(EngineErrorCode.UNKNOWN_SID)
    if session.transport is not Transport.POLLING:
        return Route.refuse(EngineErrorCode.BAD_REQUEST)
    if request.method == "GET":
        return Route(Action.POLL_GET, session)
    if request.method == "POST":
        return Route(Action.POLL_POST, session)
    return Route.refuse(EngineErrorCode.BAD_HANDSHAKE_METHOD)
