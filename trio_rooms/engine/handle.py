"""EngineSession: a session as an ``@engine.on("connection")`` handler sees it (the public API of the
Engine.IO server used on its own).

Rule: a thin handle over the engine's ``Session``: the session hands each message to the handle's
bounded channel, the handler iterates it; ``send`` waits for queue space; ``close`` ends the session.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final

import trio

from ..errors import DisconnectReason
from ..protocol.encoded import Encoded
from ..types import Transport
from .session import Session

__all__ = ["EngineSession"]

#: Messages received but not yet taken by the handler; then reading pauses.
INBOUND_SIZE: Final = 64


class EngineSession:
    """One Engine.IO session, for the application's ``connection`` handler.

    ``async for message in session`` yields each message (str or bytes) until the session ends (what
    the client sent before it ended is still yielded); ``await session.send(message)`` sends one;
    ``await session.close()`` ends the session. Made by the engine, never by applications.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._send, self._receive = trio.open_memory_channel[str | bytes](INBOUND_SIZE)
        session.on_close(self._send.close)

    def __repr__(self) -> str:
        return f"<EngineSession {self.sid} {self.transport} reason={self.reason}>"

    @property
    def sid(self) -> str:
        """The session id."""
        return self._session.sid

    @property
    def transport(self) -> Transport:
        """The current transport."""
        return self._session.transport

    @property
    def reason(self) -> DisconnectReason | None:
        """Why the session ended (None while it is open)."""
        return self._session.reason

    async def receive_message(self, message: str | bytes) -> None:
        """The session's receiver: queue one message for the handler (waits while the queue is full)."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._send.send(message)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                message = await self._receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            yield message

    async def send(self, message: str | bytes) -> None:
        """Send one Engine.IO message, waiting for queue space.

        Raises:
            trio.ClosedResourceError: the session is closed.
        """
        session = self._session
        await session.wait_writable()
        if session.reason is not None:
            raise trio.ClosedResourceError(f"session closed: {session.reason}")
        session.write(Encoded(("4" + message,) if isinstance(message, str) else (bytes(message),)))

    async def close(self) -> None:
        """Close the session (reason "forced close"); what is queued is still flushed."""
        self._session.close(DisconnectReason.FORCED_CLOSE)
        await trio.lowlevel.checkpoint()

    async def wait_closed(self) -> DisconnectReason:
        """Wait until the session ends; return the reason."""
        return await self._session.wait_closed()
