"""What the interop tests share: serving tests/interop/app.py, running a client script against it,
and turning its ``ok <check>`` / ``FAIL <check>: detail`` lines into one report by name."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import trio

import trio_rooms

INTEROP_DIR = Path(__file__).resolve().parent.parent / "interop"


def missing(reason: str) -> NoReturn:
    """A prerequisite is missing: skip locally, fail in CI (CI=true)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"interop prerequisites missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def build_server() -> trio_rooms.Server:
    """The interop app (tests/interop/app.py, imported by path: tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("trio_rooms_interop_app", INTEROP_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    server = module.build_server()
    assert isinstance(server, trio_rooms.Server)
    return server


@dataclass(frozen=True)
class Run:
    """What a client script did."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


async def run_against_app(
    argv: Callable[[str], list[str]], timeout: float, server: trio_rooms.Server | None = None
) -> Run:
    """Serve the app (or ``server``) on 127.0.0.1 port 0 and run ``argv(url)`` in tests/interop, within
    ``timeout``."""
    if server is None:
        server = build_server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        try:
            with trio.move_on_after(timeout) as scope:
                result = await trio.run_process(
                    argv(f"http://127.0.0.1:{port}"),
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


def check_run(label: str, run: Run, *, min_ok: int, timeout: float) -> None:
    """Fail the test with every failing check by name (or the timeout, or missing checks)."""
    if run.timed_out:
        pytest.fail(f"{label} did not finish within {timeout} s (killed)", pytrace=False)
    lines = run.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL ")]
    passed = [line for line in lines if line.startswith("ok ")]
    problems: list[str] = []
    if failed:
        problems.append(f"{len(failed)} failing check(s):\n" + "\n".join(f"  {line}" for line in failed))
    if run.returncode != 0:
        problems.append(f"{label} exited with {run.returncode}")
    if len(passed) < min_ok:
        problems.append(f"only {len(passed)} ok line(s), expected at least {min_ok}")
    if problems:
        tail = "\n".join(run.stderr.splitlines()[-30:])
        report = [*problems, "--- stdout ---", run.stdout.rstrip(), "--- stderr (tail) ---", tail]
        pytest.fail("\n".join(report), pytrace=False)
