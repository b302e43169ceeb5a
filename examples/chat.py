"""Rooms chat: join / leave / say, with departures announced to the rooms of a leaving socket.

Usage::

    python examples/chat.py server [--host 127.0.0.1] [--port 3000]
    python examples/chat.py demo [--url http://127.0.0.1:3000]

The server side is ``trio_rooms.__main__.add_chat`` (``python -m trio_rooms`` serves it too):

- ``"join", room`` joins the room and tells it ``"joined", {room, name}`` (the joiner included);
- ``"leave", room`` tells the room ``"left", {room, name, reason: "leave"}`` and leaves it;
- ``"say", {room, text}`` sends ``"said", {room, name, text}`` to the room, the sender included
  (only a member may speak in a room);
- on disconnect, the ``"disconnecting"`` handler (rooms still there) sends ``"left"`` with the
  disconnect reason to each of the socket's rooms.

``demo`` runs three ``trio_rooms`` clients (``open_chat_user``: a ``trio_rooms.Client`` that records
the chat events it receives) against a server of its own on a free loopback port, or against
``--url``. alice and bob join room "a", carol joins "b"; it checks that what is said in "a" reaches
alice and bob exactly once and carol never, and that bob's departure reaches alice and not carol. It
exits 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

import trio_rooms
from trio_rooms.__main__ import add_chat, configure_logging, run_server

__all__ = ["ChatUser", "build_server", "open_chat_user", "run_chat_demo"]

DEMO_TIMEOUT: Final = 15.0
ACK_TIMEOUT: Final = 5.0
CHAT_EVENTS: Final = ("joined", "left", "said")

Event = tuple[str, list[Any]]
"""A received event: its name and its arguments."""


def build_server() -> trio_rooms.Server:
    """A Server whose main namespace serves the room chat."""
    server = trio_rooms.Server()
    add_chat(server.of("/"))
    return server


class ChatUser:
    """A chat user: its ``trio_rooms.Client`` and every chat event it received, in arrival order."""

    def __init__(self, client: trio_rooms.Client) -> None:
        self.client = client
        self.events: list[Event] = []
        self._arrived = trio.Event()
        for event in CHAT_EVENTS:
            client.on(event)(self._recorder(event))

    def _recorder(self, event: str) -> Callable[..., Any]:
        async def record(*args: Any) -> None:
            self.events.append((event, list(args)))
            self._arrived.set()  # wake whoever waits, then arm a new one
            self._arrived = trio.Event()

        return record

    async def call(self, event: str, *args: Any) -> Any:
        """Emit ``event`` and return the server's ack."""
        return await self.client.emit_with_ack(event, *args, timeout=ACK_TIMEOUT)

    async def wait_until(self, done: Callable[[list[Event]], bool]) -> None:
        """Wait until ``done(self.events)`` is true."""
        while not done(self.events):
            await self._arrived.wait()


@asynccontextmanager
async def open_chat_user(url: str, name: str) -> AsyncIterator[ChatUser]:
    """A user named ``name`` connected to the chat at ``url``; it leaves (DISCONNECT) when the block ends."""
    client = trio_rooms.Client(url, auth={"name": name}, reconnection=False)
    user = ChatUser(client)  # the handlers are registered before connecting
    async with client:
        yield user


def said(events: list[Event]) -> list[tuple[str, str, str]]:
    """The ``(room, name, text)`` of every "said" event received."""
    return [(a[0]["room"], a[0]["name"], a[0]["text"]) for name, a in events if name == "said"]


def named(events: list[Event], event: str) -> list[dict[str, Any]]:
    """The payloads of every ``event`` received."""
    return [args[0] for name, args in events if name == event]


class DemoError(Exception):
    """The scenario could not go on."""


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


async def say(user: ChatUser, room: str, text: str) -> None:
    """Say ``text`` in ``room`` and wait for the ack (so the broadcast has been handed to every member)."""
    ack = await user.call("say", {"room": room, "text": text})
    if ack != {"ok": True}:
        raise DemoError(f"say {text!r} in {room!r} refused: {ack!r}")


async def run_chat_demo(url: str) -> bool:
    """The demo's scenario against the chat server at ``url``; True when every check passed."""
    checks = Checks()
    async with (
        open_chat_user(url, "alice") as alice,
        open_chat_user(url, "carol") as carol,
    ):
        async with open_chat_user(url, "bob") as bob:
            # Each ack comes after the server handed the broadcasts to every recipient, and each
            # connection receives in order: a duplicate or stray copy would arrive before the
            # marker message a client then waits for.
            checks.equal("alice joins a", await alice.call("join", "a"), {"rooms": ["a"]})
            checks.equal("bob joins a", await bob.call("join", "a"), {"rooms": ["a"]})
            checks.equal("carol joins b", await carol.call("join", "b"), {"rooms": ["b"]})
            checks.equal(
                "say needs membership",
                await carol.call("say", {"room": "a", "text": "let me in"}),
                {"error": "join the room first"},
            )
            await say(alice, "a", "hello a")
            await say(bob, "a", "bye a")  # the marker for alice and bob
            await say(carol, "b", "hello b")  # the marker for carol
            await alice.wait_until(lambda events: ("a", "bob", "bye a") in said(events))
            await bob.wait_until(lambda events: ("a", "bob", "bye a") in said(events))
            await carol.wait_until(lambda events: ("b", "carol", "hello b") in said(events))
            in_a = [("a", "alice", "hello a"), ("a", "bob", "bye a")]
            checks.equal("alice got room a's messages, once each", said(alice.events), in_a)
            checks.equal("bob got room a's messages, once each", said(bob.events), in_a)
            checks.equal("carol got room b's message only", said(carol.events), [("b", "carol", "hello b")])
            checks.equal(
                "room a saw its joins", [j["name"] for j in named(alice.events, "joined")], ["alice", "bob"]
            )
            checks.equal(
                "carol saw only her join", [j["name"] for j in named(carol.events, "joined")], ["carol"]
            )
            # bob leaves with a namespace DISCONNECT when this block ends.
        await alice.wait_until(lambda events: bool(named(events, "left")))
        checks.equal(
            "alice hears bob leave",
            named(alice.events, "left"),
            [{"room": "a", "name": "bob", "reason": "client namespace disconnect"}],
        )
        await say(carol, "b", "still here")  # the marker: a "left" for carol would come first
        await carol.wait_until(lambda events: ("b", "carol", "still here") in said(events))
        checks.equal("carol hears no departure from a", named(carol.events, "left"), [])
        checks.equal("alice leaves a", await alice.call("leave", "a"), {"rooms": []})
        checks.equal(
            "alice's leave was told to room a",
            named(alice.events, "left")[-1],
            {"room": "a", "name": "alice", "reason": "leave"},
        )
        for name, client in (("alice", alice), ("bob", bob), ("carol", carol)):
            print(f"{name} received: {client.events!r}")
    return not checks.failed


async def demo(url: str | None) -> int:
    """The ``demo`` command: 0 when every check passed, 1 otherwise."""
    with trio.move_on_after(DEMO_TIMEOUT):
        try:
            if url is not None:
                ok = await run_chat_demo(url)
            else:
                async with trio.open_nursery() as nursery:
                    listeners: list[trio.SocketListener] = await nursery.start(
                        build_server().serve, "127.0.0.1", 0
                    )
                    port = listeners[0].socket.getsockname()[1]
                    ok = await run_chat_demo(f"http://127.0.0.1:{port}")
                    nursery.cancel_scope.cancel()  # graceful shutdown of the server
        except (OSError, ValueError, trio_rooms.TrioRoomsError, DemoError) as exc:
            print(f"chat demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print("chat demo: OK" if ok else "chat demo: FAILED")
        return 0 if ok else 1
    print(f"chat demo: not done within {DEMO_TIMEOUT} s", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="trio_rooms rooms chat example")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="serve the chat until Ctrl-C")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=3000)
    demo_parser = commands.add_parser("demo", help="three clients against a server, with checks")
    demo_parser.add_argument("--url", help="a running chat server (default: start one in this process)")
    args = parser.parse_args(argv)
    if args.command == "server":
        configure_logging("info")
        return run_server(build_server(), args.host, args.port, title="chat example")
    return trio.run(demo, args.url)


if __name__ == "__main__":
    sys.exit(main())
