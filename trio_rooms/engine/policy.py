"""Who may connect: the CORS / same-origin policy, and the client address behind trusted proxies.

Rule: pure functions of the request; the engine server applies them to every Engine.IO request.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit

from .http import HttpRequest

__all__ = ["CorsOrigins", "CorsPolicy", "client_address"]

#: None: same origin only; "*": any; a list of origins; or a callable ``(origin) -> bool``.
CorsOrigins: TypeAlias = "str | Iterable[str] | Callable[[str], bool] | None"
"""What ``cors_allowed_origins`` takes. None (same origin only), ``"*"`` (any origin), the allowed
origins, or ``(origin) -> bool`` deciding per request."""

_PREFLIGHT_METHODS = "GET, POST, OPTIONS"

logger = logging.getLogger("trio_rooms")


def _same_origin(origin: str, host: str | None) -> bool:
    if host is None:
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return netloc.lower() == host.lower()


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """The origins allowed to use the server from a browser.

    Args:
        allowed: None (same origin only: a request whose Origin does not match its Host is
            refused; requests without Origin are allowed), "*", a list of origins, or a callable.
        credentials: send ``Access-Control-Allow-Credentials: true`` (cookies allowed) with the
            echoed origin. Never with ``"*"``, which answers the literal ``*``: echoing every
            origin (``null`` included) with credentials would let any web page make credentialed
            requests, and browsers refuse credentials with ``*`` anyway.
    """

    allowed: str | frozenset[str] | Callable[[str], bool] | None
    credentials: bool = True

    @classmethod
    def of(cls, origins: CorsOrigins, credentials: bool | None = None) -> CorsPolicy:
        """Build from the ``cors_allowed_origins`` and ``cors_credentials`` options (credentials:
        None means yes, except with ``"*"``; True with ``"*"`` logs a warning and is ignored)."""
        if isinstance(origins, str) and origins == "*":
            if credentials:
                logger.warning(
                    'cors_allowed_origins="*" never allows credentials: cors_credentials=True is '
                    "ignored (list the origins, or pass a callable, to allow credentials)"
                )
            return cls("*", False)
        allow_credentials = True if credentials is None else bool(credentials)
        if origins is None or callable(origins):
            return cls(origins, allow_credentials)
        if isinstance(origins, str):
            return cls(frozenset((origins,)), allow_credentials)
        return cls(frozenset(origins), allow_credentials)

    def allows(self, request: HttpRequest) -> bool:
        """Whether the request's Origin (if any) may use the server."""
        origin = request.header("origin")
        if origin is None:
            return True
        allowed = self.allowed
        if allowed is None:
            return _same_origin(origin, request.header("host"))
        if allowed == "*":
            return True
        if isinstance(allowed, frozenset):
            return origin in allowed
        if callable(allowed):
            return bool(allowed(origin))
        return False

    def headers(self, request: HttpRequest) -> list[tuple[str, str]]:
        """The CORS headers of an answer to ``request`` (none without an Origin)."""
        origin = request.header("origin")
        if origin is None or not self.allows(request):
            return []
        if self.allowed == "*":
            return [("access-control-allow-origin", "*")]
        headers = [("access-control-allow-origin", origin), ("vary", "Origin")]
        if self.credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return headers

    def preflight_headers(self, request: HttpRequest) -> list[tuple[str, str]]:
        """The headers of the answer to an OPTIONS preflight."""
        headers = self.headers(request)
        if not headers:
            return headers
        headers.append(("access-control-allow-methods", _PREFLIGHT_METHODS))
        requested = request.header("access-control-request-headers")
        if requested:
            headers.append(("access-control-allow-headers", requested))
        headers.append(("access-control-max-age", "86400"))
        return headers


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(
    peer: str,
    request: HttpRequest,
    trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The client's address: ``peer``, unless ``peer`` is a trusted proxy, in which case the
    right-most X-Forwarded-For entry that is not itself a trusted proxy."""
    networks = tuple(trusted)
    if not networks:
        return peer

    def is_trusted(address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in networks)

    if not is_trusted(peer):
        return peer
    forwarded = request.header("x-forwarded-for")
    if not forwarded:
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop if _ip(hop) is not None else peer
    return hops[0] if hops and _ip(hops[0]) is not None else peer
