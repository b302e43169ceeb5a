"""The one vocabulary of the messages servers exchange: a frozen class per kind, whatever the format.

Rule: sans-IO and format-free. A field holds what the message means (an event and its arguments, a
count), never a format's spelling of it; ``classic.py`` and ``sharded.py`` turn these into Node's bytes
and back, and an adapter dispatches on them with ``match``.

Commands ask the other servers to act (or, for heartbeats, tell them about the sender); replies
answer a command that carries a ``request_id``. Which replies a command gets: ``FetchSockets`` ->
``FetchSocketsResponse``; ``SocketIds`` -> ``SocketIdsResponse``; ``AllRooms`` -> ``AllRoomsResponse``;
``SocketJoin``/``SocketLeave``/``SocketDisconnect`` -> ``SocketActionDone``; ``ServerSideEmit`` ->
``ServerSideEmitResponse``; ``BroadcastWithAck`` -> one ``BroadcastClientCount`` per server, then one
``BroadcastAck`` per client answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ...types import BroadcastOptions, Handshake, Room, SocketId
from ..socketio import Packet

__all__ = [
    "AdapterClose",
    "AllRooms",
    "AllRoomsResponse",
    "Broadcast",
    "BroadcastAck",
    "BroadcastClientCount",
    "BroadcastWithAck",
    "Command",
    "DisconnectSockets",
    "Envelope",
    "FetchSockets",
    "FetchSocketsResponse",
    "Heartbeat",
    "Message",
    "Reply",
    "ServerSideEmit",
    "ServerSideEmitResponse",
    "SocketActionDone",
    "SocketDisconnect",
    "SocketIds",
    "SocketIdsResponse",
    "SocketInfo",
    "SocketJoin",
    "SocketLeave",
    "SocketsJoin",
    "SocketsLeave",
]


# -- commands: operations on the selected sockets --------------------------------------------------
@dataclass(frozen=True, slots=True)
class Broadcast:
    """Deliver ``packet`` (an EVENT) to the sockets ``opts`` selects; no answer."""

    packet: Packet
    opts: BroadcastOptions


@dataclass(frozen=True, slots=True)
class BroadcastWithAck:
    """Deliver ``packet`` asking each client for an ack: each server answers its client count, then
    each client's answer."""

    request_id: str
    packet: Packet
    opts: BroadcastOptions


@dataclass(frozen=True, slots=True)
class SocketsJoin:
    """Make the selected sockets join ``rooms``; no answer."""

    opts: BroadcastOptions
    rooms: tuple[Room, ...]


@dataclass(frozen=True, slots=True)
class SocketsLeave:
    """Make the selected sockets leave ``rooms``; no answer."""

    opts: BroadcastOptions
    rooms: tuple[Room, ...]


@dataclass(frozen=True, slots=True)
class DisconnectSockets:
    """Disconnect the selected sockets (``close``: their whole connection); no answer."""

    opts: BroadcastOptions
    close: bool = False


# -- commands: one socket by id (the classic format's remoteJoin/remoteLeave/remoteDisconnect) --------
@dataclass(frozen=True, slots=True)
class SocketJoin:
    """Make socket ``sid`` join ``room``; its server answers ``SocketActionDone`` when ``request_id``."""

    sid: SocketId
    room: Room
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class SocketLeave:
    """Make socket ``sid`` leave ``room``; its server answers ``SocketActionDone`` when ``request_id``."""

    sid: SocketId
    room: Room
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class SocketDisconnect:
    """Disconnect socket ``sid``; its server answers ``SocketActionDone`` when ``request_id``."""

    sid: SocketId
    close: bool = False
    request_id: str | None = None


# -- commands: questions -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FetchSockets:
    """Describe the selected sockets (answered by ``FetchSocketsResponse``)."""

    request_id: str
    opts: BroadcastOptions


@dataclass(frozen=True, slots=True)
class SocketIds:
    """The ids of the members of ``rooms`` (everyone when empty): the classic format's SOCKETS."""

    request_id: str
    rooms: frozenset[Room] = frozenset()


@dataclass(frozen=True, slots=True)
class AllRooms:
    """Every room of the namespace (classic format only)."""

    request_id: str


@dataclass(frozen=True, slots=True)
class ServerSideEmit:
    """Run the handlers of ``event`` on the other servers; with ``request_id``, each answers its
    handler's return value."""

    event: str
    args: tuple[Any, ...] = ()
    request_id: str | None = None


# -- commands: about the sender (the cluster adapter model with heartbeats) ----------------------------
@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The sender is alive (``initial``: it has just started and asks the others to say so too)."""

    initial: bool = False


@dataclass(frozen=True, slots=True)
class AdapterClose:
    """The sender is leaving the cluster."""


# -- replies -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SocketInfo:
    """A socket as a fetch describes it: Node's ``{id, handshake, rooms, data}``."""

    id: SocketId
    handshake: Handshake
    rooms: frozenset[Room]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FetchSocketsResponse:
    """One server's answer to ``FetchSockets``.

    Attributes:
        request_id: the request answered.
        sockets: the sockets described.
        skipped: how many entries of the answer were not socket descriptions (left out).
    """

    request_id: str
    sockets: tuple[SocketInfo, ...] = ()
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class SocketIdsResponse:
    """One server's answer to ``SocketIds``."""

    request_id: str
    sockets: tuple[SocketId, ...] = ()


@dataclass(frozen=True, slots=True)
class AllRoomsResponse:
    """One server's answer to ``AllRooms``."""

    request_id: str
    rooms: tuple[Room, ...] = ()


@dataclass(frozen=True, slots=True)
class SocketActionDone:
    """The answer to ``SocketJoin``, ``SocketLeave`` or ``SocketDisconnect``: done."""

    request_id: str


@dataclass(frozen=True, slots=True)
class ServerSideEmitResponse:
    """One server's answer to ``ServerSideEmit``: its handler's return value."""

    request_id: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class BroadcastClientCount:
    """How many clients of one server a ``BroadcastWithAck`` reached (each will answer)."""

    request_id: str
    count: int


@dataclass(frozen=True, slots=True)
class BroadcastAck:
    """One client's answer to a ``BroadcastWithAck``."""

    request_id: str
    value: Any = None


Command: TypeAlias = (
    Broadcast
    | BroadcastWithAck
    | SocketsJoin
    | SocketsLeave
    | DisconnectSockets
    | SocketJoin
    | SocketLeave
    | SocketDisconnect
    | FetchSockets
    | SocketIds
    | AllRooms
    | ServerSideEmit
    | Heartbeat
    | AdapterClose
)
"""A message that asks the other servers to act, or tells them about the sender."""

Reply: TypeAlias = (
    FetchSocketsResponse
    | SocketIdsResponse
    | AllRoomsResponse
    | SocketActionDone
    | ServerSideEmitResponse
    | BroadcastClientCount
    | BroadcastAck
)
"""A message that answers a command's ``request_id``."""

Message: TypeAlias = Command | Reply
"""Any message between servers."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message received from another server.

    Attributes:
        uid: the sender's server id; None when the format does not say (the classic format's replies).
        message: the message.
    """

    uid: str | None
    message: Message
