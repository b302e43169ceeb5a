"""What the client holds for later: the emits buffered while it (re)connects, and the acks it awaits.

Rule: both are bounded; a lost connection fails only the acks of packets that were sent (a buffered
packet's ack still waits for it to go out).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import trio

from ..errors import Disconnected
from ..protocol.socketio import MAX_ACK_ID, ack_value

__all__ = ["Ack", "Outbox", "PendingAcks"]

#: One Socket.IO packet as the Engine.IO session sends it: its text, then its binary attachments.
Messages = list[str | bytes]


@dataclass(slots=True)
class Ack:
    """One awaited acknowledgement: ``done`` is set with ``value`` or with ``error``."""

    done: trio.Event = field(default_factory=trio.Event)
    value: Any = None
    error: Disconnected | None = None
    sent: bool = False


class PendingAcks:
    """The acks the client awaits, by ack id, and the slots that bound how many wait at once.

    Attributes:
        slots: Held by each ``emit_with_ack`` while it waits (``max_pending`` of them).
    """

    __slots__ = ("_acks", "_next_id", "slots")

    def __init__(self, max_pending: int) -> None:
        self._acks: dict[int, Ack] = {}
        self._next_id = 0
        self.slots = trio.Semaphore(max_pending)

    def next_id(self) -> int:
        """A new ack id (they wrap around below ``MAX_ACK_ID``, as JavaScript holds them exactly)."""
        ack_id = self._next_id
        self._next_id = (ack_id + 1) % (MAX_ACK_ID + 1)
        return ack_id

    def add(self, ack_id: int, ack: Ack) -> None:
        """Await ``ack`` under ``ack_id``."""
        self._acks[ack_id] = ack

    def forget(self, ack_id: int) -> None:
        """Stop awaiting ``ack_id`` (a late answer is then ignored)."""
        self._acks.pop(ack_id, None)

    def mark_sent(self, ack_id: int | None) -> None:
        """The packet of ``ack_id`` went out: a loss of the connection now fails its ack."""
        if ack_id is not None and (ack := self._acks.get(ack_id)) is not None:
            ack.sent = True

    def resolve(self, ack_id: int, args: list[Any]) -> bool:
        """The server's ACK: wake the waiter with the value of ``args``; False if none was waiting."""
        ack = self._acks.get(ack_id)
        if ack is None or ack.done.is_set():
            return False
        ack.value = ack_value(args)
        ack.done.set()
        return True

    def fail(self, reason: str, *, sent_only: bool) -> None:
        """Fail waiting acks with ``Disconnected(reason)``; with ``sent_only``, only those of sent packets."""
        for ack in self._acks.values():
            if (ack.sent or not sent_only) and not ack.done.is_set():
                ack.error = Disconnected(reason)
                ack.done.set()


class Outbox:
    """The packets emitted while not connected, sent in order once connected again (``size`` at most).

    Attributes:
        size: How many packets it holds at most.
    """

    __slots__ = ("_items", "size")

    def __init__(self, size: int) -> None:
        self._items: deque[tuple[Messages, int | None, list[Any] | None]] = deque()
        self.size = size

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        """True when it holds ``size`` packets."""
        return len(self._items) >= self.size

    def append(self, messages: Messages, ack_id: int | None, data: list[Any] | None = None) -> None:
        """Hold one packet (with the ack id it awaits, if any, and the event and arguments to tell
        the outgoing listeners when it is sent) behind the others."""
        self._items.append((messages, ack_id, data))

    def popleft(self) -> tuple[Messages, int | None, list[Any] | None]:
        """The oldest packet, its ack id and its event and arguments (see ``append``).

        Raises:
            IndexError: it is empty.
        """
        return self._items.popleft()

    def drop(self, ack_id: int) -> None:
        """Drop the packet that awaits ``ack_id``, if it is still here."""
        for item in self._items:
            if item[1] == ack_id:
                self._items.remove(item)
                return

    def clear(self) -> None:
        """Drop every packet."""
        self._items.clear()
