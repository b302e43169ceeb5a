"""docs/guide/quickstart.md as a reader runs it: its server block and its "Run it" ending saved as
``chat.py`` and started with ``python chat.py`` (only the port changed to 0), two Trio clients chat
through it, and Ctrl-C (SIGINT) stops it with exit code 0 and no traceback."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import trio
from helpers import docs_blocks
from test_runner import URL_LINE, Lines, _reap, _start

import trio_rooms

PAGE = "guide/quickstart.md"
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")


def chat_py() -> str:
    """The page's program: its first block (the server) and the block that ends it (``run``)."""
    server, ending = docs_blocks.python_blocks(PAGE)[:2]
    assert "trio_rooms.run(server" in ending.source and 'if __name__ == "__main__":' in ending.source
    assert ending.source.count("port=3000") == 1
    return server.source + "\n\n" + ending.source.replace("port=3000", "port=0")


async def test_the_quick_start_program_chats_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    script = tmp_path / "chat.py"
    script.write_text(chat_py())
    process, stderr_path = await _start(tmp_path, str(script))
    try:
        with trio.fail_after(20):
            lines = Lines(process)
            url = (await lines.wait_for(URL_LINE.pattern)).group(1)
            async with trio_rooms.open_client(url) as alice, trio_rooms.open_client(url) as bob:
                said: list[tuple[str, str]] = []
                heard = trio.Event()

                @bob.on("said")
                async def on_said(sid: str, text: str) -> None:
                    said.append((sid, text))
                    heard.set()

                alice_id = alice.id
                assert alice_id is not None
                assert await alice.emit_with_ack("join", "lobby") == sorted(["lobby", alice_id])
                await bob.emit_with_ack("join", "lobby")
                await alice.emit("say", "lobby", "hello")
                await heard.wait()
            process.send_signal(signal.SIGINT)
            code = await process.wait()
            await lines.rest()
    finally:
        await _reap(process)
    err = stderr_path.read_text()
    assert said == [(alice_id, "hello")]
    assert code == 0, err
    assert "Traceback" not in err, err
