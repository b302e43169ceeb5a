"""The client's event handlers: registration (checked once) and lookup for an incoming event.

Rule: an event's arguments are bound against the handler's signature before it runs; an event
without a handler, or whose arguments do not bind, is dropped with one log line.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from .._util import check_async_callable
from ..protocol.socketio import RESERVED_EVENTS

__all__ = ["H", "RESERVED_HANDLERS", "Handler", "HandlerTable"]

logger = logging.getLogger("trio_rooms.client")

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)

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
