"""RecoveryStore: what connection state recovery keeps in memory for one namespace of one server.

Rule: bounded on time and on count, and cleaned as it is used (no timer task): each packet recorded
drops the packets past ``max_disconnection_duration`` or past ``max_stored_packets``, each session saved
or restored drops the sessions past their duration. A restore costs the packets stored since the
client's offset (found by arithmetic, never by a scan) and removes the session, so a private session
id restores once. An offset is good while every packet after it is still stored.
"""

from __future__ import annotations

import secrets
from typing import Final, NamedTuple

import trio

from ..protocol.socketio import Packet
from ..recovery import ConnectionStateRecovery, PersistedSession, RestoredSession
from ..types import BroadcastOptions

__all__ = ["RecoveryStore"]

#: The longest offset a client may send back that can be one of ours: the store's prefix, a dot, and
#: a sequence number in hexadecimal (anything longer is not looked at).
MAX_OFFSET_LENGTH: Final = 32
#: The dead head of the packet list is cut off once it is this long and half the list.
_COMPACT_AT: Final = 1024
_HEX: Final = "0123456789abcdef"


class _Stored(NamedTuple):
    emitted_at: float
    opts: BroadcastOptions
    packet: Packet


class _Saved(NamedTuple):
    session: PersistedSession
    disconnected_at: float


class RecoveryStore:
    """The stored packets and the saved sessions of one namespace (the in-memory adapter's).

    Offsets are ``<prefix>.<sequence number in hex>``: the prefix is random per store, so an offset
    from another namespace, another server or an earlier process is never taken for one of ours.

    Args:
        options: the server's recovery options.
    """

    __slots__ = ("_count", "_duration", "_first_seq", "_head", "_packets", "_prefix", "_sessions")

    def __init__(self, options: ConnectionStateRecovery) -> None:
        self._duration = float(options.max_disconnection_duration)
        self._count = options.max_stored_packets
        self._prefix = secrets.token_hex(4)
        # _packets[_head:] are stored, oldest first; _packets[_head + k] has the sequence number
        # _first_seq + k.
        self._packets: list[_Stored | None] = []
        self._head = 0
        self._first_seq = 0
        self._sessions: dict[str, _Saved] = {}

    def __len__(self) -> int:
        """How many packets are stored."""
        return len(self._packets) - self._head

    @property
    def session_count(self) -> int:
        """How many sessions are saved (some may have expired since the last clean-up)."""
        return len(self._sessions)

    # -- packets ----------------------------------------------------------------------------------
    def record(self, packet: Packet, opts: BroadcastOptions) -> Packet:
        """Store ``packet`` (an EVENT without ack id, not volatile) and return it with its offset
        appended as its last argument: the packet to send."""
        now = trio.current_time()
        self._expire_packets(now, room=1)
        seq = self._first_seq + len(self)
        numbered = Packet(packet.type, packet.nsp, [*packet.data, f"{self._prefix}.{seq:x}"])
        self._packets.append(_Stored(now, opts, numbered))
        return numbered

    def _expire_packets(self, now: float, room: int = 0) -> None:
        """Drop the packets past their time, and the oldest ones until ``room`` more fit."""
        packets = self._packets
        threshold = now - self._duration
        head = self._head
        end = len(packets)
        while head < end:
            stored = packets[head]
            if stored is not None and stored.emitted_at >= threshold and end - head + room <= self._count:
                break
            packets[head] = None
            head += 1
        self._first_seq += head - self._head
        self._head = head
        if head >= _COMPACT_AT and head * 2 >= end:
            del packets[:head]
            self._head = 0

    def _after(self, offset: str) -> int | None:
        """The list index of the first packet after the one ``offset`` names, when every packet
        after it is still stored (that one itself may be gone: it is not sent again)."""
        if len(offset) > MAX_OFFSET_LENGTH:
            return None
        prefix, dot, seq_text = offset.partition(".")
        if not dot or prefix != self._prefix or not seq_text or seq_text.strip(_HEX):
            return None
        position = int(seq_text, 16) - self._first_seq
        if not -1 <= position < len(self):
            return None
        return self._head + position + 1

    # -- sessions ---------------------------------------------------------------------------------
    def persist(self, session: PersistedSession) -> None:
        """Save ``session`` for ``max_disconnection_duration`` seconds."""
        now = trio.current_time()
        self._expire_sessions(now)
        self._sessions.pop(session.pid, None)  # re-inserted last: the dict stays in time order
        self._sessions[session.pid] = _Saved(session, now)

    def _expire_sessions(self, now: float) -> None:
        threshold = now - self._duration
        sessions = self._sessions
        expired: list[str] = []
        for pid, saved in sessions.items():
            if saved.disconnected_at >= threshold:
                break
            expired.append(pid)
        for pid in expired:
            del sessions[pid]

    def restore(self, pid: str, offset: str) -> RestoredSession | None:
        """The session ``pid`` with the packets for it stored after ``offset``; None when the session
        is unknown or expired, or a packet after the offset is no longer stored (the offset's own
        packet need not be: a client of a quiet room recovers however old its last event is). The
        session is removed either way."""
        now = trio.current_time()
        self._expire_sessions(now)
        self._expire_packets(now)
        saved = self._sessions.pop(pid, None)
        if saved is None:
            return None
        start = self._after(offset)
        if start is None:
            return None
        session = saved.session
        rooms = frozenset(session.rooms)
        missed: list[Packet] = []
        packets = self._packets
        for k in range(start, len(packets)):
            stored = packets[k]
            assert stored is not None
            opts = stored.opts
            if (not opts.rooms or not rooms.isdisjoint(opts.rooms)) and rooms.isdisjoint(opts.except_rooms):
                missed.append(stored.packet)
        return RestoredSession(session.sid, session.pid, session.rooms, session.data, missed)
