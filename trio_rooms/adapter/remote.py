"""RemoteSocket: a socket found by ``fetch_sockets``, on this server or another, as a snapshot plus
actions that go through the adapter (so they reach the socket wherever it is connected).

Rule: a snapshot never refers to the live socket: its actions are adapter operations targeting the
socket's own room.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Set
from typing import TYPE_CHECKING, Any

from .._util import rooms_arg
from ..protocol.socketio import event_packet
from ..types import BroadcastOptions, Handshake, Room, SocketId

if TYPE_CHECKING:
    from .base import Adapter, SocketView

__all__ = ["RemoteSocket"]


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteSocket:
    """A socket found by ``fetch_sockets``, on this server or another: a snapshot plus actions.

    Attributes:
        id: the socket id.
        handshake: its handshake.
        rooms: its rooms when fetched.
        data: its ``data`` dict when fetched (a copy for a remote socket).
    """

    id: SocketId
    handshake: Handshake
    rooms: Set[Room]
    data: dict[str, Any]
    _adapter: Adapter = dataclasses.field(repr=False, compare=False)

    @classmethod
    def of_local(cls, socket: SocketView, adapter: Adapter) -> RemoteSocket:
        """The RemoteSocket of a socket of this server."""
        return cls(socket.id, socket.handshake, frozenset(socket.rooms), socket.data, adapter)

    def _self(self) -> BroadcastOptions:
        return BroadcastOptions(frozenset((self.id,)))

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to this socket, wherever it is connected."""
        await self._adapter.broadcast(event_packet(self._adapter.nsp.name, event, args), self._self())

    async def join(self, room_or_rooms: str | Iterable[str]) -> None:
        """Make this socket join ``room_or_rooms``."""
        await self._adapter.add_sockets(self._self(), rooms_arg(room_or_rooms))

    async def leave(self, room: str) -> None:
        """Make this socket leave ``room``."""
        await self._adapter.del_sockets(self._self(), rooms_arg(room))

    async def disconnect(self, close: bool = False) -> None:
        """Disconnect this socket."""
        await self._adapter.disconnect_sockets(self._self(), close)
