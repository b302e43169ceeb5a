"""The examples and the demo entry point, run as a user runs them: real processes on 127.0.0.1.

Covers ``examples/echo.py demo``, ``examples/chat.py demo``, ``examples/client.py demo`` (the tour of
``trio_rooms.open_client``), ``examples/raw_client.py demo``, ``examples/admin_ui.py demo``, and
``python -m trio_rooms --port 0`` served as a separate process, checked with the echo client, the
chat demo's clients, the client tour, the hand-framed client and a GET of its chat page, then stopped
with SIGINT or SIGTERM: it must exit 0 without a traceback. The ASGI examples
(``examples/asgi_starlette.py``, ``examples/asgi_quart_trio.py``) run under ``hypercorn -k trio`` as
examples/README.md says, with their routes and the chat demo's clients, then SIGTERM.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers.asgi_harness import hypercorn, require_hypercorn
from helpers.interop_harness import missing
from helpers.raw_clients import request

import trio_rooms
from trio_rooms.chat_page import BUNDLE, find_client_dist

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROCESS_TIMEOUT = 30.0  # seconds; each command finishes in about a second
URL_LINE = re.compile(rb"listening on (http://127\.0\.0\.1:(\d+)) ")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


async def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``python *args`` from the repository root, capturing its output, under a deadline."""
    with trio.fail_after(PROCESS_TIMEOUT):
        return await trio.run_process(
            [sys.executable, *args],
            cwd=ROOT,
            env=_env(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


def _explain(result: subprocess.CompletedProcess[bytes]) -> str:
    out, err = result.stdout.decode(), result.stderr.decode()
    return f"exit {result.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


DEMOS = {
    "echo.py": [b"echo ack: ['hello'", b"echo demo: OK"],
    "chat.py": [
        b"ok   alice got room a's messages, once each",
        b"ok   carol got room b's message only",
        b"chat demo: OK",
    ],
    "client.py": [b"ok   alice hears bob's line", b"ok   alice hears bob leave", b"client demo: OK"],
    "raw_client.py": [b"echo ack: ['hello'", b"raw client demo: OK"],
}


@pytest.mark.parametrize("script", list(DEMOS))
async def test_example_demo(script: str) -> None:
    """``python examples/SCRIPT demo``: a server and its clients in one process, every check passed."""
    result = await _run(str(EXAMPLES / script), "demo")
    assert result.returncode == 0, _explain(result)
    assert b"FAIL" not in result.stdout
    for line in DEMOS[script]:
        assert line in result.stdout, _explain(result)


async def test_admin_ui_demo() -> None:
    """examples/admin_ui.py demo: the demo server instrumented for the Admin UI, the page played by
    the trio_rooms client, and the page's own files served (after ``npm ci`` in tests/interop)."""
    if not (ROOT / "tests/interop/node_modules/@socket.io/admin-ui/ui/dist").is_dir():
        missing("@socket.io/admin-ui is missing: run `npm ci` in tests/interop")
    result = await _run(str(EXAMPLES / "admin_ui.py"), "demo")
    assert result.returncode == 0, _explain(result)
    assert b"FAIL" not in result.stdout
    assert b"ok   the page's _disconnect disconnected the user" in result.stdout
    assert b"ok   the page is served at /admin-ui/" in result.stdout
    assert b"admin demo: OK" in result.stdout


async def _read_url(process: trio.Process) -> str:
    """Read the server's stdout up to its "listening on ws://..." line and return the URL."""
    assert process.stdout is not None
    seen = b""
    while (match := URL_LINE.search(seen)) is None:
        chunk = await process.stdout.receive_some()
        if not chunk:
            raise AssertionError(f"the server exited before listening; stdout: {seen!r}")
        seen += chunk
    return match.group(1).decode()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_python_m_trio_rooms(tmp_path: Path, stop: signal.Signals) -> None:
    stderr_path = tmp_path / "server.stderr"
    with stderr_path.open("wb") as stderr, trio.fail_after(PROCESS_TIMEOUT):
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trio_rooms", "--host", "127.0.0.1", "--port", "0", "--metrics"],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            url = await _read_url(process)
            echo = await _run(str(EXAMPLES / "echo.py"), "client", "--url", url)
            assert echo.returncode == 0, _explain(echo)
            assert b"echo ack: ['hello'" in echo.stdout
            chat = await _run(str(EXAMPLES / "chat.py"), "demo", "--url", url)
            assert chat.returncode == 0, _explain(chat)
            assert b"chat demo: OK" in chat.stdout
            tour = await _run(str(EXAMPLES / "client.py"), "demo", "--url", url)
            assert tour.returncode == 0, _explain(tour)
            assert b"client demo: OK" in tour.stdout
            raw = await _run(str(EXAMPLES / "raw_client.py"), "client", "--url", url)
            assert raw.returncode == 0, _explain(raw)
            assert b"echo ack: ['hello'" in raw.stdout
            metrics = await request(int(url.rsplit(":", 1)[1]), "GET", "/metrics")
            assert metrics.status == 200
            assert re.search(r"^trio_rooms_deliveries_total [1-9]", metrics.text, re.MULTILINE), metrics.text
            # The chat page at / (tests/test_demo_page.py drives it in Chromium), with the bundle the
            # checkout has, or a 404 that says how to install it.
            port = int(url.rsplit(":", 1)[1])
            page = await request(port, "GET", "/")
            assert page.status == 200 and "<title>trio_rooms chat</title>" in page.text
            bundle = await request(port, "GET", "/socket.io.min.js")
            client_dist = find_client_dist()
            if client_dist is None:
                assert bundle.status == 404 and "npm ci --prefix examples/browser" in bundle.text
            else:
                assert (bundle.status, bundle.body) == (200, (client_dist / BUNDLE).read_bytes())
            process.send_signal(stop)
            code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
            assert process.stdout is not None
            await process.stdout.aclose()
    server_stderr = stderr_path.read_text()
    assert code == 0, server_stderr
    assert "Traceback" not in server_stderr, server_stderr
    assert f"{stop.name}: shutting down" in server_stderr


async def test_echo_client_fails_without_server() -> None:
    # A closed port: connecting fails, and the client says so with a non-zero exit code.
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    result = await _run(str(EXAMPLES / "echo.py"), "client", "--url", f"ws://127.0.0.1:{port}")
    assert result.returncode == 1, _explain(result)
    assert b"echo client failed" in result.stderr


@pytest.mark.parametrize("example", ["asgi_starlette", "asgi_quart_trio"])
async def test_asgi_example_under_hypercorn(example: str, tmp_path: Path) -> None:
    """``hypercorn -k trio examples/<example>.py:app`` (as examples/README.md says): the application's
    page and API beside trio_rooms on one port; an API route emits to a room; the chat demo's
    clients pass against it; SIGTERM stops it cleanly."""
    require_hypercorn()
    framework = {"asgi_starlette": "starlette", "asgi_quart_trio": "quart_trio"}[example]
    if importlib.util.find_spec(framework) is None:
        missing(f"{framework} is not installed (a test dependency)")
    log = tmp_path / "hypercorn.log"
    with trio.fail_after(2 * PROCESS_TIMEOUT):
        async with hypercorn(f"examples/{example}.py:app", cwd=ROOT, log=log) as server:
            page = await request(server.port, "GET", "/")
            assert page.status == 200 and "trio_rooms +" in page.text
            said: list[Any] = []
            heard = trio.Event()
            async with trio_rooms.open_client(server.url, auth={"name": "alice"}) as client:

                @client.on("said")
                async def on_said(message: Any) -> None:
                    said.append(message)
                    heard.set()

                joined = await client.emit_with_ack("join", "lobby", timeout=5)
                assert joined == {"rooms": ["lobby"]}
                assert (await request(server.port, "GET", "/api/rooms")).json() == {"lobby": 1}
                body = json.dumps({"room": "lobby", "text": "hi from the API"})
                answer = await request(server.port, "POST", "/api/say", body)
                assert (answer.status, answer.json()) == (200, {"ok": True})
                with trio.fail_after(5):
                    await heard.wait()
                assert said == [{"room": "lobby", "name": "api", "text": "hi from the API"}]
            chat = await _run(str(EXAMPLES / "chat.py"), "demo", "--url", server.url)
            assert chat.returncode == 0, _explain(chat)
            assert b"chat demo: OK" in chat.stdout
            assert await server.stop() == 0
    assert "Traceback" not in server.log_text(), server.log_text()
