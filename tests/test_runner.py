"""``trio_rooms.run`` / ``serve_until_signal``: a real process stopped by SIGINT or SIGTERM.

Each test starts a small script ending in ``trio_rooms.run(server, "127.0.0.1", 0)`` as a separate
process, waits for its "listening on http://..." line, connects the Trio client, then signals it:
the process must exit 0 after a graceful shutdown (the server's disconnect handler runs with
"server shutting down", the client sees its transport closed), print no traceback, and go on after
``run`` returns. A second SIGINT during a shutdown held up by a handler exits at once (code 130).
"""

from __future__ import annotations

import os
import re
import signal
import socket as stdlib_socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_rooms
from trio_rooms.__main__ import main as demo_main

ROOT = Path(__file__).resolve().parent.parent
PROCESS_TIMEOUT = 20.0  # seconds: start, one client, a graceful stop
URL_LINE = re.compile(r"listening on (http://127\.0\.0\.1:\d+) \(path /socket\.io/\); Ctrl-C to stop")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")

SCRIPT = """
import sys

import trio
import trio_rooms

server = trio_rooms.Server(teardown_timeout=60.0)
hang = sys.argv[1] == "hang"


@server.on("connection")
async def on_connection(socket: trio_rooms.Socket) -> None:
    @socket.on("echo")
    async def echo(text: str) -> str:
        return text

    @socket.on("disconnect")
    async def disconnect(reason: str) -> None:
        print(f"server: disconnect {reason}", flush=True)
        if hang:
            print("server: the handler hangs", flush=True)
            await trio.sleep_forever()


trio_rooms.run(server, "127.0.0.1", 0, title="runner test")
print("server: run returned", flush=True)
"""


class Lines:
    """The stdout of a process, read as it comes."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdout is not None
        self.stream = process.stdout
        self.text = ""

    async def wait_for(self, pattern: str) -> re.Match[str]:
        """Read until ``pattern`` matches what was printed so far."""
        while (match := re.search(pattern, self.text)) is None:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise AssertionError(f"the process ended before printing {pattern!r}: {self.text!r}")
            self.text += chunk.decode()
        return match

    async def rest(self) -> str:
        """Read to the end of the stream and return everything printed."""
        while chunk := await self.stream.receive_some():
            self.text += chunk.decode()
        return self.text


async def _start(tmp_path: Path, *argv: str) -> tuple[trio.Process, Path]:
    """Start ``python *argv`` from the repository root, stdout piped, stderr to a file."""
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            [sys.executable, *argv],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    return process, stderr_path


async def _reap(process: trio.Process) -> None:
    if process.returncode is None:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
    assert process.stdout is not None
    await process.stdout.aclose()


async def _connected_client_then(process: trio.Process, lines: Lines, stop: signal.Signals) -> list[str]:
    """Connect a client to the process's server, check an ack, send ``stop``; the reasons the
    client was given for its disconnection."""
    url = (await lines.wait_for(URL_LINE.pattern)).group(1)
    reasons: list[str] = []
    gone = trio.Event()
    async with trio_rooms.open_client(url, reconnection=False) as client:

        @client.on("disconnect")
        async def on_disconnect(reason: Any) -> None:
            reasons.append(str(reason))
            gone.set()

        assert await client.emit_with_ack("echo", "hi", timeout=5.0) == "hi"
        process.send_signal(stop)
        await gone.wait()
    return reasons


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_run_stops_cleanly_on_a_signal(tmp_path: Path, stop: signal.Signals) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT)
    process, stderr_path = await _start(tmp_path, str(script), "quick")
    try:
        with trio.fail_after(PROCESS_TIMEOUT):
            lines = Lines(process)
            reasons = await _connected_client_then(process, lines, stop)
            code = await process.wait()
            out = await lines.rest()
    finally:
        await _reap(process)
    err = stderr_path.read_text()
    assert code == 0, (out, err)
    # As from Node's io.close(): the transport is closed (no DISCONNECT packet first).
    assert reasons == ["transport close"]
    assert "server: disconnect server shutting down" in out  # the graceful shutdown ran the handler
    assert out.rstrip().endswith("server: run returned"), out  # run() returned: the script went on
    assert f"runner test: {stop.name}: shutting down" in err
    assert "Traceback" not in err, err


async def test_a_second_sigint_exits_at_once(tmp_path: Path) -> None:
    """A disconnect handler that never returns holds the graceful shutdown for teardown_timeout (60 s);
    the second Ctrl-C ends the process at once with the shell's code for SIGINT, 130."""
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT)
    process, stderr_path = await _start(tmp_path, str(script), "hang")
    try:
        with trio.fail_after(PROCESS_TIMEOUT):
            lines = Lines(process)
            await _connected_client_then(process, lines, signal.SIGINT)
            await lines.wait_for("server: the handler hangs")
        with trio.move_on_after(1.0):  # still shutting down: the handler holds it
            await process.wait()
        assert process.returncode is None
        with trio.fail_after(5.0):
            process.send_signal(signal.SIGINT)
            code = await process.wait()
            out = await lines.rest()
    finally:
        await _reap(process)
    err = stderr_path.read_text()
    assert code == 128 + signal.SIGINT, (out, err)
    assert "runner test: SIGINT again: exiting without waiting for the shutdown" in err
    assert "server: run returned" not in out
    assert "Traceback" not in err, err


def _busy_port() -> tuple[stdlib_socket.socket, int]:
    busy = stdlib_socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    return busy, busy.getsockname()[1]


def test_run_raises_oserror_when_it_cannot_listen() -> None:
    """The address is taken: ``run`` raises the plain OSError (not a group of one)."""
    busy, port = _busy_port()
    with busy, pytest.raises(OSError, match=r"(?i)address already in use"):
        trio_rooms.run(trio_rooms.Server(), "127.0.0.1", port)


def test_the_demo_says_it_cannot_listen(capsys: pytest.CaptureFixture[str]) -> None:
    busy, port = _busy_port()
    with busy:
        assert demo_main(["--port", str(port), "--log-level", "warning"]) == 1
    assert f"trio_rooms demo: cannot serve on 127.0.0.1:{port}:" in capsys.readouterr().err


def test_server_url() -> None:
    assert trio_rooms.runner.server_url("127.0.0.1", 3000) == "http://127.0.0.1:3000"
    assert trio_rooms.runner.server_url("::1", 80) == "http://[::1]:80"


def test_the_demo_help_says_both_transports(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        demo_main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "Socket.IO v5 over Engine.IO v4, HTTP long-polling and WebSocket" in text
    assert "Ctrl-C or SIGTERM stops it gracefully" in text


async def test_serve_until_signal_raises_a_bare_oserror() -> None:
    busy, port = _busy_port()
    with busy, trio.fail_after(5), pytest.raises(OSError, match=r"(?i)address already in use"):
        await trio_rooms.serve_until_signal(trio_rooms.Server(), "127.0.0.1", port)
