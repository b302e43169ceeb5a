"""Hypercorn's trio worker as a real subprocess (``python -m hypercorn -k trio``) on 127.0.0.1, a free
port: what the ASGI tests serve their applications with, as a user does.

The process gets this checkout first on PYTHONPATH (so that it imports this trio_rooms), writes its log
to a file the test can read, and is stopped with SIGTERM (Hypercorn's graceful shutdown: open
connections get ``--graceful-timeout`` seconds, then the lifespan shutdown) or killed at the end.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

import trio_rooms
from helpers.interop_harness import INTEROP_DIR, Run, missing
from trio_rooms.engine import EngineServer

ROOT = Path(__file__).resolve().parent.parent.parent
READY = re.compile(r"Running on (http://127\.0\.0\.1:(\d+))")
START_TIMEOUT = 20.0  # seconds for Hypercorn to load the app and listen
STOP_TIMEOUT = 20.0  # seconds for a graceful shutdown (graceful timeout + lifespan shutdown)


def require_hypercorn() -> None:
    """Hypercorn with its trio worker importable by this interpreter, or skip (fail when CI=true)."""
    if importlib.util.find_spec("hypercorn") is None:
        missing("hypercorn is not installed: pip install 'hypercorn[trio]'")


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess that must import this checkout's trio_rooms."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1", **extra}


@dataclass
class Hypercorn:
    """A running Hypercorn process."""

    process: trio.Process
    url: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Ask for a graceful shutdown; return the exit code (killed after STOP_TIMEOUT)."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        with trio.move_on_after(STOP_TIMEOUT):
            return await self.process.wait()
        self.process.kill()
        with trio.CancelScope(shield=True):
            await self.process.wait()
        raise AssertionError(f"hypercorn did not stop within {STOP_TIMEOUT} s; log:\n{self.log_text()}")


def _read(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")


@asynccontextmanager
async def hypercorn(
    app: str, *, cwd: Path, log: Path, args: Sequence[str] = (), env: dict[str, str] | None = None
) -> AsyncIterator[Hypercorn]:
    """Serve ``app`` ("module:attribute", found from ``cwd``) with ``hypercorn -k trio`` on a free port."""
    command = [sys.executable, "-m", "hypercorn", "-k", "trio", "--bind", "127.0.0.1:0", *args, app]
    with log.open("wb") as sink:
        process = await trio.lowlevel.open_process(
            command, cwd=cwd, env=env or subprocess_env(), stdout=sink, stderr=subprocess.STDOUT
        )
    server: Hypercorn | None = None
    try:
        with trio.move_on_after(START_TIMEOUT):
            while server is None:
                match = READY.search(_read(log))
                if match is not None:
                    server = Hypercorn(process, match.group(1), log)
                elif process.returncode is not None or process.poll() is not None:
                    break
                else:
                    await trio.sleep(0.05)
        if server is None:
            raise AssertionError(f"hypercorn did not start ({' '.join(command)}); log:\n{_read(log)}")
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def serve_asgi(
    server: trio_rooms.Server | EngineServer, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``trio_rooms.ASGIApp(server)`` with Hypercorn's trio worker in this process (``hypercorn.trio
    .serve``, its lifespan included) on 127.0.0.1, a free port; report the port; serve until cancelled
    (a shutdown as the ASGI server's cancellation of its connections)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 0.5
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        # Hypercorn types ASGI messages as TypedDicts; trio_rooms (as Starlette) as mappings.
        app: Any = trio_rooms.ASGIApp(server)
        binds = await nursery.start(partial(serve, app, config))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))


async def run_against_asgi_app(argv: Callable[[str], list[str]], timeout: float, log: Path) -> Run:
    """Serve tests/interop/asgi_app.py under Hypercorn and run ``argv(url)`` in tests/interop."""
    async with hypercorn("asgi_app:app", cwd=INTEROP_DIR, log=log) as server:
        with trio.move_on_after(timeout) as scope:
            result = await trio.run_process(
                argv(server.url),
                cwd=INTEROP_DIR,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        await server.stop()
    if scope.cancelled_caught:
        return Run(-1, "", "", timed_out=True)
    return Run(
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
        timed_out=False,
    )
