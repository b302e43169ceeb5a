"""BroadcastOperator: immutable ``to``/``in_``/``except_``/flags, then an operation on the sockets selected.

Rule: an operator only describes *who*; the namespace's adapter does the work, locally or across
servers, so the same calls work with every adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import trio

from ._util import rooms_arg
from .adapter.base import Adapter, RemoteSocket
from .protocol.socketio import event_packet
from .types import BroadcastFlags, BroadcastOptions, Room

__all__ = ["BroadcastOperator"]


class BroadcastOperator:
    """Selects sockets by room, then acts on them. Every modifier returns a new operator.

    Made by ``to``, ``in_``, ``except_``, ``volatile``, ``local`` and ``timeout`` of a namespace, of the
    server (its main namespace) and of a socket (which leaves itself out).
    """

    __slots__ = ("_adapter", "_opts")

    def __init__(
        self,
        adapter: Adapter,
        rooms: frozenset[Room] = frozenset(),
        except_rooms: frozenset[Room] = frozenset(),
        flags: BroadcastFlags | None = None,
    ) -> None:
        """Made by the namespace's (or socket's) broadcast methods.

        Args:
            adapter: the namespace's adapter.
            rooms: target rooms (union); empty means every socket of the namespace.
            except_rooms: rooms whose members are left out (a socket id counts as a room).
            flags: volatile / local / timeout.
        """
        self._adapter = adapter
        self._opts = BroadcastOptions(rooms, except_rooms, flags or BroadcastFlags())

    def _with(self, **changes: Any) -> BroadcastOperator:
        opts = dataclasses.replace(self._opts, **changes)
        return BroadcastOperator(self._adapter, opts.rooms, opts.except_rooms, opts.flags)

    @property
    def options(self) -> BroadcastOptions:
        """The selection this operator describes."""
        return self._opts

    def to(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Also target ``room_or_rooms`` (a str is one room); recipients are the union, each once."""
        return self._with(rooms=self._opts.rooms | rooms_arg(room_or_rooms))

    def in_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Alias of ``to`` (Node's ``in``)."""
        return self.to(room_or_rooms)

    def except_(self, room_or_rooms: str | Iterable[str]) -> BroadcastOperator:
        """Leave out the members of ``room_or_rooms`` (a socket id counts as a room)."""
        return self._with(except_rooms=self._opts.except_rooms | rooms_arg(room_or_rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """The packet may be dropped for a client that cannot take it now (over its queue bound)."""
        return self._with(flags=dataclasses.replace(self._opts.flags, volatile=True))

    @property
    def local(self) -> BroadcastOperator:
        """Act on this server's sockets only (no cluster message)."""
        return self._with(flags=dataclasses.replace(self._opts.flags, local=True))

    def timeout(self, seconds: float) -> BroadcastOperator:
        """The deadline of ``emit_with_ack``, in seconds."""
        if not seconds > 0:
            raise ValueError("timeout must be a positive number of seconds")
        return self._with(flags=dataclasses.replace(self._opts.flags, timeout=float(seconds)))

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to every selected socket, each once."""
        await self._adapter.broadcast(event_packet(self._adapter.nsp.name, event, args), self._opts)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Send ``event`` asking every selected socket for an ack; return the answers.

        Each answer is None, the value, or a tuple, for 0, 1 or 2+ arguments.

        Raises:
            TypeError: no ``.timeout(seconds)`` was set.
            AckTimeout: the timeout passed; ``.responses`` holds the answers received.
        """
        if self._opts.flags.timeout is None:
            raise TypeError("emit_with_ack on a broadcast needs .timeout(seconds) first")
        nsp = self._adapter.nsp
        packet = event_packet(nsp.name, event, args)
        started = trio.current_time()
        responses = await self._adapter.broadcast_with_ack(packet, self._opts)
        if responses:  # the acks all resolved: one round trip, however many answered
            nsp.counters.observe_ack(trio.current_time() - started)
        return responses

    async def fetch_sockets(self) -> list[RemoteSocket]:
        """The selected sockets, local and (with a cluster adapter) remote."""
        return await self._adapter.fetch_sockets(self._opts)

    async def sockets_join(self, room_or_rooms: str | Iterable[str]) -> None:
        """Make the selected sockets join ``room_or_rooms``."""
        await self._adapter.add_sockets(self._opts, rooms_arg(room_or_rooms))

    async def sockets_leave(self, room_or_rooms: str | Iterable[str]) -> None:
        """Make the selected sockets leave ``room_or_rooms``."""
        await self._adapter.del_sockets(self._opts, rooms_arg(room_or_rooms))

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the selected sockets; ``close`` also closes their connections."""
        await self._adapter.disconnect_sockets(self._opts, close)
