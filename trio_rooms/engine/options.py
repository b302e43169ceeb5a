"""EngineOptions: the options of an Engine.IO server, checked once (shared by ``EngineServer`` and
the Socket.IO ``Server``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..types import Transport
from .heartbeat import DEFAULT_RESOLUTION
from .http import HttpRequest, HttpResponse
from .outbound import DEFAULT_MAX_QUEUED_BYTES
from .policy import CorsOrigins, CorsPolicy

__all__ = ["AllowRequest", "EngineOptions", "Fallback"]

AllowRequest = Callable[[HttpRequest], Awaitable[bool]]
"""What ``allow_request`` takes, ``async def allow_request(request) -> bool``. False refuses a new
session (403)."""
Fallback = Callable[[HttpRequest], Awaitable["HttpResponse | None"]]
"""What ``fallback`` takes, ``async def fallback(request) -> HttpResponse | None``, which answers
the requests outside the Engine.IO path (None: 404). To a HEAD, answer as to the GET: the server
sends that answer's headers, its Content-Length included, and no body (RFC 9110, 9.3.2)."""


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """The Engine.IO options (shared by ``EngineServer`` and the Socket.IO ``Server``).

    Attributes:
        ping_interval: seconds between heartbeat pings.
        ping_timeout: seconds to wait for a pong after a ping was queued.
        max_payload: largest message (WebSocket) or request body (polling) from a client.
        path: the Engine.IO path.
        transports: the transports served, among "polling" and "websocket".
        cors_allowed_origins: None (same origin only), "*", a list, or ``(origin) -> bool``.
        cors_credentials: allow credentials (cookies) from the allowed origins; None (the
            default): yes, except with ``"*"``, which never allows them (True with ``"*"`` logs a
            warning and is ignored).
        allow_request: ``async (request) -> bool``: False refuses a new session with 403.
        trusted_proxies: addresses or networks whose X-Forwarded-For is believed.
        max_queued_bytes: per-session bound on queued outbound bytes (slow-consumer policy).
        request_timeout: deadline for one request's head and body.
        idle_timeout: how long a keep-alive connection may wait for its next request.
        upgrade_timeout: deadline for a polling session's WebSocket upgrade to complete.
        close_timeout: deadline to flush a closing session's last packets.
        fallback: ``async (request) -> HttpResponse | None`` for requests outside ``path``.
        heartbeat_resolution: pings and pong deadlines are due on ticks of this many seconds
            (one wake-up serves every session due at a tick); 0 makes them exact.

    Derived (not arguments):
        cors_policy: the CORS policy built from the two ``cors_*`` options.
        proxy_networks: ``trusted_proxies`` as networks.
    """

    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    max_payload: int = 1_000_000
    path: str = "/engine.io/"
    transports: tuple[Transport, ...] = (Transport.POLLING, Transport.WEBSOCKET)
    cors_allowed_origins: CorsOrigins = None
    cors_credentials: bool | None = None
    allow_request: AllowRequest | None = None
    trusted_proxies: tuple[str, ...] = ()
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    upgrade_timeout: float = 10.0
    close_timeout: float = 2.0
    fallback: Fallback | None = None
    heartbeat_resolution: float = DEFAULT_RESOLUTION
    proxy_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(init=False, repr=False)
    cors_policy: CorsPolicy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("ping_interval", "ping_timeout", "request_timeout", "idle_timeout",
                     "upgrade_timeout", "close_timeout"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_payload", "max_queued_bytes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive int")
        try:
            transports = tuple(Transport(name) for name in self.transports)
        except ValueError:
            transports = ()
        if not transports:
            raise ValueError('transports must be a non-empty subset of ("polling", "websocket")')
        object.__setattr__(self, "transports", transports)
        object.__setattr__(self, "path", "/" + self.path.strip("/") + "/")
        networks = tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)
        object.__setattr__(self, "proxy_networks", networks)
        object.__setattr__(
            self, "cors_policy", CorsPolicy.of(self.cors_allowed_origins, self.cors_credentials)
        )
