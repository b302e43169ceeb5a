"""What a tool that watches the Engine.IO server sees (the Admin UI's instrumentation, or any like it):
the session events ``session_open``, ``upgrade`` and ``session_close``, and the traffic meter.

Rule: plain functions and plain integers, called or counted where the event happens. With no observer
the server pays one truth test per session opened; with no meter a session's writes go straight to its
transport, so the broadcast path does no per-recipient work for either.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ..protocol.encoded import Encoded

if TYPE_CHECKING:
    from .session import Session

__all__ = ["SESSION_EVENTS", "SessionHook", "SessionObservers", "TrafficMeter"]

logger = logging.getLogger("trio_rooms")

SessionHook: TypeAlias = Callable[..., Any]
"""``def hook(session)`` for ``session_open`` and ``upgrade``; ``def hook(session, reason)`` for
``session_close`` (``reason`` a ``DisconnectReason``, a str)."""

SESSION_EVENTS: Final = frozenset({"session_open", "upgrade", "session_close"})


class TrafficMeter:
    """Running totals of the Engine.IO MESSAGE packets of every metered session (never reset; a reader
    takes differences). ``bytes_*`` counts each packet's data (a text packet's UTF-8 bytes after its
    type character, a binary packet's bytes), as Node's ``packet`` and ``packetCreate`` events carry.

    Attributes:
        packets_in: messages received.
        bytes_in: their bytes.
        packets_out: messages written (a Socket.IO packet with attachments is one per part).
        bytes_out: their bytes.
    """

    __slots__ = ("bytes_in", "bytes_out", "packets_in", "packets_out")

    def __init__(self) -> None:
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0

    def count_in(self, message: str | bytes) -> None:
        """One message received."""
        self.packets_in += 1
        self.bytes_in += len(message.encode()) if isinstance(message, str) else len(message)

    def count_out(self, item: Encoded) -> None:
        """``item`` was written to one session."""
        self.packets_out += len(item.segments)
        self.bytes_out += item.payload_size

    def totals(self) -> dict[str, int]:
        """The four totals by the names of the Admin UI's aggregated events."""
        return {
            "packetsIn": self.packets_in,
            "packetsOut": self.packets_out,
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
        }


class SessionObservers:
    """The registered session hooks of one Engine.IO server, in registration order.

    A hook's error is logged, never raised into the session's path.
    """

    __slots__ = ("_close", "_open", "_upgrade")

    def __init__(self) -> None:
        self._open: list[SessionHook] = []
        self._upgrade: list[SessionHook] = []
        self._close: list[SessionHook] = []

    def __bool__(self) -> bool:
        return bool(self._open or self._upgrade or self._close)

    def add(self, event: str, hook: SessionHook) -> None:
        """Register ``hook`` for ``event`` (one of ``SESSION_EVENTS``).

        Raises:
            ValueError: an unknown event.
            TypeError: ``hook`` is not a plain function (it runs where the session changes, which
                never awaits).
        """
        if event not in SESSION_EVENTS:
            raise ValueError(f"unknown Engine.IO session event {event!r}")
        if not callable(hook) or inspect.iscoroutinefunction(hook):
            raise TypeError(f"an Engine.IO {event!r} hook is a plain function, got {hook!r}")
        {"session_open": self._open, "upgrade": self._upgrade, "session_close": self._close}[event].append(
            hook
        )

    def opened(self, session: Session) -> None:
        """``session`` was opened and registered: call the ``session_open`` hooks, and arrange for the
        others to be called on its upgrade and its close."""
        if self._upgrade:
            session.on_upgrade = self.upgraded
        if self._close:
            session.on_close(lambda: self._closed(session))
        for hook in self._open:
            _call(hook, "session_open", session)

    def upgraded(self, session: Session) -> None:
        """``session`` moved from long-polling to WebSocket."""
        for hook in self._upgrade:
            _call(hook, "upgrade", session)

    def _closed(self, session: Session) -> None:
        for hook in self._close:
            _call(hook, "session_close", session, session.reason)


def _call(hook: SessionHook, event: str, *args: Any) -> None:
    try:
        hook(*args)
    except Exception:
        logger.exception("Engine.IO %r hook %r failed", event, hook)
