"""The long-polling outbound buffer: what waits for the next GET, bounded like the WebSocket lanes.

Rule: writes never await; a GET takes everything queued at once, as one payload of pre-encoded texts.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from time import thread_time
from typing import Final

import trio

from ..protocol.encoded import Encoded, polling_payload
from ..stats import Counters

__all__ = ["WATCH_AFTER", "HeldGets", "PollBuffer"]

WATCH_AFTER: Final = 0.1
"""Seconds a held GET waits for packets before it also watches its connection."""
SETTLE_LIMIT: Final = 0.05
"""Seconds of CPU time (the thread's) a woken GET may wait while its burst of packets keeps growing
(``PollBuffer.settle``): a bound for a broadcaster that never stops (``SETTLE_ITEMS`` usually ends it
first); a burst that stops ends the wait within two scheduler batches. CPU time, because on a busy
machine wall time passes while the process waits for a core, and would cut bursts into pieces."""
SETTLE_ITEMS: Final = 64
"""Packets after which a woken GET answers at once, burst or not."""


def _ignore() -> None:
    pass


class PollBuffer:
    """What waits for the next long-polling GET, bounded in bytes like the WebSocket lanes.

    Its events exist only while someone waits (a GET, or a writer over the bound), so that a
    WebSocket session, which never polls, pays for none.
    """

    __slots__ = (
        "_closed",
        "_counters",
        "_drained",
        "_held",
        "_items",
        "_ready",
        "_size",
        "_waiter",
        "_watch",
        "_woken",
        "max_bytes",
        "on_overflow",
    )

    def __init__(
        self,
        *,
        max_bytes: int,
        counters: Counters,
        on_overflow: Callable[[], None],
        held: HeldGets | None = None,
    ) -> None:
        self._held = held
        self._watch = False  # the sweep of ``held`` asks the waiting GET to watch its connection
        self._items: list[Encoded] = []
        self._size = 0
        self._ready: trio.Event | None = None  # a GET waits on it
        self._woken = False  # ``wake`` was called since the last ``take``
        self._waiter: trio.CancelScope | None = None  # a GET in ``wait_or_readable``
        self._drained: trio.Event | None = None  # a writer over the bound waits on it
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
            self.on_overflow()
            return False
        self._items.append(item)
        self._size += len(item.frames)
        self._release_reader()
        return True

    def _release_reader(self) -> None:
        ready = self._ready
        if ready is not None:
            self._ready = None
            ready.set()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.cancel()

    def _release_writers(self) -> None:
        drained = self._drained
        if drained is not None:
            self._drained = None
            drained.set()

    async def wait_writable(self) -> None:
        """Wait until a GET took what was queued (under the bound again) or the buffer closed."""
        while self._size >= self.max_bytes and not self._closed:
            if self._drained is None:
                self._drained = trio.Event()
            await self._drained.wait()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """The session ended: release every waiter (a GET may still ``take`` what is left)."""
        self._closed = True
        self._release_reader()
        self._release_writers()
        self.on_overflow = _ignore  # it refers to the session: no cycle once closed

    def wake(self) -> None:
        """Release a waiting GET now (with whatever is queued, or a noop)."""
        self._woken = True
        self._release_reader()

    def watch_connection(self) -> None:
        """Ask the GET waiting in its first phase to watch its connection too (``HeldGets``)."""
        self._watch = True
        self._release_reader()

    async def wait(self) -> None:
        """Wait until something is queued, ``wake`` is called or the buffer closes."""
        if self._items or self._woken or self._closed:
            await trio.lowlevel.checkpoint()
            return
        if self._ready is None:
            self._ready = trio.Event()
        await self._ready.wait()

    async def wait_or_readable(self, sock: socket.socket) -> bool:
        """Like ``wait``, but also return (False) when ``sock``, the GET's connection, becomes
        readable: the client went away or sent more. One task, no watcher. True when there is
        something to answer with.

        Two phases: first the GET waits for packets only (a write wakes it for about a microsecond
        and a half); once it has waited ``held``'s ``watch_after`` seconds, it also watches its
        connection (registered with epoll: a write then ends the wait by cancelling it, ten times
        dearer). Under load GETs are answered within the first phase; an idle one (a client that
        may abort it) is watched.
        """
        if self._items or self._woken or self._closed:
            await trio.lowlevel.checkpoint()
            return True
        held = self._held
        if held is not None:
            held.add(self)
            try:
                await self.wait()
            finally:
                held.discard(self)
            if self._items or self._woken or self._closed:
                self._watch = False
                return True
            self._watch = False  # asked to watch the connection: phase two
        with trio.CancelScope() as scope:
            self._waiter = scope
            try:
                await trio.lowlevel.wait_readable(sock)
            finally:
                self._waiter = None
        return scope.cancelled_caught or bool(self._items or self._woken or self._closed)

    async def settle(self, limit: float = SETTLE_LIMIT) -> None:
        """Let a burst finish before its packets are answered: wait one scheduler batch at a time
        while packets keep arriving, for at most ``limit`` seconds (each batch a checkpoint; a burst
        that stops, ``SETTLE_ITEMS`` packets, a close or a wake end it at once; ``limit`` is in the
        thread's CPU time, read once per batch). A handler that
        broadcasts in a loop yields once per ``adapter.memory.YIELD_SLICE``; without this the GETs it
        woke would each carry one slice's worth of its burst.

        A burst has stopped after two batches in a row without a new packet, not one: trio runs the
        tasks of a batch in a random order, so in a batch where this GET runs before the
        broadcaster it sees nothing new although the burst goes on (with one batch, a GET ended its
        wait early half of the times, and carried half a burst).
        """
        until = thread_time() + limit
        quiet = 0
        while len(self._items) < SETTLE_ITEMS:
            count = len(self._items)
            await trio.lowlevel.checkpoint()
            if self._closed or self._woken or thread_time() >= until:
                return
            if len(self._items) != count:
                quiet = 0
            elif quiet:
                return
            else:
                quiet = 1

    def take(self) -> list[Encoded]:
        """Everything queued, in order; the buffer is empty afterwards."""
        items = self._items
        self._items = []
        self._size = 0
        self._woken = False
        self._release_writers()
        return items

    def payload(self) -> str:
        """``take()`` as one long-polling body ("6" when nothing is queued)."""
        return polling_payload(self.take())


class HeldGets:
    """The long-polling GETs of a server that wait for packets without watching their connection
    (the first phase of ``PollBuffer.wait_or_readable``); a sweep every ``watch_after`` seconds moves
    those that have waited that long to the second phase, so that a client aborting a GET held for a
    while is noticed at once, while GETs answered quickly never touch epoll.

    Args:
        watch_after: seconds a GET waits before it watches its connection too.
    """

    def __init__(self, watch_after: float = WATCH_AFTER) -> None:
        self.watch_after = watch_after
        self._waiting: dict[PollBuffer, float] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, buffer: PollBuffer) -> None:
        """``buffer``'s GET starts waiting."""
        self._waiting[buffer] = trio.current_time()

    def discard(self, buffer: PollBuffer) -> None:
        """``buffer``'s GET stopped waiting."""
        self._waiting.pop(buffer, None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sweep until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self.watch_after)
            limit = trio.current_time() - self.watch_after
            for buffer, since in list(self._waiting.items()):
                if since <= limit:
                    self._waiting.pop(buffer, None)
                    buffer.watch_connection()
