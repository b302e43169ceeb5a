"""The adapter of a parent namespace: every operation fans out to the children's adapters."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Set
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..errors import AckTimeout
from ..types import BroadcastOptions, Room, SocketId
from .base import Adapter, NamespaceView

if TYPE_CHECKING:
    from ..protocol.socketio import Packet
    from .base import RemoteSocket

__all__ = ["ChildView", "FamilyView", "ParentAdapter"]


class ChildView(Protocol):
    """What a parent's adapter uses of a child namespace."""

    @property
    def name(self) -> str: ...

    @property
    def adapter(self) -> Adapter: ...


class FamilyView(NamespaceView, Protocol):
    """A parent namespace, as its adapter sees it: its children, by name."""

    @property
    def children(self) -> Mapping[str, ChildView]: ...


class ParentAdapter(Adapter):
    """Holds no sockets itself; acts on each child namespace of its parent in turn."""

    def __init__(self, namespace: FamilyView) -> None:
        super().__init__(namespace)
        self._family = namespace

    def _children(self) -> list[ChildView]:
        return list(self._family.children.values())

    @property
    def rooms(self) -> Mapping[Room, Set[SocketId]]:
        return {}

    @property
    def sids(self) -> Mapping[SocketId, Set[Room]]:
        return {}

    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        raise TypeError("a parent namespace has no sockets of its own")

    def remove(self, sid: SocketId, room: Room) -> None:
        raise TypeError("a parent namespace has no sockets of its own")

    def remove_all(self, sid: SocketId) -> None:
        raise TypeError("a parent namespace has no sockets of its own")

    def local_targets(self, opts: BroadcastOptions) -> Collection[SocketId]:
        return ()

    async def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        for child in self._children():
            await child.adapter.broadcast(dataclasses.replace(packet, nsp=child.name), opts)
        await trio.lowlevel.checkpoint()

    async def broadcast_with_ack(self, packet: Packet, opts: BroadcastOptions) -> list[Any]:
        responses: list[Any] = []
        missing = False

        async def one(child: ChildView) -> None:
            nonlocal missing
            try:
                responses.extend(
                    await child.adapter.broadcast_with_ack(dataclasses.replace(packet, nsp=child.name), opts)
                )
            except AckTimeout as exc:
                responses.extend(exc.responses)
                missing = True

        async with trio.open_nursery() as nursery:
            for child in self._children():
                nursery.start_soon(one, child)
        if missing:
            raise AckTimeout("some acks are missing", responses)
        return responses

    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = list(rooms)
        for child in self._children():
            await child.adapter.add_sockets(opts, rooms)
        await trio.lowlevel.checkpoint()

    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = list(rooms)
        for child in self._children():
            await child.adapter.del_sockets(opts, rooms)
        await trio.lowlevel.checkpoint()

    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for child in self._children():
            await child.adapter.disconnect_sockets(opts, close)
        await trio.lowlevel.checkpoint()

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[RemoteSocket]:
        found: list[RemoteSocket] = []
        for child in self._children():
            found.extend(await child.adapter.fetch_sockets(opts))
        await trio.lowlevel.checkpoint()
        return found

    async def server_side_emit(
        self, event: str, args: list[Any], *, timeout: float | None = None
    ) -> list[Any]:
        raise TypeError("server_side_emit is not supported on a parent namespace; use a child")

    async def server_count(self) -> int:
        children = self._children()
        return await children[0].adapter.server_count() if children else 1
