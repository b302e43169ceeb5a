"""The publishes of every namespace of a server: one bounded queue, sent in batches over one connection.

Rule: an emit never waits for Redis' reply. It queues its message and returns; a publisher task
sends what is queued as one pipeline (one write, one round trip), in queue order, so that the
other servers see every channel's messages in emission order (Node's adapter does not await its
PUBLISH replies either). Memory stays bounded: at most ``max_pending`` messages are queued or in
flight; an emit that finds no room waits for some, with ``publish_timeout`` as its deadline.
No coredis here: the link hands ``run`` a function that sends one batch.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import trio

from ...errors import AdapterError

__all__ = ["Counts", "Publisher", "SendBatch"]

logger = logging.getLogger("trio_rooms.redis")

#: Sends ``[(channel, data), ...]`` as one pipeline and waits for Redis' replies.
#: Raises: AdapterError when any of them failed.
SendBatch = Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]]

DEFAULT_MAX_BATCH: Final = 512


class Counts:
    """The publish counters of one namespace: ``published`` (confirmed by Redis) and
    ``publish_errors`` (refused at once, or lost after the emit returned)."""

    __slots__ = ("publish_errors", "published")

    def __init__(self) -> None:
        self.published = 0
        self.publish_errors = 0


class Publisher:
    """A bounded queue of messages to publish, and the task that sends them in batches.

    Args:
        max_pending: how many messages may be queued or in flight at once.
        publish_timeout: how long an emit waits for room; the deadline of a batch's round trip.
        describe: says where the messages go, for the errors (``"Redis at redis://..."``).
        max_batch: the most messages one pipeline carries.
    """

    def __init__(
        self,
        *,
        max_pending: int,
        publish_timeout: float,
        describe: str,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._publish_timeout = publish_timeout
        self._describe = describe
        self._max_batch = max_batch
        self._queue: deque[tuple[str, bytes, Counts]] = deque()
        self._room = trio.Semaphore(max_pending)
        self._ready = trio.Event()
        self._open = False
        #: Batches sent and confirmed (each one pipeline, one round trip).
        self.batches = 0
        #: Why the link went down last (the emits that find it down say so).
        self._down_reason = "not connected yet"

    # -- the emit side -------------------------------------------------------------------------------
    def _refuse(self, counts: Counts) -> AdapterError:
        counts.publish_errors += 1
        return AdapterError(f"{self._describe} is not connected ({self._down_reason})")

    async def publish(self, channel: str, data: bytes, counts: Counts) -> None:
        """Queue ``data`` for ``channel``; return without waiting for Redis.

        A schedule point only when it waits for room.

        Raises:
            AdapterError: the link is known to be down (now, or when room came); or no room came
                within ``publish_timeout``. Each raise counts one ``publish_errors``.

        Cancellation: while it waits for room, nothing is queued.
        """
        if not self._open:
            raise self._refuse(counts)
        try:
            self._room.acquire_nowait()
        except trio.WouldBlock:
            with trio.move_on_after(self._publish_timeout):
                await self._room.acquire()
                if not self._open:
                    self._room.release()
                    raise self._refuse(counts) from None
                self._enqueue(channel, data, counts)
                return
            counts.publish_errors += 1
            raise AdapterError(
                f"publish to {channel!r}: the queue stayed full for {self._publish_timeout} s"
            ) from None
        self._enqueue(channel, data, counts)

    def _enqueue(self, channel: str, data: bytes, counts: Counts) -> None:
        self._queue.append((channel, data, counts))
        self._ready.set()

    @property
    def down_reason(self) -> str:
        """Why the link went down last."""
        return self._down_reason

    # -- the link side -------------------------------------------------------------------------------
    def open(self) -> None:
        """The link is up (connected and subscribed): accept emits."""
        self._open = True

    async def run(self, send: SendBatch) -> None:
        """Send what is queued, batch after batch, over the live link, until a batch fails.

        A batch that fails, or that Redis has not confirmed within ``publish_timeout``, is counted in
        ``publish_errors`` (its messages may or may not have reached the other servers) and logged;
        this raises, and whoever runs the link closes it (``close``): the emits raise
        ``AdapterError`` until it is back.

        Raises:
            AdapterError: a batch failed or was too slow.

        Cancellation: the batch in flight is counted as failed.
        """
        while True:
            while not self._queue:
                self._ready = trio.Event()
                await self._ready.wait()
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            try:
                with trio.move_on_after(self._publish_timeout) as scope:
                    await send([(channel, data) for channel, data, _ in batch])
                if scope.cancelled_caught:
                    raise AdapterError(
                        f"{self._describe}: {len(batch)} publishes not confirmed "
                        f"within {self._publish_timeout} s"
                    )
            except AdapterError as exc:
                self._settle(batch, ok=False)
                logger.warning("redis publisher: %d publishes lost: %s", len(batch), exc)
                raise
            except BaseException:
                self._settle(batch, ok=False)
                raise
            self.batches += 1
            self._settle(batch, ok=True)

    def close(self, reason: str) -> None:
        """The link is down: refuse new emits, and count every queued message as failed.

        Called by whoever runs the link, when it goes down (and harmless when it is down already).
        """
        self._open = False
        self._down_reason = reason
        lost = list(self._queue)
        self._queue.clear()
        if lost:
            logger.warning("redis publisher: %d queued publishes lost: %s", len(lost), reason)
            self._settle(lost, ok=False)

    def _settle(self, batch: Sequence[tuple[str, bytes, Counts]], *, ok: bool) -> None:
        for _, _, counts in batch:
            if ok:
                counts.published += 1
            else:
                counts.publish_errors += 1
            self._room.release()
