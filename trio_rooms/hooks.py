"""The application hooks a socket (server side) and a client share: catch-all listeners of incoming
events (Node's ``onAny``), listeners of outgoing ones (``onAnyOutgoing``), and the flagged emitter of
``timeout(seconds)`` / ``volatile``.

Rule: the bottom layer (no server or client import): each list is checked at registration and
costs its owner one truth test per packet while it is empty; a listener's error is logged, never
raised into the packet's path.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias, TypeVar

from ._util import check_async_callable

__all__ = [
    "AnyListener",
    "CatchAllListeners",
    "Emitting",
    "FlaggedEmitter",
    "HookedEmitter",
    "OutgoingListener",
    "OutgoingListeners",
    "PacketMiddleware",
    "PacketMiddlewares",
]

logger = logging.getLogger("trio_rooms")

AnyListener: TypeAlias = Callable[..., Awaitable[Any]]
"""``async def listener(event: str, *args)``: a catch-all listener of incoming events."""
OutgoingListener: TypeAlias = Callable[..., Any]
"""``def listener(event: str, *args)``: a plain function, called as each event is written."""
PacketMiddleware: TypeAlias = Callable[[str, list[Any]], Awaitable[None]]
"""``async def middleware(event, args)``: a socket's per-packet middleware (``Socket.use``)."""
A = TypeVar("A", bound=AnyListener)
M = TypeVar("M", bound=PacketMiddleware)
O = TypeVar("O", bound=OutgoingListener)  # noqa: E741


class CatchAllListeners:
    """The catch-all listeners of incoming events, in calling order (Node's ``onAny``,
    ``prependAny``, ``offAny``): a prepended listener goes first, before every earlier one."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: list[AnyListener] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: A, *, prepend: bool = False) -> A:
        """Add ``listener`` last (first with ``prepend``).

        Raises:
            TypeError: not an ``async def`` taking the event name and the arguments.
        """
        signature = check_async_callable(listener, "catch-all listener")
        try:
            signature.bind("event")
        except TypeError:
            raise TypeError("a catch-all listener takes (event, *args)") from None
        if prepend:
            self._listeners.insert(0, listener)
        else:
            self._listeners.append(listener)
        return listener

    def remove(self, listener: AnyListener | None = None) -> None:
        """Remove ``listener`` (every occurrence), or every listener when None."""
        if listener is None:
            self._listeners.clear()
        else:
            self._listeners = [known for known in self._listeners if known != listener]

    async def run(self, event: str, args: list[Any], owner: object) -> None:
        """Await each listener in turn with ``(event, *args)``; an error is logged, the next one runs."""
        for listener in list(self._listeners):
            try:
                await listener(event, *args)
            except Exception:
                logger.exception("catch-all listener %r failed on %r (event %r)", listener, owner, event)


class OutgoingListeners:
    """The listeners of outgoing events (Node's ``onAnyOutgoing``, ``offAnyOutgoing``)."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: list[OutgoingListener] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: O) -> O:
        """Add ``listener`` last.

        Raises:
            TypeError: not callable, or an ``async def`` (an outgoing listener is a plain function:
                it runs where the packet is written, which never awaits).
        """
        if not callable(listener):
            raise TypeError(f"an outgoing listener is a function, got {listener!r}")
        if inspect.iscoroutinefunction(listener) or inspect.iscoroutinefunction(
            getattr(listener, "__call__", None)  # noqa: B004 - a callable object's method
        ):
            raise TypeError("an outgoing listener is a plain def (called where the packet is written)")
        self._listeners.append(listener)
        return listener

    def remove(self, listener: OutgoingListener | None = None) -> None:
        """Remove ``listener`` (every occurrence), or every listener when None."""
        if listener is None:
            self._listeners.clear()
        else:
            self._listeners = [known for known in self._listeners if known != listener]

    def notify(self, data: list[Any], owner: object) -> None:
        """Call each listener with ``(event, *args)`` of an EVENT packet's ``data``; an error is logged."""
        event, *args = data
        for listener in list(self._listeners):
            try:
                listener(event, *args)
            except Exception:
                logger.exception("outgoing listener %r failed on %r (event %r)", listener, owner, event)


class PacketMiddlewares:
    """A socket's per-packet middlewares (Node's ``socket.use``), in registration order."""

    __slots__ = ("_middlewares",)

    def __init__(self) -> None:
        self._middlewares: list[PacketMiddleware] = []

    def __bool__(self) -> bool:
        return bool(self._middlewares)

    def add(self, middleware: M) -> M:
        """Add ``middleware`` last.

        Raises:
            TypeError: not an ``async def`` taking ``(event, args)``.
        """
        signature = check_async_callable(middleware, "middleware")
        try:
            signature.bind("event", [])
        except TypeError:
            raise TypeError("a socket middleware takes two arguments, the event and its args") from None
        self._middlewares.append(middleware)
        return middleware

    async def run(
        self, event: str, args: list[Any], rejected: Callable[[Exception], Awaitable[None]]
    ) -> bool:
        """Await each middleware with ``(event, args)``; on the first that raises, ``await
        rejected(exc)`` and return False (the packet is dropped); True when all passed."""
        for middleware in list(self._middlewares):
            try:
                await middleware(event, args)
            except Exception as exc:
                await rejected(exc)
                return False
        return True


class Emitting(Protocol):
    """What a ``FlaggedEmitter`` sends through (a socket, a client)."""

    async def emit_flagged(self, event: str, args: tuple[Any, ...], *, volatile: bool) -> None:
        """Send ``event`` with ``args``; ``volatile``: drop it if it cannot go out now."""
        ...

    async def emit_with_ack_flagged(
        self, event: str, args: tuple[Any, ...], *, volatile: bool, timeout: float | None
    ) -> Any:
        """Send ``event`` asking for an ack; wait ``timeout`` seconds (None: the default)."""
        ...


class FlaggedEmitter:
    """``socket.timeout(seconds)`` / ``socket.volatile`` (and the client's): an emit with flags.
    Every modifier returns a new emitter; the owner is not changed (unlike Node's, whose flags stick
    to the socket until its next emit).
    """

    __slots__ = ("_target", "_timeout", "_volatile")

    def __init__(self, target: Emitting, *, volatile: bool = False, timeout: float | None = None) -> None:
        """Made by the owner's ``volatile`` and ``timeout``.

        Args:
            target: the socket or client.
            volatile: the packet may be dropped when it cannot go out now (a full queue, no
                transport).
            timeout: the deadline of ``emit_with_ack`` in seconds (None: the owner's default).
        """
        self._target = target
        self._volatile = volatile
        self._timeout = timeout

    @property
    def volatile(self) -> FlaggedEmitter:
        """The same emitter, volatile."""
        return FlaggedEmitter(self._target, volatile=True, timeout=self._timeout)

    def timeout(self, seconds: float) -> FlaggedEmitter:
        """The same emitter, with ``emit_with_ack`` waiting ``seconds`` for the ack.

        Raises:
            ValueError: ``seconds`` is not positive.
        """
        if not seconds > 0:
            raise ValueError("timeout must be a positive number of seconds")
        return FlaggedEmitter(self._target, volatile=self._volatile, timeout=float(seconds))

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` (as the owner's ``emit``)."""
        await self._target.emit_flagged(event, args, volatile=self._volatile)

    async def send(self, *args: Any) -> None:
        """``emit("message", *args)``."""
        await self._target.emit_flagged("message", args, volatile=self._volatile)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        """Send ``event`` and wait for the ack (as the owner's ``emit_with_ack``).

        Raises:
            AckTimeout: no ack within the timeout.
        """
        return await self._target.emit_with_ack_flagged(
            event, args, volatile=self._volatile, timeout=self._timeout
        )


class HookedEmitter:
    """The hooks a socket and a client share (mixed in): catch-all and outgoing listeners, ``send``,
    ``volatile`` and ``timeout``. The owner sets ``_any`` and ``_outgoing`` in its ``__init__`` and
    implements ``Emitting``."""

    _any: CatchAllListeners
    _outgoing: OutgoingListeners

    def on_any(self, listener: A) -> A:
        """Register ``async def listener(event, *args)``, called with every event the peer sends
        before the event's middlewares and handler, awaited in turn in the event's own task. It also
        sees events no handler takes, never sees acks, and gets no ack function (unlike Node's: the
        handler's return value is the ack). Usable as a decorator.

        Raises:
            TypeError: not an ``async def`` taking ``(event, *args)``.
        """
        return self._any.add(listener)

    def prepend_any(self, listener: A) -> A:
        """``on_any``, but ``listener`` runs before every catch-all listener registered so far."""
        return self._any.add(listener, prepend=True)

    def off_any(self, listener: AnyListener | None = None) -> None:
        """Remove the catch-all ``listener`` (every one when None)."""
        self._any.remove(listener)

    def on_any_outgoing(self, listener: O) -> O:
        """Register ``def listener(event, *args)`` (a plain function), called as each event is written
        to the peer: ``emit``, ``emit_with_ack``, ``timeout(...)``, ``volatile``, ``send`` (and on a
        server socket every broadcast that reaches it), once per event; never for acks. Usable as
        a decorator.

        Raises:
            TypeError: not a plain function.
        """
        self._outgoing.add(listener)
        self._outgoing_changed()
        return listener

    def off_any_outgoing(self, listener: OutgoingListener | None = None) -> None:
        """Remove the outgoing ``listener`` (every one when None)."""
        self._outgoing.remove(listener)
        self._outgoing_changed()

    def _outgoing_changed(self) -> None:
        """The outgoing listeners changed (an owner with a fast path switches it here)."""

    @property
    def volatile(self) -> FlaggedEmitter:
        """Emits that are dropped when they cannot go out now (``x.volatile.emit(...)``)."""
        return FlaggedEmitter(self, volatile=True)  # type: ignore[arg-type]

    def timeout(self, seconds: float) -> FlaggedEmitter:
        """Emits whose ``emit_with_ack`` waits ``seconds`` (``x.timeout(2).emit_with_ack(...)``).

        Raises:
            ValueError: ``seconds`` is not positive.
        """
        return FlaggedEmitter(self).timeout(seconds)  # type: ignore[arg-type]

    async def send(self, *args: Any) -> None:
        """``emit("message", *args)`` (the peer's ``send`` reaches the ``"message"`` handler)."""
        await FlaggedEmitter(self).send(*args)  # type: ignore[arg-type]
