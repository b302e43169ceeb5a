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
import sys

import pytest
import trio
from helpers.interop_harness import check_run, missing, run_against_app

SCRIPT = "py_client.py"
SCRIPT_TIMEOUT = 60.0  # seconds: the script bounds itself (40 s overall); this is the backstop
MIN_OK = 22  # the number of checks the script has: fewer "ok" lines means checks went missing
MODES = ["default", "websocket"]


@pytest.fixture(scope="session")
def python_socketio() -> None:
    """python-socketio and aiohttp importable by this interpreter, or skip (fail when CI=true)."""
    for module, package in (("socketio", "python-socketio"), ("aiohttp", "aiohttp")):
        if importlib.util.find_spec(module) is None:
            missing(f"{package} is not installed: pip install 'python-socketio[asyncio-client]'")


@pytest.mark.usefixtures("python_socketio")
@pytest.mark.parametrize("mode", MODES)
def test_python_socketio_client(mode: str) -> None:
    # A plain test around trio.run (not an async test): pytest.fail then raises outside any nursery,
    # so the report is the list of failing checks, not an exception group around it.
    run = trio.run(run_against_app, lambda url: [sys.executable, SCRIPT, url, mode], SCRIPT_TIMEOUT)
    check_run(f"{SCRIPT} {mode}", run, min_ok=MIN_OK, timeout=SCRIPT_TIMEOUT)
