"""Echo: a trio_rooms server with an "echo" event, and a client for it on ``trio_rooms.open_client``.

Usage::

    python examples/echo.py server [--host 127.0.0.1] [--port 3000]
    python examples/echo.py client --url http://127.0.0.1:3000
    python examples/echo.py demo          # both in one process, on a free port

The server side is ``trio_rooms.__main__.add_echo`` (the demo of ``python -m trio_rooms`` serves the
same event): ``"echo", *args`` is emitted back to the sender, and acked with the same arguments.

The client connects with ``trio_rooms.open_client`` (long-polling, then the upgrade to WebSocket),
emits "echo" with an ack and checks that both the echoed event and the ack carry what it sent (a
str, a nested object and bytes, which travel as a binary attachment). It exits 0 on success, 1 on a
mismatch, an error or a 10 s timeout. ``examples/raw_client.py`` does the same with the protocol
framed by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, Final

import trio

import trio_rooms
from trio_rooms.__main__ import add_echo, configure_logging, run_server

__all__ = ["CLIENT_TIMEOUT", "build_server", "run_echo_client"]

CLIENT_TIMEOUT: Final = 10.0
ECHO_ARGS: Final[tuple[Any, ...]] = ("hello", {"n": 1, "nested": [1, 2.5, None, True]}, b"\x00\xffbytes")


async def run_echo_client(url: str, *, args: Sequence[Any] = ECHO_ARGS) -> bool:
    """Emit "echo" with ``args`` and an ack; check the echoed event and the ack. True when both match."""
    expected = list(args)
    echoed: list[list[Any]] = []
    got_echo = trio.Event()
    client = trio_rooms.Client(url, reconnection=False)

    @client.on("echo")  # registered before connecting: nothing can arrive unhandled
    async def on_echo(*event_args: Any) -> None:
        echoed.append(list(event_args))
        got_echo.set()

    async with client:
        print(f"connected to {url} as {client.id} ({client.transport})")
        ack = await client.emit_with_ack("echo", *args, timeout=CLIENT_TIMEOUT)
        # An ack of one argument is that value, of several a tuple (of none: None).
        acked = list(ack) if isinstance(ack, tuple) else [] if ack is None else [ack]
        print(f"echo ack: {acked!r}")
        await got_echo.wait()
        print(f"echo event: {echoed[0]!r}")
    ok = acked == expected and echoed[0] == expected
    if not ok:
        print(f"MISMATCH: sent {expected!r}", file=sys.stderr)
    return ok


async def client_main(url: str) -> int:
    """The ``client`` command: 0 on a matching echo, 1 otherwise (error, mismatch or timeout)."""
    with trio.move_on_after(CLIENT_TIMEOUT):
        try:
            return 0 if await run_echo_client(url) else 1
        except (OSError, ValueError, trio_rooms.TrioRoomsError) as exc:
            print(f"echo client failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print(f"echo client: no complete echo within {CLIENT_TIMEOUT} s", file=sys.stderr)
    return 1


def build_server() -> trio_rooms.Server:
    """A Server whose main namespace serves the "echo" event."""
    server = trio_rooms.Server()
    add_echo(server.of("/"))
    return server


async def demo() -> int:
    """The ``demo`` command: the server on a free loopback port, the client against it, then stop."""
    async with trio.open_nursery() as nursery:
        listeners: list[trio.SocketListener] = await nursery.start(build_server().serve, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        code = await client_main(f"http://127.0.0.1:{port}")
        nursery.cancel_scope.cancel()  # graceful shutdown of the server
    print("echo demo: OK" if code == 0 else "echo demo: FAILED")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="trio_rooms echo example")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="serve the echo event until Ctrl-C")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=3000)
    client = commands.add_parser("client", help="echo once against a running server")
    client.add_argument("--url", default="http://127.0.0.1:3000")
    commands.add_parser("demo", help="server and client in one process")
    args = parser.parse_args(argv)
    if args.command == "server":
        configure_logging("info")
        return run_server(build_server(), args.host, args.port, title="echo example")
    if args.command == "client":
        return trio.run(client_main, args.url)
    return trio.run(demo)


if __name__ == "__main__":
    sys.exit(main())
