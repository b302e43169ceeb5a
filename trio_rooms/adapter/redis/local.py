"""The local part of a cluster adapter: this server's rooms and deliveries, an ``InMemoryAdapter``.

Rule: adds one operation and overrides nothing: ``deliver_acked``, the ordered write of a packet
that asks for acks, reporting each write not taken (a cluster counts the clients that will answer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

from ...protocol.encoded import Encoded
from ...protocol.socketio import Packet
from ...types import SocketId
from ..memory import InMemoryAdapter

__all__ = ["LocalRooms"]


class LocalRooms(InMemoryAdapter):
    """``InMemoryAdapter`` plus ``deliver_acked``.

    Args:
        namespace: the namespace.
    """

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
        there, ``dropped()`` is called: that client will not answer.

        Cancellation: the targets not reached yet get nothing (their callbacks stay the caller's).
        """
        sockets = self.nsp.sockets

        def not_taken(sid: SocketId) -> None:
            socket = sockets.get(sid)
            if socket is not None and socket.remove_ack_callback(ack_id):
                dropped()

        frames = Encoded.of(dataclasses.replace(packet, ack_id=ack_id))
        await self._write_all(targets, frames, volatile, not_taken)
