"""The whole exception hierarchy of trio_rooms, and the disconnect reasons.

Rule: every error trio_rooms raises on purpose is a ``TrioRoomsError`` (or a plain ``TypeError`` /
``ValueError`` for invalid arguments); protocol code raises only ``LocalProtocolError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

__all__ = [
    "AckTimeout",
    "AdapterError",
    "ConnectionRefused",
    "DisconnectReason",
    "Disconnected",
    "LocalProtocolError",
    "NamespaceRejected",
    "ProtocolError",
    "RemoteProtocolError",
    "TrioRoomsError",
    "install_hint",
    "reraise_as_remote",
]


class DisconnectReason(StrEnum):
    """Why a socket was disconnected: the strings of the Socket.IO reference server."""

    CLIENT_NAMESPACE_DISCONNECT = "client namespace disconnect"
    SERVER_NAMESPACE_DISCONNECT = "server namespace disconnect"
    TRANSPORT_CLOSE = "transport close"
    TRANSPORT_ERROR = "transport error"
    PING_TIMEOUT = "ping timeout"
    PARSE_ERROR = "parse error"
    FORCED_CLOSE = "forced close"
    FORCED_SERVER_CLOSE = "forced server close"
    SERVER_SHUTTING_DOWN = "server shutting down"
    SLOW_CONSUMER = "slow consumer"


class TrioRoomsError(Exception):
    """Base class of every error raised by trio_rooms."""


class ProtocolError(TrioRoomsError):
    """A violation of the Engine.IO or Socket.IO protocol (abstract: see the two subclasses)."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise LocalProtocolError or RemoteProtocolError")
        super().__init__(message)
        self.message = message


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids in the current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed or out of place."""


class ConnectionRefused(TrioRoomsError):  # noqa: N818 - the name is Socket.IO's
    """Raised by connection middleware to refuse a namespace connection.

    The client receives a CONNECT_ERROR packet carrying ``{"message": message, "data": data}``.
    """

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class NamespaceRejected(TrioRoomsError):  # noqa: N818
    """Client side: the server answered our CONNECT with CONNECT_ERROR."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class Disconnected(TrioRoomsError):  # noqa: N818
    """The socket (or client) is disconnected; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AckTimeout(TrioRoomsError):  # noqa: N818 - the name is the API
    """An acknowledgement did not arrive in time.

    For a broadcast with acks, ``responses`` holds the answers that did arrive.
    """

    def __init__(self, message: str = "acknowledgement timed out", responses: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.responses: list[Any] = list(responses)


class AdapterError(TrioRoomsError):
    """The adapter's backend failed (for example Redis is unreachable)."""


@contextmanager
def reraise_as_remote() -> Iterator[None]:
    """Re-label the ``LocalProtocolError`` of a decoder's internals as the peer's fault.

    The one place where a decoder's own checks (which raise ``LocalProtocolError``, as the encoders
    do) become ``RemoteProtocolError`` at the decoder's entry point (h11's strategy). Anything else
    escaping a decoder is a bug.
    """
    try:
        yield
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.message) from None


def install_hint(extra: str) -> str:
    """How to install the optional dependencies of ``extra`` (the package is not on PyPI yet)."""
    return (
        f"pip install -e '.[{extra}]' in a checkout of trio_rooms"
        f" (pip install 'trio-rooms[{extra}]' once it is published)"
    )
