"""HTTP as the Engine.IO server sees it, whichever front door read it: a request, a response, and
the reference server's error codes.

Rule: plain data and pure functions; the native front door (``h11io``) and the ASGI one build these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

__all__ = ["EngineErrorCode", "HttpRequest", "HttpResponse", "engine_error_body"]


class EngineErrorCode(IntEnum):
    """The error codes of the reference Engine.IO server (the JSON body of a 400/403 answer)."""

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5

    @property
    def message(self) -> str:
        """The reference server's message for the code ("Transport unknown", ...)."""
        return _ERROR_MESSAGES[self]


_ERROR_MESSAGES: Final = {
    EngineErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    EngineErrorCode.UNKNOWN_SID: "Session ID unknown",
    EngineErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    EngineErrorCode.BAD_REQUEST: "Bad request",
    EngineErrorCode.FORBIDDEN: "Forbidden",
    EngineErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One parsed HTTP request head.

    Attributes:
        method: upper-case method.
        target: the raw request target (path and query).
        path: the path part of the target.
        query: the query parameters (the last value wins for a repeated name).
        headers: header names lower-cased, values decoded as latin-1, in arrival order.
        address: the client's address as the server sees it (the peer, or a trusted proxy's
            ``X-Forwarded-For``, as ``handshake.address``), in the requests ``allow_request``, a
            ``fallback`` and the metrics policy get (and the ``connection_error`` hooks, for a
            request ``allow_request`` refused); empty in the other Engine.IO requests (their
            session has it).
    """

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: tuple[tuple[str, str], ...]
    address: str = ""

    def header(self, name: str) -> str | None:
        """The values of header ``name`` (lower case) joined by ", ", or None when absent."""
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None

    def header_dict(self) -> dict[str, str]:
        """All headers as a dict, repeated names joined by ", " (as Node's ``req.headers``)."""
        out: dict[str, str] = {}
        for k, v in self.headers:
            out[k] = f"{out[k]}, {v}" if k in out else v
        return out

    def wants_websocket(self) -> bool:
        """True when this is a WebSocket upgrade request."""
        upgrade = (self.header("upgrade") or "").lower()
        connection = (self.header("connection") or "").lower()
        return upgrade == "websocket" and "upgrade" in [t.strip() for t in connection.split(",")]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete HTTP response (what a ``fallback`` handler returns for its own pages)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = ()


def engine_error_body(code: EngineErrorCode) -> bytes:
    """The JSON body of an error answer: ``{"code": N, "message": "..."}``."""
    return json.dumps({"code": int(code), "message": code.message}, separators=(",", ":")).encode()
