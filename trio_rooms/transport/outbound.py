"""The two-lane outbound path of one connection (DESIGN.md section 2).

Rule: ``write`` never awaits. The fast lane sends pre-encoded bytes at once with one non-blocking
send when nothing is queued; otherwise the bytes go onto the connection's memory channel, which one
writer task drains in order, coalescing what is ready into one ``send_all``.
"""

from __future__ import annotations

import math
import socket as _stdlib_socket
from collections.abc import Callable
from typing import Final

import trio

from ..stats import Counters

__all__ = ["Outbound", "DEFAULT_MAX_QUEUED_BYTES"]

DEFAULT_MAX_QUEUED_BYTES: Final = 4 * 1024 * 1024
_COALESCE_LIMIT: Final = 256 * 1024


def _raw_socket(stream: trio.abc.Stream) -> _stdlib_socket.socket | None:
    """The stdlib socket behind a plain trio SocketStream, for the fast lane; None otherwise."""
    if not isinstance(stream, trio.SocketStream):
        return None
    raw = getattr(stream.socket, "_sock", None)
    return raw if isinstance(raw, _stdlib_socket.socket) else None


class Outbound:
    """Ordered, bounded writes of pre-encoded bytes to one stream.

    Args:
        stream: the connection's stream; a plain TCP ``trio.SocketStream`` enables the fast lane,
            any other stream (TLS, memory) uses the channel lane only.
        max_queued_bytes: bound on the bytes waiting in the channel lane. Past it, a volatile write
            is dropped and any other write closes the connection as a slow consumer.
        on_overflow: called (synchronously, once) when the bound is passed by a non-volatile write.
        stats: the server's counters.
    """

    __slots__ = (
        "_closed",
        "_failed",
        "_queued",
        "_receive",
        "_send",
        "_sock",
        "_stats",
        "_stream",
        "_writable",
        "max_queued_bytes",
        "on_overflow",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        on_overflow: Callable[[], None],
        stats: Counters,
        fast_lane: bool = True,
    ) -> None:
        self._stream = stream
        self._sock = _raw_socket(stream) if fast_lane else None
        # The byte bound is ours; the channel itself never blocks a writer.
        self._send, self._receive = trio.open_memory_channel[bytes](math.inf)
        self._queued = 0
        self._closed = False
        self._failed = False
        self._writable = trio.Event()
        self._writable.set()
        self._stats = stats
        self.max_queued_bytes = max_queued_bytes
        self.on_overflow = on_overflow

    @property
    def queued_bytes(self) -> int:
        """Bytes accepted but not yet written (in the channel or in a write in flight)."""
        return self._queued

    @property
    def closed(self) -> bool:
        """True once ``close`` was called or the stream failed: writes are then ignored."""
        return self._closed

    def write(self, data: bytes, volatile: bool = False) -> bool:
        """Send ``data`` in order after everything written before; never awaits.

        Returns True when the bytes were sent or queued, False when they were dropped (closed
        connection, volatile packet over the bound, or the slow-consumer close it triggered).
        """
        if self._closed:
            return False
        if self._queued == 0:
            sock = self._sock
            if sock is not None:
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    # The reader sees the broken connection and closes it with a reason.
                    self._closed = self._failed = True
                    return False
                if sent == len(data):
                    return True
                data = data[sent:]
        elif self._queued >= self.max_queued_bytes:
            if volatile:
                self._stats.volatile_dropped += 1
                return False
            self._closed = True
            self._writable.set()
            self._stats.slow_consumers_closed += 1
            self.on_overflow()
            return False
        self._queued += len(data)
        if self._queued >= self.max_queued_bytes and self._writable.is_set():
            self._writable = trio.Event()
        self._send.send_nowait(data)
        return True

    async def wait_writable(self) -> None:
        """Wait until the queued bytes are back under the bound (unicast emits wait here)."""
        while self._queued >= self.max_queued_bytes and not self._closed:
            await self._writable.wait()
        await trio.lowlevel.checkpoint()

    def close(self, final: bytes = b"") -> None:
        """Queue ``final`` (a close frame) and stop taking writes; the writer drains and returns."""
        if self._failed:
            self._send.close()
            return
        if final:
            self._queued += len(final)
            self._send.send_nowait(final)
        self._closed = True
        self._writable.set()
        self._send.close()

    async def run_writer(self) -> None:
        """The writer task: drain the channel in order until ``close``; coalesce what is ready.

        Cancellation: the stream is then left with whatever was written; the caller closes it.
        """
        receive = self._receive
        async for data in receive:
            parts = [data]
            size = len(data)
            while size < _COALESCE_LIMIT:
                try:
                    more = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                parts.append(more)
                size += len(more)
            try:
                await self._stream.send_all(parts[0] if len(parts) == 1 else b"".join(parts))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._closed = self._failed = True
                self._queued = 0
                self._writable.set()
                return
            self._queued -= size
            if self._queued < self.max_queued_bytes:
                self._writable.set()
