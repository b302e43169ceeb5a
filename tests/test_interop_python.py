"""Interop with python-socketio's asyncio client: tests/interop/py_client.py against our server.

The script uses ``socketio.AsyncClient`` (asyncio, so it runs in a subprocess of its own) in two
modes: ``default`` (the client's defaults: long-polling, then the upgrade to WebSocket) and
``websocket`` (``transports=["websocket"]``). It prints ``ok <check>`` or ``FAIL <check>: <detail>``
per check and exits non-zero on any failure; this test runs it in each mode against the interop app
(tests/interop/app.py) served in-process on 127.0.0.1 port 0 and reports every failing check by name.

Needs python-socketio with its asyncio client extra (``python-socketio[asyncio-client]``, a test
dependency): without it the tests skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
import trio

import trio_rooms

INTEROP_DIR = Path(__file__).parent / "interop"
SCRIPT = "py_client.py"
SCRIPT_TIMEOUT = 60.0  # seconds: the script bounds itself (40 s overall); this is the backstop
MIN_OK = 22  # the number of checks the script has: fewer "ok" lines means checks went missing
MODES = ["default", "websocket"]


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"interop prerequisites missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def python_socketio() -> None:
    """python-socketio and aiohttp importable by this interpreter, or skip (fail when CI=true)."""
    for module, package in (("socketio", "python-socketio"), ("aiohttp", "aiohttp")):
        if importlib.util.find_spec(module) is None:
            _missing(f"{package} is not installed: pip install 'python-socketio[asyncio-client]'")


def _load_app() -> ModuleType:
    """Import tests/interop/app.py by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("trio_rooms_interop_app", INTEROP_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build_server() -> trio_rooms.Server:
    server = _load_app().build_server()
    assert isinstance(server, trio_rooms.Server)
    return server


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


def _report(mode: str, run: Run) -> str | None:
    """Return why the run failed (every FAIL line by name), or None when it passed."""
    lines = run.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL ")]
    passed = [line for line in lines if line.startswith("ok ")]
    problems: list[str] = []
    if failed:
        problems.append(f"{len(failed)} failing check(s):\n" + "\n".join(f"  {line}" for line in failed))
    if run.returncode != 0:
        problems.append(f"{SCRIPT} {mode} exited with {run.returncode}")
    if len(passed) < MIN_OK:
        problems.append(f"only {len(passed)} ok line(s), expected at least {MIN_OK}")
    if not problems:
        return None
    tail = "\n".join(run.stderr.splitlines()[-30:])
    return "\n".join([*problems, "--- stdout ---", run.stdout.rstrip(), "--- stderr (tail) ---", tail])


async def _run_script(mode: str) -> Run:
    """Serve the interop app on 127.0.0.1 port 0 and run the script against it in ``mode``."""
    server = build_server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        try:
            with trio.move_on_after(SCRIPT_TIMEOUT) as scope:
                result = await trio.run_process(
                    [sys.executable, SCRIPT, f"http://127.0.0.1:{port}", mode],
                    cwd=INTEROP_DIR,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        finally:
            nursery.cancel_scope.cancel()
    if scope.cancelled_caught:
        return Run(-1, "", "", timed_out=True)
    return Run(
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
        timed_out=False,
    )


@pytest.mark.usefixtures("python_socketio")
@pytest.mark.parametrize("mode", MODES)
def test_python_socketio_client(mode: str) -> None:
    # A plain test around trio.run (not an async test): pytest.fail then raises outside any nursery,
    # so the report is the list of failing checks, not an exception group around it.
    run = trio.run(_run_script, mode)
    if run.timed_out:
        pytest.fail(f"{SCRIPT} {mode} did not finish within {SCRIPT_TIMEOUT} s (killed)", pytrace=False)
    failure = _report(mode, run)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
