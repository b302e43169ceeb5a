"""A packet encoded once, in both wire forms: the broadcast's unit of work.

Rule: pure code (sans IO). The WebSocket frames are built eagerly (most clients), the long-polling
text lazily and cached, so that every recipient of a broadcast shares the same bytes and string.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Final

from .engineio import RECORD_SEPARATOR
from .socketio import Packet, encode
from .websocket import binary_frame, text_frame

__all__ = ["CLOSE_ITEM", "Encoded", "NOOP_ITEM", "PING_ITEM", "control", "polling_payload"]


class Encoded:
    """Engine.IO packets in both wire forms: one Socket.IO packet with its attachments, one
    control packet, or one binary message.

    Attributes:
        frames: the WebSocket frames (a text frame per text packet, a binary frame per binary one).
        polling: the long-polling payload segment (packets joined by "\x1e", binary as "b" + base64).
        packet: the Socket.IO packet of a broadcast (``of(..., keep_packet=True)``), else None: what
            a recipient's outgoing listeners are told about, read only by a socket that has some.
    """

    __slots__ = ("_polling", "_segments", "_size", "frames", "packet")

    def __init__(self, segments: tuple[str | bytes, ...], packet: Packet | None = None) -> None:
        self._segments = segments
        self.packet = packet
        self._polling: str | None = None
        self._size = -1
        frames = b""
        for segment in segments:
            frames += text_frame(segment) if isinstance(segment, str) else binary_frame(segment)
        self.frames = frames

    @classmethod
    def of(cls, packet: Packet, *, keep_packet: bool = False) -> Encoded:
        """The Engine.IO MESSAGE(s) carrying Socket.IO ``packet`` and its attachments; with
        ``keep_packet`` (a broadcast's, shared by its recipients), ``packet`` stays readable."""
        text, attachments = encode(packet)
        return cls(("4" + text, *attachments), packet if keep_packet else None)

    @property
    def segments(self) -> tuple[str | bytes, ...]:
        """The Engine.IO packets, each as one WebSocket message's content (text or binary): what a
        transport that frames messages itself (ASGI) sends, one message each."""
        return self._segments

    @property
    def payload_size(self) -> int:
        """The bytes of the Engine.IO packets' data (a text packet's UTF-8 bytes after its type
        character, a binary packet's bytes): what a traffic meter counts, computed once."""
        size = self._size
        if size < 0:
            size = self._size = sum(
                len(s.encode()) - 1 if isinstance(s, str) else len(s) for s in self._segments
            )
        return size

    @property
    def polling(self) -> str:
        segment = self._polling
        if segment is None:
            parts = [
                s if isinstance(s, str) else "b" + base64.b64encode(s).decode("ascii") for s in self._segments
            ]
            segment = self._polling = RECORD_SEPARATOR.join(parts)
        return segment

    def __repr__(self) -> str:
        return f"<Encoded {self._segments!r:.60}>"


def control(text: str) -> Encoded:
    """An Engine.IO packet given by its text ("2", "3probe", "6", "1", "4hello")."""
    return Encoded((text,))


PING_ITEM: Final = control("2")
NOOP_ITEM: Final = control("6")
CLOSE_ITEM: Final = control("1")


def polling_payload(items: Sequence[Encoded]) -> str:
    """One long-polling body of ``items`` (a noop, "6", when there is none)."""
    if not items:
        return NOOP_ITEM.polling
    if len(items) == 1:
        return items[0].polling
    return RECORD_SEPARATOR.join(item.polling for item in items)
