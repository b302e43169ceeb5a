"""The demo's member lists and private messages (``trio_rooms.__main__``: ``add_member_lists``,
``add_private_messages``), the events the chat page uses, with Trio clients against the demo server on
127.0.0.1: the ``"members"`` list follows joins, leaves and disconnections (in its latest state,
bounded), a private message reaches only its target, and bad input gets an ``{error}`` ack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import trio_rooms
import trio_rooms.__main__ as demo
from trio_rooms.client import Client, open_client

TIMEOUT = 10.0  # seconds, for each test's I/O


@asynccontextmanager
async def demo_server() -> AsyncIterator[tuple[trio_rooms.Server, str]]:
    """The demo server (``build_demo_server``) on a free loopback port, and its URL."""
    server = demo.build_demo_server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        yield server, f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()


class Recorder:
    """The payloads of chosen events a client received, and a way to wait for one."""

    def __init__(self, client: Client, *events: str) -> None:
        self.seen: dict[str, list[Any]] = {event: [] for event in events}
        self.changed = trio.Event()
        for event in events:
            client.on(event)(self._recorder(event))

    def _recorder(self, event: str) -> Callable[[Any], Any]:
        async def record(payload: Any) -> None:
            self.seen[event].append(payload)
            self.changed.set()
            self.changed = trio.Event()
            await trio.lowlevel.checkpoint()

        return record

    async def wait_for(self, event: str, predicate: Callable[[Any], bool]) -> Any:
        """The first payload of ``event`` (already received or to come) for which ``predicate`` holds."""
        while True:
            for payload in self.seen[event]:
                if predicate(payload):
                    return payload
            await self.changed.wait()


def names(payload: dict[str, Any]) -> list[str]:
    return [member["name"] for member in payload["members"]]


def lobby_of(*expected: str) -> Callable[[Any], bool]:
    """A "members" payload of room "lobby" listing exactly ``expected``."""
    return lambda payload: payload["room"] == "lobby" and names(payload) == list(expected)


async def test_the_member_list_follows_joins_leaves_and_disconnections() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            demo_server() as (_, url),
            open_client(url, auth={"name": "alice"}) as alice,
            open_client(url, auth={"name": "carol"}) as carol,
        ):
            alice_seen = Recorder(alice, "members")
            assert await alice.emit_with_ack("join", "lobby") == {"rooms": ["lobby"]}
            first = await alice_seen.wait_for("members", lobby_of("alice"))
            assert first == {"room": "lobby", "members": [{"id": alice.id, "name": "alice"}], "count": 1}
            async with open_client(url, auth={"name": "bob"}) as bob:
                bob_seen = Recorder(bob, "members")
                await bob.emit_with_ack("join", "lobby")
                both = {
                    "room": "lobby",
                    "members": [{"id": alice.id, "name": "alice"}, {"id": bob.id, "name": "bob"}],
                    "count": 2,
                }
                assert await alice_seen.wait_for("members", lobby_of("alice", "bob")) == both
                assert await bob_seen.wait_for("members", lobby_of("alice", "bob")) == both
                # The request answers the same list, to a member only.
                assert await bob.emit_with_ack("members", "lobby") == both
                assert await carol.emit_with_ack("members", "lobby") == {"error": "join the room first"}
                assert await carol.emit_with_ack("members", carol.id) == {"error": "join the room first"}
                assert await carol.emit_with_ack("members", ["lobby"]) == {"error": "join the room first"}
                # A leave updates the room (the one who left is no longer sent its lists).
                alice_seen.seen["members"].clear()
                await bob.emit_with_ack("leave", "lobby")
                await alice_seen.wait_for("members", lobby_of("alice"))
                await bob.emit_with_ack("join", "lobby")
                await alice_seen.wait_for("members", lobby_of("alice", "bob"))
                alice_seen.seen["members"].clear()
            # bob disconnected: the room is told.
            assert await alice_seen.wait_for("members", lobby_of("alice"))
            assert await alice.emit_with_ack("members", "lobby") == first


async def test_a_burst_of_joins_ends_on_the_full_list() -> None:
    """Joins that come together: whatever lists went out on the way, the last one is complete."""
    with trio.fail_after(TIMEOUT):
        async with demo_server() as (_, url), open_client(url, auth={"name": "watcher"}) as watcher:
            seen = Recorder(watcher, "members")
            await watcher.emit_with_ack("join", "lobby")
            everyone = ["watcher", *(f"user{i}" for i in range(8))]
            async with trio.open_nursery() as nursery:
                joined = trio.Semaphore(0)
                leave = trio.Event()

                async def join(name: str) -> None:
                    async with open_client(url, auth={"name": name}) as client:
                        await client.emit_with_ack("join", "lobby")
                        joined.release()
                        await leave.wait()

                for name in everyone[1:]:
                    nursery.start_soon(join, name)
                for _ in everyone[1:]:
                    await joined.acquire()
                await seen.wait_for("members", lambda p: p["count"] == len(everyone))
                assert names(seen.seen["members"][-1]) == sorted(everyone)
                assert len(seen.seen["members"]) <= len(everyone)  # never more than one per change
                leave.set()
            await seen.wait_for("members", lobby_of("watcher"))


async def test_the_member_list_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "MAX_MEMBERS", 2)
    with trio.fail_after(TIMEOUT):
        async with (
            demo_server() as (_, url),
            open_client(url, auth={"name": "c"}) as c,
            open_client(url, auth={"name": "a"}) as a,
            open_client(url, auth={"name": "b"}) as b,
        ):
            for client in (a, b, c):
                await client.emit_with_ack("join", "lobby")
            answer = await c.emit_with_ack("members", "lobby")
            assert (names(answer), answer["count"]) == (["a", "b"], 3)


async def test_a_private_message_reaches_only_its_target() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            demo_server() as (_, url),
            open_client(url, auth={"name": "alice"}) as alice,
            open_client(url, auth={"name": "bob"}) as bob,
            open_client(url, auth={"name": "carol"}) as carol,
        ):
            seen = {
                name: Recorder(client, "private", "said") for name, client in [("bob", bob), ("carol", carol)]
            }
            for client in (alice, bob, carol):
                await client.emit_with_ack("join", "lobby")
            ack = await alice.emit_with_ack("private", {"to": bob.id, "text": "psst"})
            assert ack == {"ok": True, "to": {"id": bob.id, "name": "bob"}}
            message = await seen["bob"].wait_for("private", lambda _: True)
            assert message == {"from": alice.id, "name": "alice", "text": "psst"}
            # A marker said in the room after it: carol gets the marker, and no private message.
            await alice.emit_with_ack("say", {"room": "lobby", "text": "marker"})
            await seen["carol"].wait_for("said", lambda said: said["text"] == "marker")
            await seen["bob"].wait_for("said", lambda said: said["text"] == "marker")
            assert seen["carol"].seen["private"] == []
            assert seen["bob"].seen["private"] == [message]


async def test_a_private_message_needs_a_socket_of_the_namespace_sharing_a_room() -> None:
    with trio.fail_after(TIMEOUT):
        async with demo_server() as (server, url):

            @server.of("/elsewhere").on("connection")
            async def elsewhere(socket: trio_rooms.Socket) -> None:
                socket.join("lobby")
                await trio.lowlevel.checkpoint()

            async with (
                open_client(url, auth={"name": "alice"}) as alice,
                open_client(url, auth={"name": "bob"}) as bob,
                open_client(url, auth={"name": "dave"}) as dave,
                open_client(url, namespace="/elsewhere") as other,
            ):
                seen = Recorder(bob, "private")
                await alice.emit_with_ack("join", "lobby")
                await bob.emit_with_ack("join", "lobby")
                await dave.emit_with_ack("join", "cellar")
                text_error = {"error": f"text is a string of 1 to {demo.MAX_TEXT} characters"}
                target_error = {"error": "to is the id of a socket connected here"}
                cases: list[tuple[Any, dict[str, str]]] = [
                    ("just a string", text_error),
                    ({"to": bob.id}, text_error),
                    ({"to": bob.id, "text": ""}, text_error),
                    ({"to": bob.id, "text": 42}, text_error),
                    ({"to": bob.id, "text": "x" * (demo.MAX_TEXT + 1)}, text_error),
                    ({"text": "hi"}, target_error),
                    ({"to": ["not", "an", "id"], "text": "hi"}, target_error),
                    ({"to": "lobby", "text": "hi"}, target_error),  # a room is no socket
                    ({"to": "x" * (demo.MAX_SOCKET_ID + 1), "text": "hi"}, target_error),
                    ({"to": other.id, "text": "hi"}, target_error),  # a socket of another namespace
                    ({"to": alice.id, "text": "hi"}, {"error": "write to someone else"}),
                    ({"to": dave.id, "text": "hi"}, {"error": "you share no room with that socket"}),
                ]
                for message, error in cases:
                    assert await alice.emit_with_ack("private", message) == error, message
                # The longest text goes through; nothing refused above reached bob.
                longest = "x" * demo.MAX_TEXT
                assert (await alice.emit_with_ack("private", {"to": bob.id, "text": longest}))["ok"]
                received = await seen.wait_for("private", lambda _: True)
                assert received["text"] == longest
                assert len(seen.seen["private"]) == 1


async def test_a_socket_joins_a_bounded_number_of_chat_rooms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "MAX_ROOMS", 3)
    with trio.fail_after(TIMEOUT):
        async with demo_server() as (server, url), open_client(url, auth={"name": "dan"}) as dan:
            for room in ("a", "b", "c"):
                assert "error" not in await dan.emit_with_ack("join", room)
            assert await dan.emit_with_ack("join", "d") == {"error": "a socket is in at most 3 chat rooms"}
            assert await dan.emit_with_ack("join", "a") == {"rooms": ["a", "b", "c"]}  # already in: fine
            await dan.emit_with_ack("leave", "a")
            assert await dan.emit_with_ack("join", "d") == {"rooms": ["b", "c", "d"]}
            assert len(server.of("/").adapter.rooms) == 4  # three chat rooms and dan's own
