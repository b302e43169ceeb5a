"""What a cluster wire format offers its adapter: the channels of one namespace, and model messages
to and from bytes (``classic.py`` and ``sharded.py`` are the two formats of Node's Redis adapter).

Rule: sans-IO. Outbound: a model message in, ``(channel, bytes)`` out. Inbound: ``(channel, bytes)``
in, an ``Envelope`` out, None when the message is not for this namespace, or ``MessageError``.
"""

from __future__ import annotations

import secrets
import string
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from ...types import BroadcastOptions, Room, SocketId
from ..socketio import Packet
from .messages import MessageError, handshake_from_json
from .model import Broadcast, Command, Envelope, Reply, SocketInfo

__all__ = [
    "SUBSCRIPTION_MODES",
    "ExpectedReply",
    "Wire",
    "client_count",
    "glob_escape",
    "nothing_expected",
    "random_id",
    "socket_info_from_wire",
    "socket_info_to_wire",
    "sockets_from_wire",
]

SUBSCRIPTION_MODES: Final = ("static", "dynamic", "dynamic-private")
_ID_ALPHABET: Final = string.ascii_letters + string.digits

ExpectedReply: TypeAlias = Callable[[str], type[Reply] | None]
"""What this server's request ``request_id`` expects as a reply (None: not a request of ours)."""


def nothing_expected(request_id: str) -> type[Reply] | None:
    """The ``ExpectedReply`` of a server with no request waiting."""
    return None


def random_id(length: int) -> str:
    """A random id of ``length`` letters and digits (as Node's classic adapter makes its uid)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, for a PSUBSCRIBE pattern."""
    return "".join("\\" + char if char in "\\*?[]" else char for char in text)


def client_count(value: Any) -> int:
    """A reply's ``clientCount``. Raises: MessageError (not a count)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MessageError("clientCount is not a count")
    return value


def socket_info_to_wire(info: SocketInfo) -> dict[str, Any]:
    """A fetched socket as Node describes it: ``{id, handshake, rooms, data}``."""
    return {
        "id": info.id,
        "handshake": info.handshake.to_json(),
        "rooms": sorted(info.rooms),
        "data": info.data,
    }


def socket_info_from_wire(value: Any) -> SocketInfo:
    """A fetched socket from a peer (missing or mistyped rooms, data and handshake fields get neutral
    values). Raises: MessageError (not an object with a string id)."""
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise MessageError("a fetched socket is an object with a string id")
    rooms = value.get("rooms")
    data = value.get("data")
    return SocketInfo(
        SocketId(value["id"]),
        handshake_from_json(value.get("handshake")),
        frozenset(str(room) for room in rooms) if isinstance(rooms, list) else frozenset(),
        data if isinstance(data, dict) else {},
    )


def sockets_from_wire(value: Any) -> tuple[tuple[SocketInfo, ...], int]:
    """The socket descriptions of a fetch answer, and how many entries were not one.

    Raises:
        MessageError: ``value`` is not a list.
    """
    if not isinstance(value, list):
        raise MessageError("sockets are a list")
    found: list[SocketInfo] = []
    for item in value:
        try:
            found.append(socket_info_from_wire(item))
        except MessageError:
            continue
    return tuple(found), len(value) - len(found)


class Wire(ABC):
    """The channels of one namespace and the encoding of its messages, in one format.

    Attributes:
        uid: this server's id in the cluster (the format's own kind of id).
        nsp: the namespace.
        count_channel: the channel whose subscribers are the servers of the namespace.
        follows_rooms: whether rooms have channels of their own, subscribed while they exist here.
        has_all_rooms: whether the format has ``AllRooms`` (the classic one only).
    """

    uid: str
    nsp: str
    count_channel: str
    follows_rooms: bool = False
    has_all_rooms: bool = False

    @abstractmethod
    def subscriptions(self) -> list[str]:
        """Channels subscribed for the adapter's whole life."""

    def patterns(self) -> list[str]:
        """Patterns subscribed for the adapter's whole life (none unless the format says)."""
        return []

    def room_channel(self, room: Room) -> str | None:
        """The channel to subscribe to while ``room`` exists here, or None (the default)."""
        return None

    @abstractmethod
    def new_request_id(self) -> str:
        """A fresh request id, of the format's kind."""

    @abstractmethod
    def encode(self, command: Command) -> tuple[str, bytes]:
        """``command``'s channel and bytes.

        Raises:
            ValueError: the format has no such message.
        """

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> tuple[str, bytes]:
        """Shorthand for ``encode(Broadcast(packet, opts))``."""
        return self.encode(Broadcast(packet, opts))

    @abstractmethod
    def encode_reply(self, reply: Reply, to: str | None) -> tuple[str, bytes]:
        """``reply``'s channel and bytes, for the server ``to`` (the requester's uid, when known).

        Raises:
            ValueError: the format has no such reply (or must know ``to`` and does not).
        """

    @abstractmethod
    def decode(
        self, channel: bytes, data: bytes, expected: ExpectedReply = nothing_expected
    ) -> Envelope | None:
        """The message, or None when it is not for this namespace (another channel or namespace, or
        an untyped answer to a request that is not ours).

        Args:
            channel: the channel it came on.
            data: its bytes.
            expected: the reply each of our pending requests expects (the classic format's answers
                to SOCKETS, ALL_ROOMS, REMOTE_FETCH and the single-socket requests say no type).

        Raises:
            MessageError: malformed.
        """
