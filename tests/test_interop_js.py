"""Interop with the real JavaScript socket.io-client: node scripts in tests/interop/ against our server.

``js_client.mjs`` runs its checks over one transport mode: ``websocket`` (``transports:
["websocket"]``), ``default`` (the client's defaults: long-polling, then the upgrade to WebSocket) and
``polling`` (``transports: ["polling"]``). It prints ``ok <check>`` or ``FAIL <check>: <detail>`` per
check and exits non-zero on any failure; this test runs it in every mode against the interop app
(tests/interop/app.py) served in-process on 127.0.0.1 port 0 and reports every failing check by name.

Needs node and ``npm ci`` in tests/interop: without them the tests skip, except in CI (CI=true),
where they fail.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest
import trio
from helpers.interop_harness import INTEROP_DIR, check_run, missing, run_against_app

NODE_MODULES = INTEROP_DIR / "node_modules"
SCRIPT_TIMEOUT = 60.0  # seconds: the scripts bound themselves (25 s overall); this is the backstop


@dataclass(frozen=True)
class Script:
    name: str
    mode: str  # the transport mode, the script's second argument
    min_ok: int  # the number of checks the script has: fewer "ok" lines means checks went missing

    @property
    def label(self) -> str:
        return f"{self.name} {self.mode}"


# 20 checks common to every mode, plus one about the transport of the mode (the upgrade, in "default").
SCRIPTS = [
    Script("js_client.mjs", "websocket", min_ok=21),
    Script("js_client.mjs", "default", min_ok=21),
    Script("js_client.mjs", "polling", min_ok=21),
]


@pytest.fixture(scope="session")
def node() -> str:
    """node with the installed client packages, or skip (fail when CI=true)."""
    node = shutil.which("node")
    if node is None:
        missing("node is not on PATH (install Node.js >= 18)")
    if not (NODE_MODULES / "socket.io-client").is_dir():
        missing(f"{NODE_MODULES}/socket.io-client is missing: run `npm ci` in {INTEROP_DIR}")
    return node


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.mode for s in SCRIPTS])
def test_js_client(node: str, script: Script) -> None:
    # A plain test around trio.run (not an async test): pytest.fail then raises outside any nursery,
    # so the report is the list of failing checks, not an exception group around it.
    run = trio.run(run_against_app, lambda url: [node, script.name, url, script.mode], SCRIPT_TIMEOUT)
    check_run(script.label, run, min_ok=script.min_ok, timeout=SCRIPT_TIMEOUT)
