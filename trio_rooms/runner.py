"""Run a server until Ctrl-C or SIGTERM, as a command line program does: ``trio_rooms.run``.

``run(server)`` is the one line a script ends with; ``serve_until_signal`` is the same inside a Trio
program of your own. The first SIGINT (Ctrl-C) or SIGTERM shuts the server down gracefully (each
socket is disconnected with reason "server shutting down" and its handlers run within the server's
``teardown_timeout``); a second one during that shutdown exits the process at once, as uvicorn and
hypercorn do. Neither prints a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from functools import partial
from typing import Final

import trio

from ._util import unwrap_group
from .server import Server

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "run", "serve_until_signal", "server_url"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 3000
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def server_url(host: str, port: int) -> str:
    """The URL a Socket.IO client is given (``io("http://...")``) for a server on ``host``:``port``."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _exit_now(signum: int, title: str) -> None:
    """The second signal: leave the process at once, with the shell's code for a death by that signal."""
    name = signal.Signals(signum).name
    print(f"{title}: {name} again: exiting without waiting for the shutdown", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + signum)


async def serve_until_signal(
    server: Server, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, title: str = "trio_rooms"
) -> None:
    """Serve ``server`` on ``host``:``port`` until SIGINT (Ctrl-C) or SIGTERM, then shut down gracefully.

    Once listening it prints one line to stdout, ``<title> listening on http://host:port (path
    /socket.io/); Ctrl-C to stop``, with the real port when ``port`` is 0. The first signal prints
    ``<title>: SIGINT: shutting down ...`` to stderr and cancels ``server.serve``: each socket is
    disconnected with reason "server shutting down", its handlers run within ``teardown_timeout``,
    then this returns. A second signal during that shutdown ends the process at once
    (``os._exit(128 + signal number)``: 130 for Ctrl-C), for a handler that takes too long.

    It must run in the main thread (Trio receives signals there). Raises ``OSError`` (bare, not in an
    exception group) when it cannot listen (the address is in use, the host unknown).
    """
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals, unwrap_group():  # bare errors, as serve's
        async with trio.open_nursery() as nursery:
            stop = trio.CancelScope()

            async def serve(*, task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
                with stop:
                    await server.serve(host, port, task_status=task_status)
                nursery.cancel_scope.cancel()  # shut down: stop waiting for signals

            listeners: list[trio.SocketListener] = await nursery.start(serve)
            bound_port = listeners[0].socket.getsockname()[1]
            print(
                f"{title} listening on {server_url(host, bound_port)} (path {server.path}); Ctrl-C to stop",
                flush=True,
            )
            await _on_signals(signals, stop, title)


async def _on_signals(signals: AsyncIterator[int], stop: trio.CancelScope, title: str) -> None:
    """The first signal cancels ``stop`` (the graceful shutdown); a second exits the process."""
    async for signum in signals:
        if stop.cancel_called:
            _exit_now(signum, title)
        name = signal.Signals(signum).name
        print(f"{title}: {name}: shutting down (Ctrl-C again to exit at once)", file=sys.stderr, flush=True)
        stop.cancel()


def run(
    server: Server, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, title: str = "trio_rooms"
) -> None:
    """Serve ``server`` on ``host``:``port`` until Ctrl-C or SIGTERM; return after a graceful shutdown.

    ``trio.run(serve_until_signal, server, host, port)`` for the end of a script::

        trio_rooms.run(server, "127.0.0.1", 3000)

    A Ctrl-C (or SIGTERM) shuts the server down and returns, with no ``KeyboardInterrupt``
    traceback; a second one during the shutdown exits the process at once (code 130 for Ctrl-C). See
    ``serve_until_signal`` for what is printed. Raises ``OSError`` when it cannot listen.
    """
    try:
        with unwrap_group():  # a group of one (the listen's OSError, a KeyboardInterrupt): that one
            trio.run(partial(serve_until_signal, server, host, port, title=title))
    except KeyboardInterrupt:  # a Ctrl-C before the signal receiver was installed
        pass
