"""InMemoryAdapter: the rooms of one namespace in one process.

Rule: ``rooms`` (room -> ids) and ``sids`` (id -> rooms) are kept as exact inverses, so that a
disconnect costs the socket's own rooms, never a scan; a broadcast encodes once and costs its
recipients only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Set
from time import perf_counter, thread_time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import trio

from ..engine.pacing import BACKLOG
from ..errors import AckTimeout
from ..protocol.encoded import Encoded
from ..protocol.socketio import PacketType
from ..types import BroadcastOptions, Room, SocketId
from .base import Adapter, NamespaceView, RemoteSocket
from .sessions import RecoveryStore

if TYPE_CHECKING:
    from ..protocol.socketio import Packet
    from ..recovery import PersistedSession, RestoredSession

__all__ = ["InMemoryAdapter"]

#: A broadcast to more recipients than this yields to the event loop after each such chunk: about
#: 3-5 ms of sends here (one delivery costs 10-20 us, mostly the send system call), so that a huge
#: room holds the loop no longer than that at a time (each message another connection reads waits
#: for one such chunk).
YIELD_EVERY: Final = 256
#: Broadcasts that are not huge do not each yield to the event loop: a task may broadcast for this
#: long (seconds of ``time.perf_counter``, confirmed in the thread's CPU time) between two yields. A
#: burst of broadcasts (a handler emitting in a loop) then runs as one piece, as Node's synchronous
#: emits do, so that a long-polling GET woken by its first packet answers with the whole burst instead
#: of one packet; and no broadcasting holds the loop longer than this (every broadcast still checks for
#: cancellation). The slice is one of CPU time: when the machine is busy and the process waits for a
#: core, wall time passes without work, and a slice of wall time would cut bursts into pieces there.
YIELD_SLICE: Final = 0.005
_EMPTY: Final[frozenset[SocketId]] = frozenset()
_last_yield = 0.0
_last_yield_cpu = 0.0


async def _pace() -> None:
    """The checkpoint of a broadcast: a cancellation point always, a schedule point once per
    ``YIELD_SLICE`` of broadcasting (process-wide), or at once when a writer is behind
    (``engine.pacing``)."""
    if not BACKLOG.behind and (
        perf_counter() - _last_yield < YIELD_SLICE or thread_time() - _last_yield_cpu < YIELD_SLICE
    ):  # the second clock (a system call) is read only once a slice of wall time has passed
        await trio.lowlevel.checkpoint_if_cancelled()
        return
    await trio.lowlevel.checkpoint()
    _mark_yield()


def _mark_yield() -> None:
    global _last_yield, _last_yield_cpu
    _last_yield = perf_counter()
    _last_yield_cpu = thread_time()
    BACKLOG.behind = False


class _AckCollector:
    """The answers of one broadcast with acks."""

    __slots__ = ("done", "pending", "responses")

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.responses: list[Any] = []
        self.done = trio.Event()
        if pending == 0:
            self.done.set()

    def answer(self, value: Any) -> None:
        self.responses.append(value)
        self.gone()

    def gone(self) -> None:
        self.pending -= 1
        if self.pending <= 0:
            self.done.set()


class InMemoryAdapter(Adapter):
    """Rooms in memory, for one server process (the default adapter).

    With connection state recovery on (``namespace.recovery``), it also keeps what recovery needs in
    a ``RecoveryStore``: every broadcast EVENT without ack id and not volatile, numbered, for
    ``max_disconnection_duration`` (at most ``max_stored_packets`` of them), and the sessions of the
    sockets that dropped. With recovery off it keeps nothing and a broadcast does nothing more.
    """

    def __init__(self, namespace: NamespaceView) -> None:
        super().__init__(namespace)
        self._counters = namespace.counters
        self._rooms: dict[Room, set[SocketId]] = {}
        self._sids: dict[SocketId, set[Room]] = {}
        # Held by a broadcast that yields mid-way, so that a later broadcast cannot overtake it
        # at a recipient it has not reached yet (per-recipient order stays emission order).
        self._order = trio.Lock()
        # The recipients of the deliveries holding or waiting for the order lock.
        self._unfinished: list[set[SocketId]] = []
        recovery = namespace.recovery
        self._store = RecoveryStore(recovery) if recovery is not None else None

    # -- membership -----------------------------------------------------------------------------
    @property
    def rooms(self) -> Mapping[Room, Set[SocketId]]:
        return MappingProxyType(self._rooms)

    @property
    def sids(self) -> Mapping[SocketId, Set[Room]]:
        return MappingProxyType(self._sids)

    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        own = self._sids.get(sid)
        for room in rooms:
            if own is None:
                own = self._sids[sid] = set()
            elif room in own:
                continue
            own.add(room)
            members = self._rooms.get(room)
            if members is None:
                members = self._rooms[room] = set()
                self.emit_room_event("create-room", room)
            members.add(sid)
            self.emit_room_event("join-room", room, sid)

    def remove(self, sid: SocketId, room: Room) -> None:
        own = self._sids.get(sid)
        if own is None or room not in own:
            return
        own.discard(room)
        if not own:
            del self._sids[sid]
        self._leave(sid, room)

    def remove_all(self, sid: SocketId) -> None:
        own = self._sids.pop(sid, None)
        if not own:
            return
        for room in own:
            self._leave(sid, room)

    def _leave(self, sid: SocketId, room: Room) -> None:
        members = self._rooms.get(room)
        if members is None:
            return
        members.discard(sid)
        self.emit_room_event("leave-room", room, sid)
        if not members:
            del self._rooms[room]
            self.emit_room_event("delete-room", room)

    def local_targets(self, opts: BroadcastOptions) -> Collection[SocketId]:
        rooms = self._rooms
        ids: Collection[SocketId]
        if not opts.rooms:
            ids = self.nsp.sockets.keys()
        elif len(opts.rooms) == 1:
            (room,) = opts.rooms
            ids = rooms.get(room, _EMPTY)
        else:
            union: set[SocketId] = set()
            for room in opts.rooms:
                members = rooms.get(room)
                if members:
                    union |= members
            ids = union
        if opts.except_rooms:
            excluded: set[SocketId] = set()
            for room in opts.except_rooms:
                members = rooms.get(room)
                if members:
                    excluded |= members
            if excluded:
                ids = [sid for sid in ids if sid not in excluded]
        return ids

    # -- operations -----------------------------------------------------------------------------
    async def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        store = self._store
        if (
            store is not None
            and packet.type is PacketType.EVENT
            and packet.ack_id is None
            and not opts.flags.volatile
        ):
            packet = store.record(packet, opts)
        await self.deliver(Encoded.of(packet, keep_packet=True), opts)

    async def deliver(self, frames: Encoded, opts: BroadcastOptions) -> None:
        """Write the pre-encoded packet to every local socket that ``opts`` selects, each once."""
        await self._write_all(self.local_targets(opts), frames, opts.flags.volatile, None)

    async def _write_all(
        self,
        targets: Collection[SocketId],
        frames: Encoded,
        volatile: bool,
        dropped: Callable[[SocketId], None] | None,
    ) -> None:
        """Write ``frames`` to each of ``targets``; ``dropped(sid)`` for each write not taken.

        A delivery to more than ``YIELD_EVERY`` sockets yields between chunks. Per-recipient order
        is emission order: while such a delivery is under way (or waiting), a later delivery that
        shares a recipient with it waits its turn on the order lock (FIFO), and one that shares
        none goes out at once, so a huge room never holds up an unrelated one.
        Cancellation: the recipients not reached yet get nothing.
        """
        sockets = self.nsp.sockets
        missed = 0  # the writes not taken: deliveries are counted once, after the loop
        if len(targets) <= YIELD_EVERY and (
            not self._unfinished or all(pending.isdisjoint(targets) for pending in self._unfinished)
        ):
            for sid in targets:
                if not sockets[sid].deliver(frames, volatile):
                    missed += 1
                    if dropped is not None:
                        dropped(sid)
            self._counters.delivered(len(targets) - missed, len(frames.frames))
            await _pace()
            return
        snapshot = list(targets)
        reached = 0  # the recipients tried so far (a cancelled delivery counts what it reached)
        mine = set(snapshot)
        self._unfinished.append(mine)
        try:
            async with self._order:
                for start in range(0, len(snapshot), YIELD_EVERY):
                    if start:
                        await trio.lowlevel.checkpoint()
                        _mark_yield()
                    for sid in snapshot[start : start + YIELD_EVERY]:
                        socket = sockets.get(sid)
                        if socket is None or not socket.deliver(frames, volatile):
                            missed += 1
                            if dropped is not None:
                                dropped(sid)
                    reached = min(start + YIELD_EVERY, len(snapshot))
        finally:
            self._unfinished = [pending for pending in self._unfinished if pending is not mine]
            self._counters.delivered(reached - missed, len(frames.frames))

    async def deliver_acked(
        self,
        targets: Collection[SocketId],
        packet: Packet,
        ack_id: int,
        volatile: bool,
        dropped: Callable[[], None],
    ) -> None:
        """Write ``packet`` with ``ack_id`` to ``targets``, in order with this server's other deliveries.

        The targets' ack callbacks are registered by the caller. For each write not taken (a volatile
        packet dropped, a slow consumer closed), that socket's callback is removed and, if it was still
        there, ``dropped()`` is called: that client will not answer (a socket already gone was counted
        by its teardown, which calls every ``gone``).

        Cancellation: the targets not reached yet get nothing (their callbacks stay the caller's).
        """
        sockets = self.nsp.sockets

        def not_taken(sid: SocketId) -> None:
            socket = sockets.get(sid)
            if socket is not None and socket.remove_ack_callback(ack_id):
                dropped()

        frames = Encoded.of(dataclasses.replace(packet, ack_id=ack_id), keep_packet=True)
        await self._write_all(targets, frames, volatile, not_taken)

    async def broadcast_with_ack(self, packet: Packet, opts: BroadcastOptions) -> list[Any]:
        timeout = opts.flags.timeout
        if timeout is None:
            raise TypeError("a broadcast with acks needs a timeout: use .timeout(seconds)")
        targets = list(self.local_targets(opts))
        ack_id = self.nsp.next_ack_id()
        collector = _AckCollector(len(targets))
        sockets = self.nsp.sockets
        for sid in targets:
            sockets[sid].add_ack_callback(ack_id, collector.answer, collector.gone)
        try:
            with trio.move_on_after(timeout):
                await self.deliver_acked(targets, packet, ack_id, opts.flags.volatile, collector.gone)
                await collector.done.wait()
        finally:
            for sid in targets:
                socket = sockets.get(sid)
                if socket is not None:
                    socket.remove_ack_callback(ack_id)
        if collector.pending > 0:
            raise AckTimeout(f"{collector.pending} of {len(targets)} acks missing", collector.responses)
        return collector.responses

    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = list(rooms)
        sockets = self.nsp.sockets
        for sid in list(self.local_targets(opts)):
            sockets[sid].join(rooms)
        await trio.lowlevel.checkpoint()

    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[Room]) -> None:
        rooms = list(rooms)
        sockets = self.nsp.sockets
        for sid in list(self.local_targets(opts)):
            for room in rooms:
                sockets[sid].leave(room)
        await trio.lowlevel.checkpoint()

    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        sockets = self.nsp.sockets
        for sid in list(self.local_targets(opts)):
            socket = sockets.get(sid)
            if socket is not None:
                await socket.disconnect(close)
        await trio.lowlevel.checkpoint()

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[RemoteSocket]:
        sockets = self.nsp.sockets
        found = [RemoteSocket.of_local(sockets[sid], self) for sid in self.local_targets(opts)]
        await trio.lowlevel.checkpoint()
        return found

    async def server_side_emit(
        self, event: str, args: list[Any], *, timeout: float | None = None
    ) -> list[Any]:
        # One server: there is nobody else to tell.
        await trio.lowlevel.checkpoint()
        return []

    async def server_count(self) -> int:
        await trio.lowlevel.checkpoint()
        return 1

    # -- connection state recovery --------------------------------------------------------------------
    async def persist_session(self, session: PersistedSession) -> None:
        if self._store is not None:
            self._store.persist(session)
        await trio.lowlevel.checkpoint()

    async def restore_session(self, pid: str, offset: str) -> RestoredSession | None:
        # The checkpoint comes first: the caller joins the restored rooms with no checkpoint after
        # this returns, so no broadcast falls between the missed packets and the rooms.
        await trio.lowlevel.checkpoint()
        if self._store is None:
            return None
        return self._store.restore(pid, offset)
