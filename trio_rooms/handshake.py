"""The handshake details of a socket, with the fields of Node's ``socket.handshake``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Handshake", "js_date_string"]


def js_date_string(epoch: float) -> str:
    """The UTC time as JavaScript's ``Date#toString`` writes it on a UTC machine."""
    return time.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", time.gmtime(epoch))


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the client sent when it connected (read by attribute).

    Attributes:
        headers: the HTTP request headers, names in lower case.
        time: the connection time, as JavaScript's ``Date#toString``.
        address: the client's IP address.
        xdomain: whether the request carried an Origin header.
        secure: whether the connection is encrypted (TLS).
        issued: the connection time in milliseconds since the epoch.
        url: the request target (path and query).
        query: the query parameters.
        auth: the CONNECT packet's payload, ``{}`` when absent.
    """

    headers: dict[str, str]
    time: str
    address: str
    xdomain: bool
    secure: bool
    issued: int
    url: str
    query: dict[str, str]
    auth: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The handshake as a JSON-able dict (for cluster messages and logs)."""
        return {
            "headers": self.headers,
            "time": self.time,
            "address": self.address,
            "xdomain": self.xdomain,
            "secure": self.secure,
            "issued": self.issued,
            "url": self.url,
            "query": self.query,
            "auth": self.auth,
        }
