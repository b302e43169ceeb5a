"""Encoded packets (both wire forms, built once) and the long-polling outbound buffer.

Rule: a packet is encoded once per broadcast: the WebSocket frames eagerly (most clients), the
long-polling text lazily and cached, so that every polling recipient shares one string.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

import trio

from ..protocol.engineio import RECORD_SEPARATOR
from ..protocol.socketio import Packet, encode
from ..protocol.websocket import binary_frame, text_frame
from ..stats import Counters

__all__ = ["CLOSE_ITEM", "Encoded", "NOOP_ITEM", "PING_ITEM", "PollBuffer", "control"]


class Encoded:
    """Engine.IO packets in both wire forms: one Socket.IO packet with its attachments, one
    control packet, or one binary message.

    Attributes:
        frames: the WebSocket frames (a text frame per text packet, a binary frame per binary one).
        polling: the long-polling payload segment (packets joined by "\x1e", binary as "b" + base64).
    """

    __slots__ = ("_polling", "_segments", "frames")

    def __init__(self, segments: tuple[str | bytes, ...]) -> None:
        self._segments = segments
        self._polling: str | None = None
        frames = b""
        for segment in segments:
            frames += text_frame(segment) if isinstance(segment, str) else binary_frame(segment)
        self.frames = frames

    @classmethod
    def of(cls, packet: Packet) -> Encoded:
        """The Engine.IO MESSAGE(s) carrying Socket.IO ``packet`` and its attachments."""
        text, attachments = encode(packet)
        return cls(("4" + text, *attachments))

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


class PollBuffer:
    """What waits for the next long-polling GET, bounded in bytes like the WebSocket lanes."""

    __slots__ = ("_closed", "_counters", "_drained", "_items", "_ready", "_size", "max_bytes", "on_overflow")

    def __init__(self, *, max_bytes: int, counters: Counters, on_overflow: Callable[[], None]) -> None:
        self._items: list[Encoded] = []
        self._size = 0
        self._ready = trio.Event()
        self._drained = trio.Event()  # set while under the bound
        self._drained.set()
        self._closed = False
        self._counters = counters
        self.max_bytes = max_bytes
        self.on_overflow = on_overflow

    @property
    def queued_bytes(self) -> int:
        return self._size

    def write(self, item: Encoded, *, volatile: bool = False) -> bool:
        """Queue ``item`` for the next GET; apply the slow-consumer policy past the bound."""
        if self._size >= self.max_bytes:
            if volatile:
                self._counters.volatile_dropped += 1
                return False
            self._counters.slow_consumers_closed += 1
            self.on_overflow()
            return False
        self._items.append(item)
        self._size += len(item.frames)
        if self._size >= self.max_bytes and self._drained.is_set():
            self._drained = trio.Event()
        self._ready.set()
        return True

    async def wait_writable(self) -> None:
        """Wait until a GET took what was queued (under the bound again) or the buffer closed."""
        while self._size >= self.max_bytes and not self._closed:
            await self._drained.wait()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """The session ended: release every waiter (a GET may still ``take`` what is left)."""
        self._closed = True
        self._ready.set()
        self._drained.set()

    def wake(self) -> None:
        """Release a waiting GET now (with whatever is queued, or a noop)."""
        self._ready.set()

    async def wait(self) -> None:
        """Wait until something is queued or ``wake`` is called."""
        if not self._items:
            await self._ready.wait()
        else:
            await trio.lowlevel.checkpoint()

    def take(self) -> list[Encoded]:
        """Everything queued, in order; the buffer is empty afterwards."""
        items = self._items
        self._items = []
        self._size = 0
        if not self._closed:
            self._ready = trio.Event()
        self._drained.set()
        return items

    def payload(self) -> str:
        """``take()`` as one long-polling body ("6" when nothing is queued)."""
        items = self.take()
        if not items:
            return "6"
        if len(items) == 1:
            return items[0].polling
        return RECORD_SEPARATOR.join(item.polling for item in items)
