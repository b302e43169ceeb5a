"""The commands whose answers a server waits for (the Redis Streams adapter's XADD, SET, GET+DEL,
XRANGE): one bounded queue, sent in pipelines over the publishing connection.

Rule: as ``publisher.py`` for publishes, but each call waits for its own replies. Calls made at once
(a reconnect storm: a thousand sessions restored, or saved, together) go out as one pipeline (one
write, one round trip: a round trip per call would cost the event loop ten times more), each call's
commands contiguous, so a ``MULTI ... EXEC`` stays whole. Memory stays bounded: at most
``max_pending`` calls are queued or in flight. No coredis here: the link hands ``run`` a function that
sends one pipeline and returns every reply (an error reply as an exception, in its place).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import trio

from ...errors import AdapterError

__all__ = ["Caller", "SendCommands"]

logger = logging.getLogger("trio_rooms.redis")

#: Sends ``[[name, *args], ...]`` as one pipeline; returns one reply per command (an error reply as the
#: exception, in its place). Raises: AdapterError when the pipeline as a whole failed.
SendCommands = Callable[[Sequence[Sequence[Any]]], Awaitable[list[Any]]]

DEFAULT_MAX_BATCH: Final = 1024  # commands per pipeline


class _Call:
    __slots__ = ("commands", "done", "error", "replies")

    def __init__(self, commands: Sequence[Sequence[Any]]) -> None:
        self.commands = commands
        self.done = trio.Event()
        self.replies: list[Any] = []
        self.error: AdapterError | None = None


class Caller:
    """A bounded queue of calls (each a few commands), and the task that sends them in pipelines.

    Args:
        max_pending: how many calls may be queued or in flight at once.
        timeout: how long a call waits for room; the deadline of a pipeline's round trip (past it,
            the link is broken), and, twice over, of a call's answer.
        describe: says where the commands go, for the errors (``"Redis at redis://..."``).
        max_batch: the most commands one pipeline carries (a call is never split).
    """

    def __init__(
        self, *, max_pending: int, timeout: float, describe: str, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._timeout = timeout
        self._describe = describe
        self._max_batch = max_batch
        self._queue: deque[_Call] = deque()
        self._room = trio.Semaphore(max_pending, max_value=max_pending)
        self._ready = trio.Event()
        self._open = False
        self._down_reason = "not connected yet"
        #: Pipelines sent and answered.
        self.batches = 0

    async def call(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` (each ``[name, *args]``) together; their replies, in order.

        Raises:
            AdapterError: the link is down, no room came within ``timeout``, Redis refused one of
                them, or no answer came in time.

        Cancellation: the call may still be sent (and run by Redis).
        """
        if not self._open:
            raise AdapterError(f"{self._describe} is not connected ({self._down_reason})")
        with trio.move_on_after(self._timeout) as waiting:
            await self._room.acquire()
        if waiting.cancelled_caught:
            raise AdapterError(f"{self._describe}: the call queue stayed full for {self._timeout} s")
        if not self._open:
            self._room.release()
            raise AdapterError(f"{self._describe} is not connected ({self._down_reason})")
        call = _Call(commands)
        self._queue.append(call)
        self._ready.set()
        with trio.move_on_after(2 * self._timeout):
            await call.done.wait()
        if not call.done.is_set():
            raise AdapterError(f"{self._describe} did not answer within {2 * self._timeout} s")
        if call.error is not None:
            raise call.error
        return call.replies

    def open(self) -> None:
        """The link is up: accept calls."""
        self._open = True

    def close(self, reason: str) -> None:
        """The link is down: refuse new calls and fail every queued one."""
        self._open = False
        self._down_reason = reason
        lost = list(self._queue)
        self._queue.clear()
        error = AdapterError(f"{self._describe} is not connected ({reason})")
        for call in lost:
            self._settle(call, error=error)

    async def run(self, send: SendCommands) -> None:
        """Send what is queued, pipeline after pipeline, over the live link, until one fails.

        Raises:
            AdapterError: a pipeline failed, or was not answered within ``timeout``: whoever runs the
                link closes it (``close``).

        Cancellation: the calls in flight fail.
        """
        while True:
            while not self._queue:
                self._ready = trio.Event()
                await self._ready.wait()
            batch = [self._queue.popleft()]
            size = len(batch[0].commands)
            while self._queue and size + len(self._queue[0].commands) <= self._max_batch:
                call = self._queue.popleft()
                size += len(call.commands)
                batch.append(call)
            try:
                with trio.move_on_after(self._timeout) as scope:
                    replies = await send([command for call in batch for command in call.commands])
                if scope.cancelled_caught:
                    raise AdapterError(f"{self._describe}: a pipeline not answered within {self._timeout} s")
            except BaseException as exc:
                error = exc if isinstance(exc, AdapterError) else AdapterError(f"{self._describe}: {exc!r}")
                for call in batch:
                    self._settle(call, error=error)
                raise
            self.batches += 1
            start = 0
            for call in batch:
                mine = replies[start : start + len(call.commands)]
                start += len(call.commands)
                refused = next((reply for reply in mine if isinstance(reply, BaseException)), None)
                if refused is not None:
                    self._settle(call, error=AdapterError(f"Redis refused a command: {refused}"))
                else:
                    self._settle(call, replies=mine)

    def _settle(
        self, call: _Call, *, replies: list[Any] | None = None, error: AdapterError | None = None
    ) -> None:
        call.replies = replies or []
        call.error = error
        call.done.set()
        self._room.release()
