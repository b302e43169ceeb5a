"""The reading side of the Redis Streams adapter: one connection per server that follows the stream.

Rule: ``StreamReader.run`` owns a connection of its own (a blocking ``XREAD`` holds it): it reads
``XREAD BLOCK <block> COUNT <read_count> STREAMS <stream> <last id>`` in a loop and hands each entry, in
stream order, to the namespace it names (``attach``). It starts after the entry that was last when it
first connected (``$``, resolved once with ``XREVRANGE``, so that no entry added between two reads is
skipped), and after a lost connection it reconnects (capped jittered backoff) and goes on from the last
entry it read: what the stream still holds of the outage is read then, nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

from ..._backoff import Backoff
from ..._util import OneDriver
from ...errors import AdapterError
from .backend import DEFAULT_CONNECT_TIMEOUT, import_coredis, map_redis_errors

__all__ = ["DEFAULT_BLOCK_TIME", "EntryHandler", "StreamReader", "stream_entries"]

logger = logging.getLogger("trio_rooms.redis")

#: ``handle(entry_id, fields)``: what a namespace does with each entry of the stream (never raises).
EntryHandler = Callable[[str, Mapping[bytes, bytes]], Awaitable[None]]

#: Seconds one XREAD blocks (Node's ``blockTimeInMs``, 5 s): also how soon a dead connection is noticed.
DEFAULT_BLOCK_TIME: Final = 5.0
#: Seconds past the block time that an XREAD's answer may take before the connection counts as dead.
_ANSWER_SLACK: Final = 5.0


class StreamReader:
    """Follows one stream for every namespace of a server.

    Args:
        url: Redis URL.
        stream: the stream's key (Node's ``streamName``).
        read_count: the most entries one XREAD returns (Node's ``readCount``).
        block_time: seconds one XREAD waits for entries.
        reconnect_delay: the first delay before reconnecting; doubled per failure, jittered.
        reconnect_delay_max: the cap of that delay.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        read_count: int,
        block_time: float = DEFAULT_BLOCK_TIME,
        reconnect_delay: float,
        reconnect_delay_max: float,
    ) -> None:
        if read_count < 1:
            raise ValueError("read_count must be at least 1")
        if not block_time > 0:
            raise ValueError("block_time must be positive")
        self.url = url
        self.stream = stream
        self._read_count = read_count
        self._block_ms = max(1, round(block_time * 1000))
        self._answer_timeout = block_time + _ANSWER_SLACK
        self._backoff = Backoff(reconnect_delay, reconnect_delay_max)
        self._handlers: dict[bytes, EntryHandler] = {}
        #: The id of the last entry read (None until the first connection resolved ``$``).
        self.last_id: str | None = None
        self.connected = False
        self._driver = OneDriver()
        self._counters = dict.fromkeys(("reads", "entries", "unrouted", "connects", "disconnects"), 0)

    def stats(self) -> dict[str, int]:
        """Counters: reads (XREAD answers), entries (read), unrouted (of no namespace here), connects,
        disconnects."""
        return dict(self._counters)

    def serves(self, nsp: str) -> bool:
        """Whether a namespace called ``nsp`` receives this reader's entries."""
        return nsp.encode() in self._handlers

    def attach(self, nsp: str, handle: EntryHandler) -> None:
        """Hand the entries of namespace ``nsp`` to ``handle`` (replacing any other)."""
        self._handlers[nsp.encode()] = handle

    def detach(self, nsp: str, handle: EntryHandler) -> None:
        """Undo ``attach`` (when ``handle`` is still the one attached)."""
        key = nsp.encode()
        if self._handlers.get(key) is handle:
            del self._handlers[key]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read the stream and hand every entry on, forever; reconnect when the connection is lost.

        Reports started once the first attempt has resolved where to start, or failed. Called while
        another call runs (one factory, several servers), it reports started at once and waits, taking
        over if that other call ends.

        Cancellation: the connection closes; the entries not yet handed on are read by no one here.
        """
        await self._driver.drive(self._run, task_status)

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        while True:
            try:
                async with _open_connection(self.url) as connection:
                    if self.last_id is None:
                        self.last_id = await self._last_entry(connection)
                    self.connected = True
                    self._counters["connects"] += 1
                    self._backoff.reset()
                    if not started:
                        started = True
                        task_status.started()
                    await self._follow(connection)
            except AdapterError as exc:
                logger.warning("redis streams reader on %s: %s", self.stream, exc)
            finally:
                if self.connected:
                    self._counters["disconnects"] += 1
                self.connected = False
            if not started:
                started = True
                task_status.started()
            await trio.sleep(self._backoff.next_delay())

    async def _last_entry(self, connection: Any) -> str:
        """The id of the stream's last entry now ("0-0" when it is empty or absent): Node's ``$``."""
        with map_redis_errors("XREVRANGE failed"):
            found = await connection.create_request(
                b"XREVRANGE", self.stream, b"+", b"-", b"COUNT", 1, decode=False, timeout=self._answer_timeout
            )
        for entry_id, _fields in stream_entries(found):
            return entry_id
        return "0-0"

    async def _follow(self, connection: Any) -> None:
        stream = self.stream.encode()
        while True:
            with map_redis_errors("XREAD failed"):
                answer = await connection.create_request(
                    b"XREAD",
                    b"BLOCK",
                    self._block_ms,
                    b"COUNT",
                    self._read_count,
                    b"STREAMS",
                    stream,
                    self.last_id,
                    decode=False,
                    timeout=self._answer_timeout,
                )
            self._counters["reads"] += 1
            if not answer:
                continue
            if isinstance(answer, dict):
                batches = list(answer.values())
            else:
                batches = [item[1] for item in answer if isinstance(item, list | tuple) and len(item) > 1]
            for batch in batches:
                for entry_id, fields in stream_entries(batch):
                    self.last_id = entry_id
                    self._counters["entries"] += 1
                    handle = self._handlers.get(fields.get(b"nsp", b""))
                    if handle is None:
                        self._counters["unrouted"] += 1
                        continue
                    await handle(entry_id, fields)
            await trio.lowlevel.checkpoint()


def stream_entries(raw: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """``[(id, {field: value})]`` of an XRANGE/XREAD answer (RESP2 or RESP3); odd shapes are skipped."""
    found: list[tuple[str, dict[bytes, bytes]]] = []
    if not isinstance(raw, list | tuple):
        return found
    for item in raw:
        if not isinstance(item, list | tuple) or len(item) != 2:
            continue
        entry_id, values = item
        if isinstance(entry_id, bytes):
            entry_id = entry_id.decode("ascii", "replace")
        if not isinstance(entry_id, str):
            continue
        fields: dict[bytes, bytes] = {}
        if isinstance(values, dict):
            fields = {k: v for k, v in values.items() if isinstance(k, bytes) and isinstance(v, bytes)}
        elif isinstance(values, list | tuple):
            for index in range(0, len(values) - 1, 2):
                key, value = values[index], values[index + 1]
                if isinstance(key, bytes) and isinstance(value, bytes):
                    fields[key] = value
        found.append((entry_id, fields))
    return found


@asynccontextmanager
async def _open_connection(url: str) -> AsyncIterator[Any]:
    """One connection to ``url`` of its own (a blocking XREAD holds it). Raises: AdapterError."""
    coredis = import_coredis()
    with map_redis_errors(f"Redis at {url} failed"):
        client = coredis.Redis.from_url(
            url,
            retry_policy=coredis.retry.NoRetryPolicy(),
            connect_timeout=DEFAULT_CONNECT_TIMEOUT,
            max_connections=1,
        )
        async with client:
            connection = await client.connection_pool.get_connection()
            try:
                yield connection
            finally:
                client.connection_pool.release(connection)
