"""A tour of the Trio client, ``trio_rooms.open_client``, against the demo's events.

Usage::

    python -m trio_rooms --port 3000 &                            # the demo server
    python examples/client.py demo --url http://127.0.0.1:3000    # this tour against it
    python examples/client.py demo                                # against a server of its own

Two users, alice and bob (the name is the CONNECT ``auth`` payload), each an ``open_client``:

1. alice emits ``"echo"`` with an ack (``emit_with_ack``) and receives the echoed event too;
2. alice joins room "lobby" (``"join"``, acked with her rooms);
3. bob connects straight over WebSocket (``transports=("websocket",)``) and joins "lobby": alice
   receives the room's ``"joined"`` broadcast;
4. bob says a line (``"say"``): both receive the ``"said"`` broadcast;
5. bob leaves (his ``async with`` block ends: a clean disconnect): alice receives ``"left"``.

Each step prints ``ok <check>`` or ``FAIL <check>: ...``; it exits 0 when every check passed, 1
otherwise (or after 15 s). Handlers put what they receive on a Trio memory channel, and the tour
reads the next one under a deadline: the usual way to wait for a server's event in a script or a test.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, Final

import trio

import trio_rooms
from trio_rooms.__main__ import build_demo_server

__all__ = ["run_tour"]

TOUR_TIMEOUT: Final = 15.0
WAIT: Final = 5.0  # seconds for one broadcast to arrive


class Checks:
    """Prints each check as ``ok <name>`` or ``FAIL <name>: <detail>`` and remembers failures."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def equal(self, name: str, got: object, expected: object) -> None:
        if got == expected:
            print(f"ok   {name}")
        else:
            self.failed.append(name)
            print(f"FAIL {name}: got {got!r}, expected {expected!r}")


async def run_tour(url: str) -> bool:
    """The tour against the demo server at ``url``; True when every check passed."""
    checks = Checks()
    # What alice's handlers receive, in order: (event, payload). Bounded, as every queue should be.
    alice_inbox, alice_events = trio.open_memory_channel[tuple[str, Any]](32)
    bob_inbox, bob_events = trio.open_memory_channel[tuple[str, Any]](32)

    async with trio_rooms.open_client(url, auth={"name": "alice"}, reconnection=False) as alice:
        print(f"alice connected as {alice.id} over {alice.transport}")

        @alice.on("echo")
        async def alice_echo(*args: Any) -> None:
            await alice_inbox.send(("echo", list(args)))

        @alice.on("joined")
        async def alice_joined(message: dict[str, Any]) -> None:
            await alice_inbox.send(("joined", message))

        @alice.on("said")
        async def alice_said(message: dict[str, Any]) -> None:
            await alice_inbox.send(("said", message))

        @alice.on("left")
        async def alice_left(message: dict[str, Any]) -> None:
            await alice_inbox.send(("left", message))

        # 1. An event with an ack: the return value of the server's handler comes back.
        ack = await alice.emit_with_ack("echo", "hello", timeout=WAIT)
        checks.equal("the echo is acked", ack, "hello")
        with trio.fail_after(WAIT):
            checks.equal("the echo comes back as an event", await alice_events.receive(), ("echo", ["hello"]))

        # 2. Join a room: the server acks with the rooms she is in, and tells the room.
        checks.equal("alice joins lobby", await alice.emit_with_ack("join", "lobby"), {"rooms": ["lobby"]})
        with trio.fail_after(WAIT):
            joined = await alice_events.receive()
        checks.equal("the room hears alice join", joined, ("joined", {"room": "lobby", "name": "alice"}))

        # 3. A second user, straight over WebSocket.
        bob_client = trio_rooms.Client(
            url, auth={"name": "bob"}, transports=("websocket",), reconnection=False
        )

        @bob_client.on("said")  # registered before connecting: nothing can arrive unhandled
        async def bob_said(message: dict[str, Any]) -> None:
            await bob_inbox.send(("said", message))

        async with bob_client as bob:
            checks.equal("bob is on WebSocket", bob.transport, "websocket")
            checks.equal("bob joins lobby", await bob.emit_with_ack("join", "lobby"), {"rooms": ["lobby"]})
            with trio.fail_after(WAIT):
                joined = await alice_events.receive()
            checks.equal("alice hears bob join", joined, ("joined", {"room": "lobby", "name": "bob"}))

            # 4. A broadcast to the room reaches every member, the sender included.
            said = {"room": "lobby", "name": "bob", "text": "hi, alice"}
            ack = await bob.emit_with_ack("say", {"room": "lobby", "text": "hi, alice"})
            checks.equal("bob's line is acked", ack, {"ok": True})
            with trio.fail_after(WAIT):
                checks.equal("alice hears bob's line", await alice_events.receive(), ("said", said))
                checks.equal("bob hears his own line", await bob_events.receive(), ("said", said))
        # 5. bob's block ended: he disconnected, and his room was told why.
        with trio.fail_after(WAIT):
            left = await alice_events.receive()
        checks.equal(
            "alice hears bob leave",
            left,
            ("left", {"room": "lobby", "name": "bob", "reason": "client namespace disconnect"}),
        )
        print(f"alice ends over {alice.transport}")  # polling at first; upgraded to WebSocket by now
    return not checks.failed


async def demo(url: str | None) -> int:
    """The ``demo`` command: 0 when every check passed, 1 otherwise."""
    with trio.move_on_after(TOUR_TIMEOUT):
        try:
            if url is not None:
                ok = await run_tour(url)
            else:
                async with trio.open_nursery() as nursery:
                    server = build_demo_server()  # the events of python -m trio_rooms
                    listeners: list[trio.SocketListener] = await nursery.start(server.serve, "127.0.0.1", 0)
                    ok = await run_tour(f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}")
                    nursery.cancel_scope.cancel()  # graceful shutdown of the server
        except (OSError, ValueError, trio.TooSlowError, trio_rooms.TrioRoomsError) as exc:
            print(f"client demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print("client demo: OK" if ok else "client demo: FAILED")
        return 0 if ok else 1
    print(f"client demo: not done within {TOUR_TIMEOUT} s", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a tour of the trio_rooms client")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="two users against a demo server, with checks")
    demo_parser.add_argument("--url", help="a running demo server (default: start one in this process)")
    args = parser.parse_args(argv)
    return trio.run(demo, args.url)


if __name__ == "__main__":
    sys.exit(main())
