"""The outbound path of a WebSocket whose transport sends whole messages with an ``await`` (ASGI): the
queued lane only (DESIGN.md section 2), bounded like ``Outbound``.

Rule: ``deliver`` never awaits: it queues the packet (an ``Encoded``, shared by every recipient of a
broadcast) and wakes the connection's writer, which sends its segments one message each, in order.
The bound, the slow-consumer policy and the counters are ``Outbound``'s: past ``max_queued_bytes`` a
volatile packet is dropped (``volatile_dropped``) and any other closes the connection (``on_overflow``,
counted once by the session). The writer is one task for the WebSocket's life, in the connection's own
nursery (its ASGI call), parked while nothing is queued: an ASGI send is an ``await``, so there is no
fast lane and no task hand-off per delivery beyond one wake-up per burst.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from ..stats import Counters
from .outbound import DEFAULT_MAX_QUEUED_BYTES
from .pacing import BACKLOG

if TYPE_CHECKING:
    from ..protocol.encoded import Encoded

__all__ = ["MessageLane", "SendMessage"]

SendMessage = Callable[[str | bytes], Awaitable[None]]
"""Sends one WebSocket message (text or binary) on the transport; may raise when it is gone."""
SendClose = Callable[[int], Awaitable[None]]
"""Sends the close frame with a code."""


def _ignore() -> None:
    pass


class MessageLane:
    """Ordered, bounded writes of pre-encoded packets to a message transport (a ``WebSocketSink``).

    Args:
        send: sends one message (the ASGI ``websocket.send``).
        send_close: sends the close frame (the ASGI ``websocket.close``).
        max_queued_bytes: the slow-consumer bound, counted as ``Outbound`` counts it (the bytes of
            the packets' WebSocket frames).
        on_overflow: called (synchronously, once) when the bound is passed by a non-volatile packet.
        stats: the server's counters.

    ``run`` is the writer task: start it in the connection's nursery before the first ``deliver``
    is due to go out, and end it with ``close`` (in a ``finally``): it is shielded from cancellation
    until then, so that a connection cancelled by a shutdown still flushes its last packets and its
    close frame within the deadline ``close`` gives.
    """

    __slots__ = (
        "_close_code",
        "_closed",
        "_closing",
        "_deadline",
        "_done",
        "_failed",
        "_parked",
        "_pending",
        "_queued",
        "_send",
        "_send_close",
        "_stats",
        "_writable",
        "_writer_scope",
        "max_queued_bytes",
        "on_overflow",
    )

    def __init__(
        self,
        send: SendMessage,
        send_close: SendClose,
        *,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        on_overflow: Callable[[], None],
        stats: Counters,
    ) -> None:
        self._send = send
        self._send_close = send_close
        self._pending: collections.deque[Encoded] = collections.deque()
        self._queued = 0
        self._closed = False  # takes no more packets
        self._closing = False  # ``close`` was called: the writer drains, sends the close frame, ends
        self._failed = False  # the transport refused a send
        self._close_code: int | None = None
        self._deadline = math.inf
        self._parked: trio.lowlevel.Task | None = None  # the writer, while it waits for packets
        self._writer_scope: trio.CancelScope | None = None
        self._writable: trio.Event | None = None  # made by a waiter while over the bound
        self._done = trio.Event()
        self._stats = stats
        self.max_queued_bytes = max_queued_bytes
        self.on_overflow = on_overflow

    @property
    def queued_bytes(self) -> int:
        """Bytes accepted but not yet sent (queued, or in a send in flight)."""
        return self._queued

    @property
    def closed(self) -> bool:
        """True once the lane takes no more packets (closed, overflowed, or the transport failed)."""
        return self._closed

    def deliver(self, item: Encoded, volatile: bool = False) -> bool:
        """Queue ``item`` after everything delivered before; never awaits.

        Returns True when queued, False when dropped (closed lane, volatile packet over the bound, or
        the slow-consumer close it triggered).
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
        self._pending.append(item)
        self._queued += len(item.frames)
        if self._queued > self.max_queued_bytes >> 1:
            BACKLOG.behind = True  # broadcasters: let the writer run (engine.pacing)
        if self._parked is not None:
            self._wake()
        return True

    def _wake(self) -> None:
        """Reschedule the parked writer (one wake-up per burst: it drains everything then)."""
        task, self._parked = self._parked, None
        assert task is not None
        trio.lowlevel.reschedule(task)

    async def wait_writable(self) -> None:
        """Wait until the queued bytes are back under the bound (unicast emits wait here)."""
        while self._queued >= self.max_queued_bytes and not self._closed:
            if self._writable is None:
                self._writable = trio.Event()
            await self._writable.wait()
        await trio.lowlevel.checkpoint()

    def _release_writers(self) -> None:
        writable = self._writable
        if writable is not None:
            self._writable = None
            writable.set()

    def close(self, code: int | None, deadline: float = math.inf) -> None:
        """Take no more packets; the writer sends what is queued, then the close frame with ``code``
        (None: none, the peer closed already), and ends, at ``deadline`` at the latest."""
        self._closed = True
        if not self._closing:
            self._closing = True
            self._close_code = code
        self.on_overflow = _ignore  # it refers to the session: no cycle once closed
        self._deadline = deadline
        if self._writer_scope is not None:
            self._writer_scope.deadline = deadline
        self._release_writers()
        if self._parked is not None:
            self._wake()

    async def wait_closed(self) -> None:
        """Wait until the writer ended (after ``close``: drained and closed, or cut by the deadline)."""
        await self._done.wait()

    def abort(self) -> None:
        """Stop now: the writer drops what is queued."""
        self._closed = self._closing = True
        self._close_code = None
        self._deadline = -math.inf
        if self._writer_scope is not None:
            self._writer_scope.cancel()

    async def _park(self) -> None:
        """Wait until ``deliver`` or ``close`` reschedules this task (or the writer scope is cancelled)."""
        self._parked = trio.lowlevel.current_task()

        def abort(_raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._parked = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task: send what is queued, in order, one message per segment; park while
        nothing is; after ``close``, send the close frame and return."""
        pending = self._pending
        send = self._send
        try:
            with trio.CancelScope(shield=True, deadline=self._deadline) as scope:
                self._writer_scope = scope
                task_status.started()
                while True:
                    while pending:
                        item = pending[0]
                        for segment in item.segments:
                            await send(segment)
                        pending.popleft()
                        self._queued -= len(item.frames)
                        if self._writable is not None and self._queued < self.max_queued_bytes:
                            self._release_writers()
                    if self._closing:
                        break
                    await self._park()
                if self._close_code is not None:
                    await self._send_close(self._close_code)
        except Exception:
            # The transport refused a send (the peer is gone): what is left is dropped with it.
            self._failed = True
        finally:
            self._writer_scope = None
            self._closed = True
            self.on_overflow = _ignore
            pending.clear()
            self._queued = 0
            self._release_writers()
            self._done.set()
