"""Interop under ASGI: the stock clients against tests/interop/asgi_app.py (the interop app as a
``trio_rooms.ASGIApp``, beside an application route) served by Hypercorn's trio worker in a real
subprocess (``python -m hypercorn -k trio``, 127.0.0.1, a free port).

The same scripts and checks as test_interop_js.py and test_interop_python.py run against the native
server: the JavaScript socket.io-client in its websocket, default (polling, then the upgrade) and
polling modes, and python-socketio's AsyncClient in its default and websocket modes.

Needs hypercorn (a test dependency), node with ``npm ci`` in tests/interop, python-socketio: without
them the tests skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import trio
from helpers.asgi_harness import require_hypercorn, run_against_asgi_app
from helpers.interop_harness import INTEROP_DIR, check_run, missing

SCRIPT_TIMEOUT = 60.0  # seconds: the scripts bound themselves; this is the backstop
JS_MODES = ["websocket", "default", "polling"]
JS_MIN_OK = 21  # as test_interop_js.py: 20 checks common to every mode, plus the mode's own
PY_MODES = ["default", "websocket"]
PY_MIN_OK = 22  # as test_interop_python.py


@pytest.fixture(scope="session")
def node() -> str:
    require_hypercorn()
    node = shutil.which("node")
    if node is None:
        missing("node is not on PATH (install Node.js >= 18)")
    if not (INTEROP_DIR / "node_modules" / "socket.io-client").is_dir():
        missing(f"socket.io-client is missing: run `npm ci` in {INTEROP_DIR}")
    return node


@pytest.fixture(scope="session")
def python_socketio() -> None:
    require_hypercorn()
    for module, package in (("socketio", "python-socketio"), ("aiohttp", "aiohttp")):
        if importlib.util.find_spec(module) is None:
            missing(f"{package} is not installed: pip install 'python-socketio[asyncio-client]'")


@pytest.mark.parametrize("mode", JS_MODES)
def test_js_client_under_hypercorn(node: str, mode: str, tmp_path: Path) -> None:
    # A plain test around trio.run, as test_interop_js.py: the report is the list of failing checks.
    run = trio.run(
        run_against_asgi_app,
        lambda url: [node, "js_client.mjs", url, mode],
        SCRIPT_TIMEOUT,
        tmp_path / "hypercorn.log",
    )
    check_run(f"js_client.mjs {mode} (ASGI)", run, min_ok=JS_MIN_OK, timeout=SCRIPT_TIMEOUT)


@pytest.mark.usefixtures("python_socketio")
@pytest.mark.parametrize("mode", PY_MODES)
def test_python_socketio_client_under_hypercorn(mode: str, tmp_path: Path) -> None:
    run = trio.run(
        run_against_asgi_app,
        lambda url: [sys.executable, "py_client.py", url, mode],
        SCRIPT_TIMEOUT,
        tmp_path / "hypercorn.log",
    )
    check_run(f"py_client.py {mode} (ASGI)", run, min_ok=PY_MIN_OK, timeout=SCRIPT_TIMEOUT)
