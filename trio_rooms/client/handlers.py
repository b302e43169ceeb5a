"""The client's event handlers: registration (checked once), lookup, and running them as tasks.

Rule: an event's arguments are bound against the handler's signature before it runs (else it is dropped
with one log line); handlers start in arrival order, a bounded number at a time.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import trio

from .._util import check_async_callable
from ..hooks import CatchAllListeners
from ..protocol.socketio import RESERVED_EVENTS

__all__ = ["RESERVED_HANDLERS", "Answer", "H", "Handler", "HandlerRunner", "HandlerTable"]

logger = logging.getLogger("trio_rooms.client")

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)
#: Sends the ack of an event with the handler's return value.
Answer = Callable[[Any], Awaitable[None]]

#: The reserved events a client may handle, with the number of arguments their handler takes.
RESERVED_HANDLERS: Final = {"connect": 0, "disconnect": 1, "connect_error": 1}


class HandlerTable:
    """One handler per event name (a later registration replaces an earlier one)."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[Handler, inspect.Signature]] = {}

    def register(self, event: str) -> Callable[[H], H]:
        """The decorator behind ``Client.on`` (see there for the rules and the errors)."""
        if not isinstance(event, str):
            raise TypeError("an event name is a str")
        if event in RESERVED_EVENTS and event not in RESERVED_HANDLERS:
            raise ValueError(f"{event!r} is reserved and has no client handler")

        def register(handler: H) -> H:
            signature = check_async_callable(handler, f"handler for {event!r}")
            arity = RESERVED_HANDLERS.get(event)
            if arity is not None:
                try:
                    signature.bind(*(["arg"] * arity))
                except TypeError:
                    raise TypeError(f"a {event!r} handler takes {arity} argument(s)") from None
            self._handlers[event] = (handler, signature)
            return handler

        return register

    def remove(self, event: str, handler: Handler | None = None) -> None:
        """Remove the handler of ``event`` (with ``handler``: only if it is that one)."""
        entry = self._handlers.get(event)
        if entry is not None and (handler is None or entry[0] == handler):
            del self._handlers[event]

    def reserved(self, event: str) -> Handler | None:
        """The handler of a reserved event ("connect", "disconnect", "connect_error"), if any."""
        entry = self._handlers.get(event)
        return entry[0] if entry is not None else None

    def for_event(self, event: object, args: Sequence[Any]) -> Handler | None:
        """The handler for a server's event with these arguments; None (logged) when there is none
        or the arguments do not bind. Reserved names never reach an application handler."""
        entry = self._handlers.get(event) if isinstance(event, str) else None
        if entry is None or event in RESERVED_HANDLERS:
            logger.debug("client: no handler for %r", event)
            return None
        try:
            entry[1].bind(*args)
        except TypeError as exc:
            logger.warning("client: arguments for %r do not bind (%s); dropped", event, exc)
            return None
        return entry[0]


class HandlerRunner:
    """Runs the handlers of ``table`` as tasks of the client's nursery, in the order events arrive;
    the ``catch_all`` listeners first, in the event's task (for every event from the server, handled
    or not; never for the reserved events, as socket.io-client's ``onAny``).

    At most ``max_in_flight`` run at once: past it the caller (the reader) waits for a slot. Events
    wait for ``open()`` (the start of the ``async with`` block), so that handlers registered at the
    top of the block see the first ones.
    """

    __slots__ = ("_any", "_nursery", "_ready", "_slots", "_table")

    def __init__(self, table: HandlerTable, max_in_flight: int, catch_all: CatchAllListeners) -> None:
        self._table = table
        self._any = catch_all
        self._slots = trio.Semaphore(max_in_flight)
        self._nursery: trio.Nursery | None = None
        self._ready = trio.Event()

    def attach(self, nursery: trio.Nursery) -> None:
        """Run the handlers in ``nursery`` from now on."""
        self._nursery = nursery

    def open(self) -> None:
        """Deliver events from now on (the ``async with`` block has started)."""
        self._ready.set()

    async def call(self, event: str, *args: Any) -> None:
        """Run a reserved event's handler, if any, and wait for it (its exception is logged)."""
        handler = self._table.reserved(event)
        if handler is not None:
            try:
                await handler(*args)
            except Exception:
                logger.exception("client %r handler failed", event)

    async def fire(self, event: str, *args: Any) -> None:
        """Start a reserved event's handler, if any, as a task, in order with events.

        Only "connect" waits for ``open()`` (no other handler exists before). The catch-all
        listeners are not told: only the server's events reach them.
        """
        if event == "connect":
            await self._ready.wait()
        handler = self._table.reserved(event)
        if handler is not None and self._nursery is not None:
            await self._slots.acquire()
            with trio.CancelScope(shield=True):  # started is its first step: this cannot block
                await self._nursery.start(self._run, handler, event, args, None, False)

    async def dispatch(self, event: object, args: Sequence[Any], answer: Answer | None) -> None:
        """Start the handler of a server's event as a task; it runs up to its first checkpoint before
        this returns. ``answer`` (when the server asked for an ack) gets the handler's return value."""
        await self._ready.wait()  # handlers registered at the top of the block see the first events
        handler = self._table.for_event(event, args)
        if handler is None and not (self._any and isinstance(event, str)):
            return
        assert self._nursery is not None
        await self._slots.acquire()
        await self._nursery.start(self._run, handler, event, args, answer, True)

    async def _run(
        self,
        handler: Handler | None,
        event: object,
        args: Sequence[Any],
        answer: Answer | None,
        from_server: bool,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        try:
            if from_server and self._any and isinstance(event, str):
                await self._any.run(event, list(args), "the client")
            if handler is None:
                return
            try:
                result = await handler(*args)
            except Exception:
                logger.exception("client handler for %r failed", event)
                return
            if answer is not None:
                await answer(result)
        finally:
            self._slots.release()
