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

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
import trio

import trio_rooms

INTEROP_DIR = Path(__file__).parent / "interop"
NODE_MODULES = INTEROP_DIR / "node_modules"
SCRIPT_TIMEOUT = 60.0  # seconds: the script bounds itself (40 s overall); this is the backstop


@dataclass(frozen=True)
class NodeEnv:
    node: str
    interop_dir: Path


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


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"interop prerequisites missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_env() -> NodeEnv:
    """node and the installed client packages, or skip (fail when CI=true)."""
    node = shutil.which("node")
    if node is None:
        _missing("node is not on PATH (install Node.js >= 18)")
    if not (NODE_MODULES / "socket.io-client").is_dir():
        _missing(f"{NODE_MODULES}/socket.io-client is missing: run `npm ci` in {INTEROP_DIR}")
    return NodeEnv(node=node, interop_dir=INTEROP_DIR)


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


def _report(script: Script, returncode: int, stdout: str, stderr: str) -> str | None:
    """Return why the run failed (every FAIL line by name), or None when it passed."""
    lines = stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL ")]
    passed = [line for line in lines if line.startswith("ok ")]
    problems: list[str] = []
    if failed:
        problems.append(f"{len(failed)} failing check(s):\n" + "\n".join(f"  {line}" for line in failed))
    if returncode != 0:
        problems.append(f"{script.label} exited with {returncode}")
    if len(passed) < script.min_ok:
        problems.append(f"only {len(passed)} ok line(s), expected at least {script.min_ok}")
    if not problems:
        return None
    tail = "\n".join(stderr.splitlines()[-30:])
    return "\n".join([*problems, "--- stdout ---", stdout.rstrip(), "--- stderr (tail) ---", tail])


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


async def _run_script(node_env: NodeEnv, script: Script) -> Run:
    """Serve the interop app on 127.0.0.1 port 0 and run ``script`` against it."""
    server = build_server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        try:
            with trio.move_on_after(SCRIPT_TIMEOUT) as scope:
                result = await trio.run_process(
                    [node_env.node, script.name, f"http://127.0.0.1:{port}", script.mode],
                    cwd=node_env.interop_dir,
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


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.mode for s in SCRIPTS])
def test_js_client(node_env: NodeEnv, script: Script) -> None:
    # A plain test around trio.run (not an async test): pytest.fail then raises outside any nursery,
    # so the report is the list of failing checks, not an exception group around it.
    run = trio.run(_run_script, node_env, script)
    if run.timed_out:
        pytest.fail(f"{script.label} did not finish within {SCRIPT_TIMEOUT} s (killed)", pytrace=False)
    failure = _report(script, run.returncode, run.stdout, run.stderr)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
