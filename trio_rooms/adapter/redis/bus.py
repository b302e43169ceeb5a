"""The Redis side of a server: one link to Redis shared by every namespace, as Node's adapter shares
the ``pub`` and ``sub`` clients given to ``createAdapter(pub, sub)``.

Rule: ``RedisBus.run`` owns the link: it connects, subscribes to every channel and pattern that a
namespace follows, hands each message to the namespaces that follow its channel (or the pattern it
matched), runs the publisher (``publisher.py``), and reconnects (capped jittered backoff) when the
link is lost, subscribing to everything again before it accepts a publish. Each namespace holds a
``BusPort``: its subscriptions (followed and unfollowed at any time), its publishes and its counters.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import trio

from ..._backoff import Backoff
from ..._util import OneDriver
from ...errors import AdapterError
from .backend import RedisLink, describe_error, open_link
from .caller import Caller
from .publisher import Counts, Publisher

__all__ = ["DEFAULT_MAX_PENDING_PUBLISHES", "BusPort", "Receiver", "RedisBus"]

logger = logging.getLogger("trio_rooms.redis")

#: ``receive(channel, data)``: what a namespace does with each message of its channels (never raises).
Receiver = Callable[[bytes, bytes], Awaitable[None]]

#: A subscription: (is a pattern, channel or pattern).
Key = tuple[bool, str]

DEFAULT_MAX_PENDING_PUBLISHES: Final = 4096


class RedisBus:
    """One server's link to Redis: a publishing and a subscribing connection for all its namespaces.

    Args:
        url: Redis URL (a cluster node's URL when ``sharded``).
        sharded: SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub) instead of PUBLISH/SUBSCRIBE.
        publish_timeout: how long an emit waits for room in the publish queue; the deadline of a
            batch of publishes, and of a subscriber count.
        subscribe_timeout: the deadline of subscribing everything after a connection.
        reconnect_delay: the first delay before reconnecting; doubled per failure, jittered.
        reconnect_delay_max: the cap of that delay.
        max_pending_publishes: publishes queued or in flight at once (then emits wait for room).
        name: who uses the bus, for the logs.
    """

    def __init__(
        self,
        url: str,
        *,
        sharded: bool,
        publish_timeout: float,
        subscribe_timeout: float,
        reconnect_delay: float,
        reconnect_delay_max: float,
        max_pending_publishes: int = DEFAULT_MAX_PENDING_PUBLISHES,
        name: str = "",
    ) -> None:
        self.url = url
        self.sharded = sharded
        self._publish_timeout = publish_timeout
        self._subscribe_timeout = subscribe_timeout
        self._backoff = Backoff(reconnect_delay, reconnect_delay_max)
        self._name = name or url
        self._publisher = Publisher(
            max_pending=max_pending_publishes, publish_timeout=publish_timeout, describe=f"Redis at {url}"
        )
        self._caller = Caller(
            max_pending=max_pending_publishes, timeout=subscribe_timeout, describe=f"Redis at {url}"
        )
        self._link: RedisLink | None = None
        self._link_scope: trio.CancelScope | None = None
        # The open ports, by namespace name.
        self._names: Counter[str] = Counter()
        # Whether a run() drives the link now; set when it stops (another run() then takes over).
        self._driver = OneDriver()
        # Who receives what each subscription carries; a key is wanted while its list is not empty.
        self._routes: dict[Key, list[Receiver]] = {}
        # The same lists, by what Redis sends back: (is a pattern, name as bytes).
        self._lookup: dict[tuple[bool, bytes], list[Receiver]] = {}
        # Wanted or unwanted since the live connection subscribed: the reconciling task looks at them.
        self._dirty: set[Key] = set()
        self._changed = trio.Event()
        self._counters = dict.fromkeys(("connects", "disconnects", "unrouted"), 0)

    # -- observability -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether the bus is connected and subscribed now."""
        return self._link is not None

    def stats(self) -> dict[str, int]:
        """Counters: connects, disconnects, unrouted (messages of a subscription just dropped),
        publish_batches (pipelines sent and confirmed, for every namespace)."""
        return {**self._counters, "publish_batches": self._publisher.batches}

    def port(self, name: str, receive: Receiver) -> BusPort:
        """Namespace ``name``'s share of the bus: what it follows goes to ``receive``."""
        return BusPort(self, name, receive)

    def serves(self, name: str) -> bool:
        """Whether an open port of namespace ``name`` is on the bus."""
        return self._names[name] > 0

    def opened(self, name: str) -> None:
        """A port of namespace ``name`` opened. For ports."""
        self._names[name] += 1

    def closed(self, name: str) -> None:
        """A port of namespace ``name`` closed. For ports."""
        self._names[name] -= 1
        if self._names[name] <= 0:
            del self._names[name]

    # -- what to subscribe to ----------------------------------------------------------------------
    def attach(self, key: Key, receive: Receiver) -> None:
        """Route ``key``'s messages to ``receive`` too (subscribing to it if it is new). For ports."""
        receivers = self._routes.get(key)
        if receivers is None:
            receivers = self._routes[key] = []
            self._lookup[key[0], key[1].encode()] = receivers
            self._dirty.add(key)
            self._changed.set()
        receivers.append(receive)

    def detach(self, key: Key, receive: Receiver) -> None:
        """Undo ``attach`` (unsubscribing once nobody receives ``key``). For ports."""
        receivers = self._routes.get(key)
        if receivers is None or receive not in receivers:
            return
        receivers.remove(receive)
        if not receivers:
            del self._routes[key]
            del self._lookup[key[0], key[1].encode()]
            self._dirty.add(key)
            self._changed.set()

    async def _dispatch(self, pattern: bytes | None, channel: bytes, data: bytes) -> None:
        receivers = self._lookup.get((False, channel) if pattern is None else (True, pattern))
        if not receivers:
            self._counters["unrouted"] += 1  # unsubscribed while the message was on its way
            return
        if len(receivers) == 1:
            await receivers[0](channel, data)
            return
        for receive in list(receivers):
            await receive(channel, data)

    # -- the link ----------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, subscribe, route every message and publish; reconnect, forever.

        Reports started once the first attempt has succeeded or failed (a server starts while Redis
        is down, and its emits raise ``AdapterError`` until Redis is back). Called while another call
        runs (one factory, several servers), it reports started at once and waits, taking over the
        link if that other call ends.

        Cancellation: the connections close; the publishes still queued are counted as failed.
        """
        await self._driver.drive(self._run, task_status)

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        while True:
            reason = "the connection was lost"
            try:
                with trio.CancelScope() as self._link_scope:
                    async with open_link(self.url, sharded=self.sharded) as link:
                        subscribed = await self._subscribe_all(link)
                        self._link = link
                        self._publisher.open()
                        self._caller.open()
                        self._counters["connects"] += 1
                        self._backoff.reset()
                        logger.info("redis adapter %s: subscribed", self._name)
                        if not started:
                            started = True
                            task_status.started()
                        async with trio.open_nursery() as session:
                            session.start_soon(self._reconcile, link, subscribed)
                            session.start_soon(link.read, self._dispatch)
                            session.start_soon(self._caller.run, link.call_raw)
                            await self._publisher.run(link.send_batch)
                reason = "the publishing connection was lost"  # broken on purpose (_break)
                logger.warning("redis adapter %s: %s", self._name, reason)
            except Exception as exc:
                reason = describe_error(exc)
                logger.warning("redis adapter %s: connection lost: %s", self._name, reason)
            finally:
                self._link_scope = None
                self._publisher.close(reason)
                self._caller.close(reason)
                lost = self._link is not None
                if lost:
                    self._counters["disconnects"] += 1
                self._link = None
            if not started:
                started = True
                task_status.started()
            if lost:
                # A connection that was up just failed: try again at once (a blip, a failover), so
                # that this server resubscribes as early as it can; then back off.
                await trio.lowlevel.checkpoint()
            else:
                await trio.sleep(self._backoff.next_delay())

    async def _subscribe_all(self, link: RedisLink) -> set[Key]:
        """Subscribe to everything wanted; return what that is (changes meanwhile stay dirty)."""
        self._dirty.clear()
        wanted = set(self._routes)
        channels = [name for pattern, name in wanted if not pattern]
        patterns = [name for pattern, name in wanted if pattern]
        with trio.fail_after(self._subscribe_timeout):
            await link.subscribe(*channels)
            await link.psubscribe(*patterns)
        return wanted

    async def _reconcile(self, link: RedisLink, subscribed: set[Key]) -> None:
        """Bring the link's subscriptions in line with what is wanted, whenever that changes."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            while self._dirty:
                key = self._dirty.pop()
                pattern, name = key
                with trio.fail_after(self._subscribe_timeout):  # a stuck Redis breaks the link
                    if key in self._routes and key not in subscribed:
                        await (link.psubscribe(name) if pattern else link.subscribe(name))
                        subscribed.add(key)
                    elif key not in self._routes and key in subscribed:
                        await (link.punsubscribe(name) if pattern else link.unsubscribe(name))
                        subscribed.discard(key)

    # -- publishing and counting -------------------------------------------------------------------
    async def publish(self, channel: str, data: bytes, counts: Counts) -> None:
        """Queue a publish counted in ``counts``; see ``Publisher.publish``. For ports."""
        link = self._link
        if link is not None and not link.usable:
            # The publishing connection is gone and no batch has noticed yet: break the link now
            # (it reconnects) rather than queue a message that cannot go.
            self._break("the publishing connection was lost")
        await self._publisher.publish(channel, data, counts)

    def _break(self, reason: str) -> None:
        self._publisher.close(reason)
        self._caller.close(reason)
        if self._link_scope is not None:
            self._link_scope.cancel()

    async def numsub(self, channel: str) -> int:
        """How many connections subscribe to ``channel``: PUBSUB NUMSUB (or SHARDNUMSUB).

        Raises:
            AdapterError: not connected, failed or too slow.
        """
        link = self._link
        if link is None:
            raise AdapterError(f"Redis at {self.url} is not connected")
        with trio.move_on_after(self._publish_timeout):
            return await link.numsub(channel)
        raise AdapterError(f"PUBSUB NUMSUB took over {self._publish_timeout} s")

    async def call(self, *commands: Sequence[Any], counts: Counts | None = None) -> list[Any]:
        """Run ``commands`` (each ``[name, *args]``) together on the publishing connection and return
        their raw replies: see ``Caller.call`` (the calls made at once share one pipeline). With
        ``counts``, the call counts as one ``published`` or one ``publish_errors``.

        Raises:
            AdapterError: not connected, refused, or too slow.
        """
        link = self._link
        if link is not None and not link.usable:
            self._break("the publishing connection was lost")
        try:
            replies = await self._caller.call(commands)
        except AdapterError:
            if counts is not None:
                counts.publish_errors += 1
            raise
        if counts is not None:
            counts.published += 1
        return replies


class BusPort:
    """What one namespace's adapter uses of the shared bus: its subscriptions, its messages (handed
    to ``receive``), its publishes and their counters.

    Args:
        bus: the server's bus.
        name: the namespace's name.
        receive: what is done with each message of the channels and patterns this port follows.
    """

    def __init__(self, bus: RedisBus, name: str, receive: Receiver) -> None:
        self._bus = bus
        self._name = name
        self._receive = receive
        self._following: Counter[Key] = Counter()
        self._open = True
        bus.opened(name)
        self.counts = Counts()

    @property
    def connected(self) -> bool:
        """Whether the bus is connected and subscribed now."""
        return self._bus.connected

    def stats(self) -> dict[str, int]:
        """Counters: published, publish_errors (this namespace's); connects, disconnects,
        publish_batches (the bus', shared by every namespace)."""
        bus = self._bus.stats()
        return {
            "published": self.counts.published,
            "publish_errors": self.counts.publish_errors,
            "publish_batches": bus["publish_batches"],
            "connects": bus["connects"],
            "disconnects": bus["disconnects"],
        }

    def follow(self, channel: str) -> None:
        """Subscribe to ``channel`` (now if connected, and after every reconnection)."""
        self._follow((False, channel))

    def unfollow(self, channel: str) -> None:
        """Undo one ``follow(channel)``: unsubscribe once nobody follows it."""
        self._unfollow((False, channel))

    def follow_pattern(self, pattern: str) -> None:
        """PSUBSCRIBE ``pattern`` (classic pub/sub only), as ``follow`` does for a channel."""
        self._follow((True, pattern))

    def unfollow_pattern(self, pattern: str) -> None:
        """Undo one ``follow_pattern(pattern)``."""
        self._unfollow((True, pattern))

    def close(self) -> None:
        """Stop receiving (the namespace is gone): the subscriptions of this port end unless another
        port follows them too. What it follows is remembered, for ``open``."""
        if self._open:
            self._open = False
            self._bus.closed(self._name)
            for key in self._following:
                self._bus.detach(key, self._receive)

    def open(self) -> None:
        """Receive again what this port follows (after ``close``; a new port is open)."""
        if not self._open:
            self._open = True
            self._bus.opened(self._name)
            for key in self._following:
                self._bus.attach(key, self._receive)

    def _follow(self, key: Key) -> None:
        self._following[key] += 1
        if self._following[key] == 1 and self._open:
            self._bus.attach(key, self._receive)

    def _unfollow(self, key: Key) -> None:
        count = self._following.get(key, 0)
        if count > 1:
            self._following[key] = count - 1
        elif count == 1:
            del self._following[key]
            if self._open:
                self._bus.detach(key, self._receive)

    async def publish(self, message: tuple[str, bytes]) -> None:
        """Queue ``(channel, data)`` for publishing; return without waiting for Redis.

        Raises:
            AdapterError: the link is known to be down, or the queue stayed full for
                ``publish_timeout`` (see ``Publisher.publish``).
        """
        channel, data = message
        await self._bus.publish(channel, data, self.counts)

    async def numsub(self, channel: str) -> int:
        """PUBSUB NUMSUB (or SHARDNUMSUB) of ``channel``. Raises: AdapterError."""
        return await self._bus.numsub(channel)

    async def call(self, *commands: Sequence[Any]) -> list[Any]:
        """``RedisBus.call``, counted in this port's counters. Raises: AdapterError."""
        return await self._bus.call(*commands, counts=self.counts)
