"""Connection state recovery: the setting, and the records an adapter keeps and gives back.

Rule: plain frozen data. The server saves a ``PersistedSession`` when a socket drops for a reason that
allows recovery; an adapter that can recover stores it (``Adapter.persist_session``) and gives it back,
once, as a ``RestoredSession`` with the packets the socket missed (``Adapter.restore_session``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .protocol.socketio import Packet

__all__ = ["ConnectionStateRecovery", "PersistedSession", "RestoredSession"]


@dataclass(frozen=True, slots=True)
class ConnectionStateRecovery:
    """``Server(connection_state_recovery=...)``: how long a dropped socket may come back.

    Attributes:
        max_disconnection_duration: seconds a session (and the packets it may miss) is kept.
        skip_middlewares: skip the middlewares when a recovery succeeds.
        max_stored_packets: the most packets an adapter keeps for recovery.
    """

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True
    max_stored_packets: int = 10_000


@dataclass(frozen=True, slots=True)
class PersistedSession:
    """What a dropped socket leaves behind: its id, private session id, rooms and ``data``."""

    sid: str
    pid: str
    rooms: tuple[str, ...]
    data: Any


@dataclass(frozen=True, slots=True)
class RestoredSession:
    """A session given back, with the EVENT packets missed meanwhile (each one's args ending with its
    offset), oldest first."""

    sid: str
    pid: str
    rooms: tuple[str, ...]
    data: Any
    missed_packets: list[Packet] = field(default_factory=list)
