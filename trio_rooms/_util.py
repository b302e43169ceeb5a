"""Small shared helpers: argument normalisation, handler checks, exception-group unwrapping, socket ids."""

from __future__ import annotations

import functools
import inspect
import secrets
import types
from collections.abc import Awaitable, Callable, Generator, Iterable
from contextlib import contextmanager
from typing import Any

import trio

from .types import SocketId

__all__ = ["check_async_callable", "new_socket_id", "rooms_arg", "unwrap_group"]


def new_socket_id() -> SocketId:
    """A fresh, random socket id of 128 bits (22 URL-safe characters)."""
    return SocketId(secrets.token_urlsafe(16))


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
    if isinstance(func, types.FunctionType):
        # Handlers are often closures made per connection: same code, same signature. Computing a
        # signature costs more than the rest of a registration, so it is cached by what defines it.
        key = (func.__code__, func.__defaults__, _frozen(func.__kwdefaults__))
        try:
            return _SIGNATURES[key]
        except KeyError:
            signature = _SIGNATURES[key] = inspect.signature(func)
            if len(_SIGNATURES) > _SIGNATURE_CACHE_SIZE:
                del _SIGNATURES[next(iter(_SIGNATURES))]
            return signature
        except TypeError:  # an unhashable default value
            pass
    return inspect.signature(func)


_SIGNATURE_CACHE_SIZE = 1024
_SIGNATURES: dict[tuple[Any, ...], inspect.Signature] = {}


def _frozen(kwdefaults: dict[str, Any] | None) -> tuple[tuple[str, Any], ...] | None:
    return None if kwdefaults is None else tuple(sorted(kwdefaults.items()))


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


async def host_shielded(
    shield: trio.CancelScope, *, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
) -> None:
    """Host a nursery under ``shield`` until ``shield.cancel()``; ``nursery.start`` returns it."""
    with shield:
        async with trio.open_nursery() as nursery:
            task_status.started(nursery)
            await trio.sleep_forever()


class OneDriver:
    """One task at a time runs a shared ``run``: a second call made while one runs (one adapter
    factory given to several servers) reports started at once and waits, then takes over if the
    running call ends (its server stopped) while the waiting one is still wanted."""

    __slots__ = ("_done", "_driving")

    def __init__(self) -> None:
        self._driving = False
        self._done = trio.Event()

    async def drive(
        self, body: Callable[[trio.TaskStatus[None]], Awaitable[None]], task_status: trio.TaskStatus[None]
    ) -> None:
        """Run ``body(task_status)`` once no other call drives; until then, report started and wait."""
        while self._driving:
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            await self._done.wait()
        self._driving, self._done = True, trio.Event()
        try:
            await body(task_status)
        finally:
            self._driving = False
            self._done.set()
