"""The two-lane outbound path of one connection (DESIGN.md section 2).

Rule: ``write`` never awaits. The fast lane sends pre-encoded bytes at once with one non-blocking
send when nothing is queued; otherwise the bytes wait in the connection's queue, which a writer task
drains in order, coalescing what is ready into one ``send_all``. The writer task exists only while
something is queued: it is started by the write that queues and returns once the queue is empty, so
an idle connection holds no task, no channel and no event for writing.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from ..stats import Counters
from .pacing import BACKLOG
from .rawsocket import raw_socket

if TYPE_CHECKING:
    from ..protocol.encoded import Encoded

__all__ = ["DEFAULT_MAX_QUEUED_BYTES", "Outbound"]

DEFAULT_MAX_QUEUED_BYTES: Final = 4 * 1024 * 1024
_COALESCE_LIMIT: Final = 256 * 1024


def _ignore() -> None:
    pass


class Outbound:
    """Ordered, bounded writes of pre-encoded bytes to one stream.

    Args:
        stream: the connection's stream; a plain TCP ``trio.SocketStream`` enables the fast lane,
            any other stream (TLS, memory) always goes through the writer task.
        nursery: where the writer task runs while something is queued (the server's nursery). The
            writer is shielded from its cancellation until ``close`` gives it a deadline, so that a
            shutting-down server still flushes what it queued and the close frame.
        max_queued_bytes: bound on the bytes waiting to be written. Past it, a volatile write is
            dropped and any other write closes the connection as a slow consumer.
        on_overflow: called (synchronously, once) when the bound is passed by a non-volatile write
            (the session counts the slow consumer, once per connection).
        stats: the server's counters.
    """

    __slots__ = (
        "_closed",
        "_deadline",
        "_done",
        "_failed",
        "_nursery",
        "_pending",
        "_queued",
        "_sock",
        "_stats",
        "_stream",
        "_writable",
        "_writer_scope",
        "_writing",
        "max_queued_bytes",
        "on_overflow",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        nursery: trio.Nursery,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        on_overflow: Callable[[], None],
        stats: Counters,
        fast_lane: bool = True,
    ) -> None:
        self._stream = stream
        self._sock = raw_socket(stream) if fast_lane else None
        self._nursery = nursery
        self._pending: collections.deque[bytes] | None = None
        self._queued = 0
        self._closed = False
        self._failed = False
        self._writing = False
        self._deadline = math.inf
        self._writer_scope: trio.CancelScope | None = None
        self._writable: trio.Event | None = None  # made by a waiter while over the bound
        self._done: trio.Event | None = None  # made by ``wait_flushed`` while a writer runs
        self._stats = stats
        self.max_queued_bytes = max_queued_bytes
        self.on_overflow = on_overflow

    @property
    def queued_bytes(self) -> int:
        """Bytes accepted but not yet written (queued or in a write in flight)."""
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
        if self._queued >= self.max_queued_bytes:
            if volatile:
                self._stats.volatile_dropped += 1
                return False
            self._closed = True
            self._release_writers()
            self.on_overflow()
            return False
        return self._push(data)

    def _push(self, data: bytes) -> bool:
        """Send ``data`` now (fast lane, nothing queued) or queue it; False when the stream broke."""
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
        self._enqueue(data)
        return True

    def deliver(self, item: Encoded, volatile: bool = False) -> bool:
        """``write(item.frames, volatile)``, the broadcast path: a WebSocket socket's ``deliver`` is
        this method, so that a delivery is one Python call down to the send."""
        data = item.frames
        if self._queued == 0 and not self._closed:
            sock = self._sock
            if sock is not None:
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self._closed = self._failed = True
                    return False
                if sent != len(data):
                    self._enqueue(data[sent:])
                return True
        return self.write(data, volatile)

    def _enqueue(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            pending = self._pending = collections.deque()
        pending.append(data)
        self._queued += len(data)
        if self._queued > self.max_queued_bytes >> 1:
            BACKLOG.behind = True  # broadcasters: let the writer run (engine.pacing)
        if not self._writing:
            self._writing = True
            self._nursery.start_soon(self._write_pending)

    def _release_writers(self) -> None:
        writable = self._writable
        if writable is not None:
            self._writable = None
            writable.set()

    async def wait_writable(self) -> None:
        """Wait until the queued bytes are back under the bound (unicast emits wait here)."""
        while self._queued >= self.max_queued_bytes and not self._closed:
            if self._writable is None:
                self._writable = trio.Event()
            await self._writable.wait()
        await trio.lowlevel.checkpoint()

    def close(self, final: bytes = b"", deadline: float = math.inf) -> None:
        """Send ``final`` (a close frame) after what is queued and stop taking writes; the writer,
        if any, drains until ``deadline`` at the latest. ``final`` passes the bound: it is the last
        frame, and a slow consumer gets it too (within the deadline)."""
        if self._closed and self._failed:
            return
        if final and not self._closed:
            self._push(final)
        self._closed = True
        self.on_overflow = _ignore  # it refers to the session: no cycle once closed
        self._deadline = deadline
        if self._writer_scope is not None:
            self._writer_scope.deadline = deadline
        self._release_writers()

    async def wait_flushed(self) -> None:
        """Wait until nothing is queued any more (written, or dropped by a failed stream)."""
        if self._writing:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        else:
            await trio.lowlevel.checkpoint()

    def abort(self) -> None:
        """Stop writing now: the writer, running or about to start, drops what is queued."""
        self._closed = True
        self._deadline = -math.inf
        if self._writer_scope is not None:
            self._writer_scope.cancel()

    async def _write_pending(self) -> None:
        """The writer task: drain the queue in order, coalescing what is ready, then return."""
        try:
            with trio.CancelScope(shield=True, deadline=self._deadline) as scope:
                self._writer_scope = scope
                pending = self._pending
                while pending:
                    data = pending.popleft()
                    size = len(data)
                    if pending and size < _COALESCE_LIMIT:
                        parts = [data]
                        while pending and size < _COALESCE_LIMIT:
                            more = pending.popleft()
                            parts.append(more)
                            size += len(more)
                        data = b"".join(parts)
                    try:
                        await self._stream.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        self._closed = self._failed = True
                        pending.clear()
                        self._queued = 0
                        break
                    self._queued -= size
                    if self._queued < self.max_queued_bytes:
                        self._release_writers()
        finally:
            # Cancelled (the deadline of close): what is left is dropped with the connection.
            self._writing = False
            self._writer_scope = None
            self._pending = None
            if self._queued:
                self._queued = 0
                self._closed = True
            self._release_writers()
            done = self._done
            if done is not None:
                self._done = None
                done.set()
