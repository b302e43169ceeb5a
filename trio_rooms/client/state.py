"""The client's connection state and its disconnect reasons, explicit (in the spirit of h11's ``_state.py``).

Rule: the state moves only along ``TRANSITIONS`` (another move is a bug: ``LocalProtocolError``);
CLOSED is final, and a move out of it is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum, auto
from typing import Any, Final

from ..errors import LocalProtocolError

__all__ = [
    "FINAL_REASONS",
    "TRANSITIONS",
    "ClientDisconnectReason",
    "ClientState",
    "ConnectionState",
    "RecoveryState",
]


class ClientDisconnectReason(StrEnum):
    """Why the client lost its namespace or its Engine.IO session: socket.io-client's strings.

    A ``str``: the ``"disconnect"`` handler receives one, and it equals the plain string
    (``reason == "ping timeout"``).
    """

    IO_SERVER_DISCONNECT = "io server disconnect"
    """The server disconnected the namespace with a DISCONNECT packet; final, no reconnection."""
    IO_CLIENT_DISCONNECT = "io client disconnect"
    """The application disconnected (``client.disconnect()``, or the end of the ``async with``
    block); final."""
    PING_TIMEOUT = "ping timeout"
    """No ping from the server within pingInterval + pingTimeout."""
    TRANSPORT_CLOSE = "transport close"
    """The server closed the connection (or sent an Engine.IO CLOSE)."""
    TRANSPORT_ERROR = "transport error"
    """The connection failed (refused, reset, an HTTP error, a deadline)."""
    PARSE_ERROR = "parse error"
    """The server sent something malformed or out of place."""


#: The reasons after which the client does not reconnect.
FINAL_REASONS: Final = frozenset(
    {ClientDisconnectReason.IO_SERVER_DISCONNECT, ClientDisconnectReason.IO_CLIENT_DISCONNECT}
)


class ClientState(Enum):
    """Where the client is in its life."""

    CONNECTING = auto()
    """The first connection: attempts until the namespace is connected; emits are buffered."""
    FLUSHING = auto()
    """The namespace is connected; the emits buffered meanwhile are being sent (new ones queue behind)."""
    CONNECTED = auto()
    """Connected: emits go straight to the Engine.IO session."""
    RECONNECTING = auto()
    """The connection was lost: waiting for the backoff or attempting again; emits are buffered."""
    CLOSED = auto()
    """Closed for good (``ConnectionState.reason`` says why): emits raise ``Disconnected``."""


_S = ClientState

#: The moves each state allows.
TRANSITIONS: Final[Mapping[ClientState, frozenset[ClientState]]] = {
    _S.CONNECTING: frozenset({_S.FLUSHING, _S.CLOSED}),
    _S.FLUSHING: frozenset({_S.CONNECTED, _S.RECONNECTING, _S.CLOSED}),
    _S.CONNECTED: frozenset({_S.RECONNECTING, _S.CLOSED}),
    _S.RECONNECTING: frozenset({_S.FLUSHING, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}


class ConnectionState:
    """The client's state, and why it last lost (or closed) its connection.

    Attributes:
        state: The current ``ClientState``.
        reason: Empty until a loss; then its ``ClientDisconnectReason``; once CLOSED, why (a reason or
            a message such as ``"could not connect: ..."``).
    """

    __slots__ = ("reason", "state")

    def __init__(self) -> None:
        self.state = ClientState.CONNECTING
        self.reason = ""

    def __repr__(self) -> str:
        return f"<ConnectionState {self.state.name} reason={self.reason!r}>"

    @property
    def connected(self) -> bool:
        """True while the namespace is connected (FLUSHING or CONNECTED)."""
        return self.state is ClientState.FLUSHING or self.state is ClientState.CONNECTED

    @property
    def closed(self) -> bool:
        """True once CLOSED."""
        return self.state is ClientState.CLOSED

    def move_to(self, state: ClientState, reason: str | None = None) -> None:
        """Move to ``state``; a ``reason`` replaces the current one. Nothing happens once CLOSED.

        Raises:
            LocalProtocolError: ``TRANSITIONS`` does not allow the move (a bug of the client).
        """
        if self.state is ClientState.CLOSED:
            return
        if state not in TRANSITIONS[self.state]:
            raise LocalProtocolError(f"client state: no move from {self.state.name} to {state.name}")
        self.state = state
        if reason is not None:
            self.reason = reason


class RecoveryState:
    """Connection state recovery, the client's side: the server's private session id (pid) and the
    offset of the last event received, sent back in the CONNECT payload of a reconnection.

    Attributes:
        pid: the pid of the server's last CONNECT answer (None: the server has recovery off).
        offset: the offset of the last event received (None: none yet).
        recovered: whether the last CONNECT answer gave the same pid back (the same socket).
    """

    __slots__ = ("offset", "pid", "recovered")

    def __init__(self) -> None:
        self.pid: str | None = None
        self.offset: str | None = None
        self.recovered = False

    def payload(self, auth: dict[str, Any] | None) -> dict[str, Any] | None:
        """The CONNECT payload: ``auth``, with the pid and the offset first once there is a pid."""
        if self.pid is None:
            return auth
        recovery: dict[str, Any] = {"pid": self.pid}
        if self.offset is not None:
            recovery["offset"] = self.offset
        return {**recovery, **(auth or {})}

    def connected(self, pid: str | None) -> None:
        """A CONNECT answer with ``pid`` (None without recovery)."""
        self.recovered = pid is not None and pid == self.pid
        self.pid = pid
        if not self.recovered:
            self.offset = None

    def strip(self, args: list[Any]) -> None:
        """Take an event's offset (its last argument, a str) out of ``args`` (an event the server sent
        without an ack id), once the server gave a pid."""
        if self.pid is not None and args and isinstance(args[-1], str):
            self.offset = args.pop()
