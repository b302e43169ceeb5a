"""The bottom of the house: small shared values that every layer may use (it imports nothing above).

Rule: plain data only: names for ids and rooms, the transports, a socket's handshake, who a broadcast
reaches. No behaviour that needs another module of trio_rooms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType, TypeAlias, TypeVar

__all__ = [
    "BroadcastFlags",
    "BroadcastOptions",
    "Handshake",
    "Room",
    "RoomsView",
    "SocketId",
    "Transport",
    "js_date_string",
]

SocketId = NewType("SocketId", str)
"""A socket's id: random, per namespace (also the name of the socket's own room)."""

Room: TypeAlias = str
"""A room name."""

_T = TypeVar("_T")


class RoomsView(Set[Room]):
    """A live, read-only view of the rooms ``rooms()`` returns each time it is read (a socket's
    ``rooms``). The set operators (``-``, ``&``, ``|``, ``^``) return a plain ``frozenset``."""

    __slots__ = ("_rooms",)

    def __init__(self, rooms: Callable[[], Set[Room]]) -> None:
        self._rooms = rooms

    @classmethod
    def _from_iterable(cls, items: Iterable[_T], /) -> frozenset[_T]:
        """What the set operators build their result with (``collections.abc.Set``'s hook)."""
        return frozenset(items)

    def __contains__(self, room: object) -> bool:
        return room in self._rooms()

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms()))

    def __len__(self) -> int:
        return len(self._rooms())

    def __repr__(self) -> str:
        return f"{{{', '.join(sorted(map(repr, self._rooms())))}}}"


class Transport(StrEnum):
    """The Engine.IO transports, with their wire names (the ``transport`` query parameter)."""

    POLLING = "polling"
    WEBSOCKET = "websocket"


def js_date_string(epoch: float) -> str:
    """The UTC time as JavaScript's ``Date#toString`` writes it on a UTC machine."""
    return time.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", time.gmtime(epoch))


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the client sent when it connected (read by attribute), with the fields of Node's
    ``socket.handshake``.

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


@dataclass(frozen=True, slots=True)
class BroadcastFlags:
    """Flags of one broadcast: ``volatile`` (may be dropped), ``local`` (this server only), ``timeout``."""

    volatile: bool = False
    local: bool = False
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class BroadcastOptions:
    """Who a broadcast reaches: members of any of ``rooms`` (everyone when empty), minus members
    of any of ``except_rooms`` (a socket id counts as a room)."""

    rooms: frozenset[Room] = frozenset()
    except_rooms: frozenset[Room] = frozenset()
    flags: BroadcastFlags = field(default_factory=BroadcastFlags)
