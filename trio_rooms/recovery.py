"""Connection state recovery: its options, and the two records a server and its adapter exchange.

Rule: plain data only. The server saves a ``PersistedSession`` when a socket drops for a reason a
client may come back from, and asks its adapter for a ``RestoredSession`` when a client sends back its
private session id and the offset of the last event it received; the adapter keeps what that needs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Final

from .errors import DisconnectReason

if TYPE_CHECKING:
    from .protocol.socketio import Packet

__all__ = [
    "RECOVERABLE_REASONS",
    "ConnectionStateRecovery",
    "PersistedSession",
    "RestoredSession",
]

DEFAULT_MAX_DISCONNECTION_DURATION: Final = 120.0
DEFAULT_MAX_STORED_PACKETS: Final = 10_000

#: The disconnect reasons after which a socket's session is saved (Node's list): the client did not
#: leave on purpose and may come back. An explicit disconnect (by the client or the server), a parse
#: error or a slow consumer saves nothing.
RECOVERABLE_REASONS: Final = frozenset(
    {
        DisconnectReason.TRANSPORT_ERROR,
        DisconnectReason.TRANSPORT_CLOSE,
        DisconnectReason.FORCED_CLOSE,
        DisconnectReason.PING_TIMEOUT,
        DisconnectReason.SERVER_SHUTTING_DOWN,
        DisconnectReason.FORCED_SERVER_CLOSE,
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionStateRecovery:
    """Connection state recovery options (``Server(connection_state_recovery=...)``).

    A client that drops for a moment and comes back within ``max_disconnection_duration`` gets its
    socket back: the same id, rooms and ``socket.data``, and the broadcasts it missed meanwhile.

    Args:
        max_disconnection_duration: seconds a dropped socket's session, and each stored packet, is
            kept.
        skip_middlewares: skip the namespace's middleware when a recovery succeeds (a failed one
            always runs it).
        max_stored_packets: the most packets a namespace keeps for recovery (the oldest go first);
            a client whose last packet is gone from the store cannot recover.

    Raises:
        ValueError: a duration that is not positive, or a count that is not a positive int.
    """

    max_disconnection_duration: float = DEFAULT_MAX_DISCONNECTION_DURATION
    skip_middlewares: bool = True
    max_stored_packets: int = DEFAULT_MAX_STORED_PACKETS

    def __post_init__(self) -> None:
        duration = self.max_disconnection_duration
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not duration > 0:
            raise ValueError("max_disconnection_duration must be a positive number of seconds")
        count = self.max_stored_packets
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise ValueError("max_stored_packets must be a positive int")


@dataclasses.dataclass(frozen=True, slots=True)
class PersistedSession:
    """What a dropped socket leaves for its recovery.

    Attributes:
        sid: the socket id.
        pid: the private session id (sent to that client only, in the CONNECT reply).
        rooms: its rooms when it dropped, its own room included.
        data: its ``socket.data``.
    """

    sid: str
    pid: str
    rooms: tuple[str, ...]
    data: Any


@dataclasses.dataclass(frozen=True, slots=True)
class RestoredSession:
    """A session an adapter gave back (and forgot: a pid restores once).

    Attributes:
        sid: the socket id.
        pid: the private session id.
        rooms: the rooms the socket joins again.
        data: the socket's ``data``.
        missed_packets: the EVENT packets the client missed, oldest first, each one's arguments ending
            with its offset.
    """

    sid: str
    pid: str
    rooms: tuple[str, ...]
    data: Any
    missed_packets: list[Packet]
