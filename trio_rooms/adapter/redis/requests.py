"""This server's requests to the other servers, waiting for their replies, by request id.

Rule: bookkeeping only (no I/O, no clock): the requester registers a request for as long as it waits
(a context manager), the inbound side hands each reply to ``resolve``, which says whether it fitted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum, auto
from typing import Any, Generic, TypeVar

import trio

from ...protocol.cluster.model import BroadcastAck, BroadcastClientCount, Reply

__all__ = ["AckGathering", "Gathering", "Requests", "Resolution"]

R = TypeVar("R", bound=Reply)


class Resolution(Enum):
    """What became of a reply."""

    TAKEN = auto()  #: it answered a request of ours
    UNKNOWN = auto()  #: no request of ours has its id (late, or another server's)
    MISFIT = auto()  #: a request of ours has its id but expects another kind of reply


class Gathering(Generic[R]):
    """A request that waits for one reply of kind ``accepts`` from each of ``expected`` servers.

    Attributes:
        request_id: the request's id.
        accepts: the kind of reply it waits for.
        expected: how many servers should answer.
        replies: the replies received, in order of arrival.
        done: set when every expected server has answered.
    """

    __slots__ = ("accepts", "done", "expected", "replies", "request_id")

    def __init__(self, request_id: str, accepts: type[R], expected: int) -> None:
        self.request_id = request_id
        self.accepts = accepts
        self.expected = expected
        self.replies: list[R] = []
        self.done = trio.Event()
        if expected <= 0:
            self.done.set()

    def add(self, reply: R) -> None:
        """Count ``reply`` in."""
        self.replies.append(reply)
        if len(self.replies) >= self.expected:
            self.done.set()


class AckGathering:
    """A broadcast with acks across servers: each server's client count, then each client's answer.

    Attributes:
        request_id: the request's id.
        responses: the answers received, in order of arrival.
        done: set when every server has counted and every counted client has answered (or gone).
    """

    __slots__ = ("_clients", "_expected_servers", "_servers", "done", "request_id", "responses")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.responses: list[Any] = []
        self._clients = 0
        self._servers = 0
        self._expected_servers: int | None = None
        self.done = trio.Event()

    def count(self, clients: int) -> None:
        """One server (this one included) reached ``clients`` clients."""
        self._servers += 1
        self._clients += clients
        self._check()

    def answer(self, value: Any) -> None:
        """One client answered ``value``."""
        self.responses.append(value)
        self._check()

    def gone(self) -> None:
        """One counted client will not answer (it disconnected, or the write was not taken)."""
        self._clients -= 1
        self._check()

    def expect_servers(self, servers: int) -> None:
        """How many servers will count (this one included); until then the gathering is not done."""
        self._expected_servers = servers
        self._check()

    def _check(self) -> None:
        if (
            self._expected_servers is not None
            and self._servers >= self._expected_servers
            and len(self.responses) >= self._clients
        ):
            self.done.set()


class Requests:
    """The requests this server waits on.

    Args:
        new_id: makes a fresh request id (the wire format's kind of id).
    """

    def __init__(self, new_id: Callable[[], str]) -> None:
        self._new_id = new_id
        self._gatherings: dict[str, Gathering[Any]] = {}
        self._acks: dict[str, AckGathering] = {}

    def __len__(self) -> int:
        return len(self._gatherings) + len(self._acks)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._gatherings or request_id in self._acks

    def expected_reply(self, request_id: str) -> type[Reply] | None:
        """The kind of reply request ``request_id`` waits for (None: no such request of ours, or a
        broadcast with acks, whose replies always say their type)."""
        gathering = self._gatherings.get(request_id)
        return None if gathering is None else gathering.accepts

    @contextmanager
    def gather(self, accepts: type[R], expected: int) -> Iterator[Gathering[R]]:
        """Register a request (with a fresh id) for the duration of the block."""
        gathering = Gathering(self._new_id(), accepts, expected)
        self._gatherings[gathering.request_id] = gathering
        try:
            yield gathering
        finally:
            del self._gatherings[gathering.request_id]

    @contextmanager
    def gather_acks(self) -> Iterator[AckGathering]:
        """Register a broadcast with acks (with a fresh id) for the duration of the block."""
        gathering = AckGathering(self._new_id())
        self._acks[gathering.request_id] = gathering
        try:
            yield gathering
        finally:
            del self._acks[gathering.request_id]

    def resolve(self, reply: Reply) -> Resolution:
        """Hand ``reply`` to the request it answers."""
        acks = self._acks.get(reply.request_id)
        if acks is not None:
            if isinstance(reply, BroadcastClientCount):
                acks.count(reply.count)
            elif isinstance(reply, BroadcastAck):
                acks.answer(reply.value)
            else:
                return Resolution.MISFIT
            return Resolution.TAKEN
        gathering = self._gatherings.get(reply.request_id)
        if gathering is None:
            return Resolution.UNKNOWN
        if not isinstance(reply, gathering.accepts):
            return Resolution.MISFIT
        gathering.add(reply)
        return Resolution.TAKEN
