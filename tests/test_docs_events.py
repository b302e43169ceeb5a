"""The guide's page on events (docs/guide/events.md) quotes the warning logged when a client event
reaches only a server-level handler: the quote is the warning (issue 18)."""

from __future__ import annotations

import logging

import trio
from helpers import docs_blocks

import trio_rooms


def quoted_warning() -> str:
    """The page's text block that quotes the warning, its lines joined as one message."""
    (quote,) = [b.source for b in docs_blocks.blocks("guide/events.md") if b.source.startswith("WARNING")]
    return " ".join(quote.split())


class Catch(logging.Handler):
    """Keeps the first record that says "reached no handler", and tells."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.record: logging.LogRecord | None = None
        self.caught = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.record is None and "reached no handler" in record.getMessage():
            self.record = record
            self.caught.set()


async def test_the_quoted_warning_is_logged() -> None:
    server = trio_rooms.Server()

    @server.on("chat")
    async def chat(text: str) -> None:
        raise AssertionError("a client event reached a server-level handler")

    catch = Catch()
    logger = logging.getLogger("trio_rooms")
    logger.addHandler(catch)
    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(server.serve, "127.0.0.1", 0)
                url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
                async with trio_rooms.open_client(url, transports=("websocket",)) as client:
                    await client.emit("chat", "hello")
                    await catch.caught.wait()
                    sid = client.id
                nursery.cancel_scope.cancel()
    finally:
        logger.removeHandler(catch)
    record = catch.record
    assert record is not None and record.levelname == "WARNING" and record.name == "trio_rooms"
    logged = f"{record.levelname} {record.name}: {record.getMessage()}"
    assert logged.replace(str(sid), "...") == quoted_warning()
