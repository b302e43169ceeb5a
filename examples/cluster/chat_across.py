"""A client of the cluster example: one chat user per member server, one room, messages crossing servers.

Usage::

    python examples/cluster/chat_across.py http://127.0.0.1:3001 http://127.0.0.1:3002 http://127.0.0.1:3003

Connects one user per URL (alice, bob, carol, ... with ``trio_rooms.open_client``), all in room
"lobby", plus "eve" on the first server in room "elsewhere". Each lobby user says one line; every
lobby user must receive every line exactly once, whichever server it was said on, and eve none.
Prints each delivery (``carol@node-1 got "hi from alice" (said on py-1)``) and ``cluster demo: OK``;
exits 0 when every check passed, 1 otherwise (or after 15 s).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import trio

import trio_rooms

__all__ = ["User", "run_demo"]

NAMES: Final = ("alice", "bob", "carol", "dave", "frank", "grace")
ROOM: Final = "lobby"
TIMEOUT: Final = 15.0
QUIET: Final = 0.3  # seconds to wait for duplicates once everything expected arrived


@dataclass
class User:
    """A connected chat user and what it received."""

    name: str
    client: trio_rooms.Client
    server: str = "?"
    said: list[dict[str, Any]] = field(default_factory=list)
    welcomed: trio.Event = field(default_factory=trio.Event)
    expected: int = 0  # the number of "said" events awaited
    all_said: trio.Event = field(default_factory=trio.Event)


@asynccontextmanager
async def open_user(url: str, name: str) -> AsyncIterator[User]:
    """A user connected to ``url`` (WebSocket, no reconnection) that records "said" events."""
    async with trio_rooms.open_client(
        url, auth={"name": name}, transports=("websocket",), reconnection=False
    ) as c:
        user = User(name, c)

        @c.on("welcome")
        async def welcome(info: dict[str, Any]) -> None:
            user.server = str(info.get("server"))
            user.welcomed.set()

        @c.on("said")
        async def said(message: dict[str, Any]) -> None:
            user.said.append(message)
            if len(user.said) >= user.expected:
                user.all_said.set()

        yield user


async def run_demo(urls: Sequence[str]) -> list[str]:
    """Run the scenario; return the failed checks (empty when all passed)."""
    failures: list[str] = []
    async with AsyncExitStack() as stack:
        lobby = [await stack.enter_async_context(open_user(url, NAMES[i])) for i, url in enumerate(urls)]
        eve = await stack.enter_async_context(open_user(urls[0], "eve"))
        for user in [*lobby, eve]:
            await user.welcomed.wait()
        servers = {user.name: user.server for user in lobby}
        for user in lobby:
            user.expected = len(lobby)
            assert await user.client.emit_with_ack("join", ROOM) == {"rooms": [ROOM]}
        assert await eve.client.emit_with_ack("join", "elsewhere") == {"rooms": ["elsewhere"]}
        for user in lobby:
            answer = await user.client.emit_with_ack("say", {"room": ROOM, "text": f"hi from {user.name}"})
            if answer != {"ok": True}:
                failures.append(f"{user.name} could not say: {answer}")
        for user in lobby:
            await user.all_said.wait()
        await trio.sleep(QUIET)
        expected = sorted(f"hi from {user.name}" for user in lobby)
        for user in lobby:
            for message in user.said:
                print(
                    f'{user.name}@{user.server} got "{message["text"]}" (said on {servers[message["name"]]})'
                )
            got = sorted(message["text"] for message in user.said)
            if got != expected:
                failures.append(f"{user.name}@{user.server} got {got}, expected {expected} (once each)")
        if eve.said:
            failures.append(f"eve (room elsewhere) got {eve.said}")
    return failures


async def main_async(urls: Sequence[str]) -> int:
    try:
        with trio.fail_after(TIMEOUT):
            failures = await run_demo(urls)
    except trio.TooSlowError:
        failures = [f"not everything arrived within {TIMEOUT} s"]
    except (trio_rooms.Disconnected, trio_rooms.AckTimeout, AssertionError, OSError) as exc:
        failures = [f"{type(exc).__name__}: {exc}"]
    for failure in failures:
        print(f"FAIL {failure}")
    print("cluster demo: OK" if not failures else "cluster demo: FAILED")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    urls = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(urls) <= len(NAMES):
        print(
            f"usage: python examples/cluster/chat_across.py URL [URL ...] (1 to {len(NAMES)})",
            file=sys.stderr,
        )
        return 2
    return trio.run(main_async, urls)


if __name__ == "__main__":
    sys.exit(main())
