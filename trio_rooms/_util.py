"""Small shared helpers: argument normalisation, handler checks, exception-group unwrapping."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterable
from contextlib import contextmanager
from typing import Any

__all__ = ["check_async_callable", "rooms_arg", "unwrap_group"]


def rooms_arg(room_or_rooms: str | Iterable[str]) -> frozenset[str]:
    """A ``str`` is one room; any other iterable is several. Raises TypeError for non-str rooms."""
    if isinstance(room_or_rooms, str):
        return frozenset((room_or_rooms,))
    rooms = frozenset(room_or_rooms)
    for room in rooms:
        if not isinstance(room, str):
            raise TypeError(f"a room is a str, not {type(room).__name__}")
    return rooms


def check_async_callable(func: Callable[..., Any], what: str) -> inspect.Signature:
    """Check that ``func`` is an ``async def`` (at registration time) and return its signature."""
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__)):
        raise TypeError(f"{what} must be an async def function, got {func!r}")
    return inspect.signature(func)


@contextmanager
def unwrap_group() -> Generator[None, None, None]:
    """Re-raise an exception group that holds exactly one exception as that bare exception."""
    try:
        yield
    except BaseExceptionGroup as group:
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if exc is group:
            raise
        raise exc from None
