"""``open_client``: a ``Client`` connected for the length of an ``async with`` block, taking exactly
the parameters of ``Client``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ParamSpec

from .client import Client

__all__ = ["open_client"]

P = ParamSpec("P")


def _parameters_of(
    cls: Callable[P, Client],
) -> Callable[
    [Callable[..., AbstractAsyncContextManager[Client]]], Callable[P, AbstractAsyncContextManager[Client]]
]:
    """Give an opener of ``cls`` the parameters of ``cls``: for type checkers (``P``) and for
    ``help()`` and ``inspect.signature`` (``__signature__``), written once, in ``Client.__init__``."""
    signature = inspect.signature(cls).replace(return_annotation="AbstractAsyncContextManager[Client]")

    def adopt(
        opener: Callable[..., AbstractAsyncContextManager[Client]],
    ) -> Callable[P, AbstractAsyncContextManager[Client]]:
        opener.__signature__ = signature  # type: ignore[attr-defined]
        return opener

    return adopt


@_parameters_of(Client)
@asynccontextmanager
async def open_client(*args: Any, **kwargs: Any) -> AsyncIterator[Client]:
    """Connect a ``Client`` to ``url`` and keep it connected for the block (the parameters: ``Client``).

    The first connection: one attempt without reconnection; with it, attempts with the backoff until
    ``wait_timeout``. Leaving the block disconnects cleanly (DISCONNECT, Engine.IO close, socket
    closed) and cancels the handlers still running. Events that arrive before the block starts wait
    for it, so handlers registered at its top see them (and the first "connect").

    The block's own exceptions propagate bare. An exception group escapes only if the block and a
    client task fail together (client tasks do not fail by design: handler errors are logged).

    Raises:
        NamespaceRejected: the server refused the namespace (CONNECT_ERROR) on the first connection.
        Disconnected: no connection could be made (the message says why).
        ValueError: an invalid argument (see ``Client``).
        TypeError: an argument of the wrong type (see ``Client``).

    Cancellation: the client is still disconnected, abruptly if the close cannot finish in time.
    """
    async with Client(*args, **kwargs) as client:
        yield client
