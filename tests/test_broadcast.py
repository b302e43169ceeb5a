"""BroadcastOperator (immutable selection, argument checks, emit / emit_with_ack / socket operations),
RemoteSocket, and the parent namespace's adapter, on fake sockets."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest
import trio
import trio.testing
from helpers.fakes import FakeNamespace, FakeSocket

from trio_rooms import AckTimeout, BroadcastOperator, RemoteSocket
from trio_rooms.adapter.base import SocketId
from trio_rooms.adapter.parent import FamilyView, ParentAdapter
from trio_rooms.protocol import RESERVED_EVENTS


def setup() -> tuple[FakeNamespace, dict[str, FakeSocket]]:
    ns = FakeNamespace("/chat")
    sockets = {
        "a": ns.connect("a", ["red", "blue"]),
        "b": ns.connect("b", ["red"]),
        "c": ns.connect("c", ["blue", "green"]),
        "d": ns.connect("d"),
    }
    return ns, sockets


def who_got(sockets: dict[str, FakeSocket]) -> dict[str, list[tuple[str, list[Any]]]]:
    return {name: events for name, socket in sockets.items() if (events := socket.events())}


# -- the selection ----------------------------------------------------------------------------------


async def test_operator_is_immutable() -> None:
    ns, sockets = setup()
    everyone = ns.op
    red = everyone.to("red")
    red_or_green = red.to("green")
    red_not_a = red.except_("a")
    volatile_red = red.volatile
    local_red = red.local
    timed_red = red.timeout(5)
    for derived in (red, red_or_green, red_not_a, volatile_red, local_red, timed_red):
        assert isinstance(derived, BroadcastOperator)
    assert (
        len({id(op) for op in (everyone, red, red_or_green, red_not_a, volatile_red, local_red, timed_red)})
        == 7
    )

    with trio.fail_after(5):
        await red.emit("m", 1)
    assert who_got(sockets) == {"a": [("m", [1])], "b": [("m", [1])]}
    assert sockets["a"].volatile_flags == [False]

    with trio.fail_after(5):
        await everyone.emit("all")
    assert set(who_got(sockets)) == {"a", "b", "c", "d"}

    with trio.fail_after(5):
        await red_or_green.emit("rg")
        await red_not_a.emit("rna")
    assert who_got(sockets) == {"a": [("rg", [])], "b": [("rg", []), ("rna", [])], "c": [("rg", [])]}
    assert red.options.rooms == {"red"} and not red.options.except_rooms
    assert (
        not red.options.flags.volatile and not red.options.flags.local and red.options.flags.timeout is None
    )


async def test_in_is_an_alias_of_to() -> None:
    ns, sockets = setup()
    with trio.fail_after(5):
        await ns.op.in_("blue").in_(["green"]).emit("m")
    assert set(who_got(sockets)) == {"a", "c"}


async def test_a_str_is_one_room_and_a_list_several() -> None:
    ns, sockets = setup()
    sockets["r"] = ns.connect("r")  # "red" must not be read as the rooms r, e, d
    sockets["e"] = ns.connect("e")
    with trio.fail_after(5):
        await ns.op.to("red").emit("str")
    assert set(who_got(sockets)) == {"a", "b"}
    with trio.fail_after(5):
        await ns.op.to(["red", "green"]).emit("list")
        await ns.op.to(("d", "e")).emit("tuple")
        await ns.op.to(room for room in ["green"]).emit("generator")
        await ns.op.to({"b"}).emit("set")
    assert who_got(sockets) == {
        "a": [("list", [])],
        "b": [("list", []), ("set", [])],
        "c": [("list", []), ("generator", [])],
        "d": [("tuple", [])],
        "e": [("tuple", [])],
    }


async def test_except_wins_and_accumulates() -> None:
    ns, sockets = setup()
    with trio.fail_after(5):
        await ns.op.to(["red", "blue"]).except_("blue").emit("m1")
        await ns.op.except_("red").except_(["c"]).emit("m2")
        await ns.op.except_("b").to("red").emit("m3")
    assert who_got(sockets) == {"b": [("m1", [])], "d": [("m2", [])], "a": [("m3", [])]}


@pytest.mark.parametrize("bad", [[1], ["ok", None], [("a", "b")], b"ab"], ids=repr)
def test_non_str_room_is_a_type_error(bad: Any) -> None:
    ns, _ = setup()
    with pytest.raises(TypeError, match="room is a str"):
        ns.op.to(bad)
    with pytest.raises(TypeError, match="room is a str"):
        ns.op.in_(bad)
    with pytest.raises(TypeError, match="room is a str"):
        ns.op.except_(bad)


@pytest.mark.parametrize("seconds", [0, -1, 0.0, math.nan, -math.inf])
def test_timeout_must_be_positive(seconds: float) -> None:
    ns, _ = setup()
    with pytest.raises(ValueError, match="positive"):
        ns.op.timeout(seconds)


# -- emit -------------------------------------------------------------------------------------------


async def test_emit_carries_event_args_and_namespace() -> None:
    ns, sockets = setup()
    args = ("text", 1, 2.5, True, None, {"k": ["v", {"n": 0}]}, [1, [2]], b"\x00bin")
    with trio.fail_after(5):
        await ns.op.to("green").emit("payload", *args)
    (packet,) = sockets["c"].packets()
    assert packet.nsp == "/chat"
    assert packet.ack_id is None
    assert packet.data == ["payload", *args]
    assert who_got(sockets) == {}


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
async def test_reserved_event_names_are_refused(name: str) -> None:
    ns, sockets = setup()
    with trio.fail_after(5):
        with pytest.raises(ValueError, match="reserved"):
            await ns.op.emit(name)
        with pytest.raises(ValueError, match="reserved"):
            await ns.op.timeout(1).emit_with_ack(name)
    assert who_got(sockets) == {}


async def test_non_str_event_name_is_a_type_error() -> None:
    ns, sockets = setup()
    with trio.fail_after(5), pytest.raises(TypeError):
        await ns.op.emit(42)  # type: ignore[arg-type]
    assert who_got(sockets) == {}


async def test_volatile_operator_passes_the_flag() -> None:
    ns, sockets = setup()
    with trio.fail_after(5):
        await ns.op.volatile.to("red").emit("v")
        await ns.op.to("red").emit("nv")
        await ns.op.to("red").volatile.local.emit("vl")
    assert sockets["a"].volatile_flags == [True, False, True]
    assert sockets["b"].volatile_flags == [True, False, True]
    assert sockets["c"].volatile_flags == []


async def test_local_flag_still_reaches_local_sockets() -> None:
    ns, sockets = setup()
    with trio.fail_after(5):
        await ns.op.local.to("blue").emit("l")
    assert set(who_got(sockets)) == {"a", "c"}


# -- emit_with_ack ----------------------------------------------------------------------------------


async def test_emit_with_ack_without_timeout_is_a_type_error() -> None:
    ns, sockets = setup()
    with trio.fail_after(5), pytest.raises(TypeError, match="timeout"):
        await ns.op.to("red").emit_with_ack("q")
    assert who_got(sockets) == {}


async def test_emit_with_ack_returns_each_answer(autojump_clock: trio.testing.MockClock) -> None:
    ns, sockets = setup()
    answers: list[Any] = []

    async def ask() -> None:
        answers.extend(await ns.op.to("blue").timeout(5).emit_with_ack("q", 7))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            for name, value in (("a", None), ("c", ("x", 2))):
                packet = await sockets[name].next_packet()
                assert packet.data == ["q", 7] and packet.nsp == "/chat"
                sockets[name].answer(packet.ack_id, value)
    assert sorted(answers, key=repr) == [("x", 2), None]
    assert trio.current_time() < 5


async def test_emit_with_ack_timeout_has_partial_responses(autojump_clock: trio.testing.MockClock) -> None:
    ns, sockets = setup()
    caught: list[AckTimeout] = []

    async def ask() -> None:
        try:
            await ns.op.to("red").timeout(2.5).emit_with_ack("q")
        except AckTimeout as exc:
            caught.append(exc)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            packet = await sockets["b"].next_packet()
            sockets["b"].answer(packet.ack_id, {"ok": True})
    (exc,) = caught
    assert exc.responses == [{"ok": True}]
    assert trio.current_time() == pytest.approx(2.5)


# -- operations on the selected sockets -------------------------------------------------------------


async def test_fetch_sockets_through_the_operator() -> None:
    ns, sockets = setup()
    sockets["c"].data["n"] = 3
    with trio.fail_after(5):
        found = await ns.op.to("blue").except_("a").fetch_sockets()
        everyone = await ns.op.fetch_sockets()
    (remote,) = found
    assert isinstance(remote, RemoteSocket)
    assert (remote.id, set(remote.rooms), remote.data) == ("c", {"c", "blue", "green"}, {"n": 3})
    assert remote.handshake.auth == {"token": "c"}
    assert sorted(s.id for s in everyone) == ["a", "b", "c", "d"]


async def test_sockets_join_and_leave() -> None:
    ns, sockets = setup()
    with trio.fail_after(5):
        await ns.op.to("red").sockets_join("vip")
        await ns.op.to("green").sockets_join(["vip", "x"])
    assert {name: set(s.rooms) for name, s in sockets.items()} == {
        "a": {"a", "red", "blue", "vip"},
        "b": {"b", "red", "vip"},
        "c": {"c", "blue", "green", "vip", "x"},
        "d": {"d"},
    }
    with trio.fail_after(5):
        await ns.op.to("vip").except_("b").sockets_leave(["vip", "red"])
        await ns.op.sockets_leave("x")
    assert {name: set(s.rooms) for name, s in sockets.items()} == {
        "a": {"a", "blue"},
        "b": {"b", "red", "vip"},
        "c": {"c", "blue", "green"},
        "d": {"d"},
    }
    assert set(ns.adapter.rooms) == {"a", "b", "c", "d", "red", "blue", "green", "vip"}
    with pytest.raises(TypeError):
        await ns.op.sockets_join([1])  # type: ignore[list-item]


async def test_disconnect_sockets_through_the_operator() -> None:
    ns, sockets = setup()
    with trio.fail_after(5):
        await ns.op.to("red").disconnect_sockets()
        await ns.op.to("green").disconnect_sockets(close=True)
    assert sockets["a"].disconnect_calls == [False]
    assert sockets["b"].disconnect_calls == [False]
    assert sockets["c"].disconnect_calls == [True]
    assert sockets["d"].disconnect_calls == []
    assert set(ns.sockets) == {"d"}
    assert dict(ns.adapter.rooms) == {"d": {"d"}}


async def test_remote_socket_actions() -> None:
    ns, sockets = setup()
    with trio.fail_after(5):
        (remote,) = await ns.op.to("b").fetch_sockets()
        await remote.emit("private", "hi")
        await remote.join(["club", "red"])
        await remote.leave("red")
    assert who_got(sockets) == {"b": [("private", ["hi"])]}
    assert set(sockets["b"].rooms) == {"b", "club"}
    assert remote.rooms == {"b", "red"}, "a RemoteSocket is a snapshot"
    with trio.fail_after(5):
        await remote.disconnect(close=True)
    assert sockets["b"].disconnect_calls == [True]
    assert "b" not in ns.sockets
    with trio.fail_after(5):
        await remote.emit("after", 1)  # the socket is gone: nobody gets it
    assert who_got(sockets) == {}


# -- a parent namespace's adapter -------------------------------------------------------------------


class FakeParent:
    """The part of ParentNamespace that ParentAdapter uses: ``name`` and ``children``."""

    def __init__(self, *children: FakeNamespace) -> None:
        self.name = "<parent>"
        self.children = {child.name: child for child in children}
        self.adapter = ParentAdapter(cast(FamilyView, self))

    @property
    def op(self) -> BroadcastOperator:
        return BroadcastOperator(self.adapter)


def family() -> tuple[FakeParent, dict[str, FakeSocket]]:
    one, two = FakeNamespace("/room-1"), FakeNamespace("/room-2")
    sockets = {
        "1a": one.connect("1a", ["red"]),
        "1b": one.connect("1b"),
        "2a": two.connect("2a", ["red"]),
    }
    return FakeParent(one, two), sockets


async def test_parent_emit_reaches_every_child_in_its_own_namespace() -> None:
    parent, sockets = family()
    with trio.fail_after(5):
        await parent.op.emit("all", 1)
        await parent.op.to("red").emit("red")
    # FakeSocket.events checks that each packet names the recipient's own namespace.
    assert who_got(sockets) == {
        "1a": [("all", [1]), ("red", [])],
        "1b": [("all", [1])],
        "2a": [("all", [1]), ("red", [])],
    }


async def test_parent_emit_with_ack_merges_children(autojump_clock: trio.testing.MockClock) -> None:
    parent, sockets = family()
    caught: list[AckTimeout] = []

    async def ask() -> None:
        try:
            await parent.op.timeout(3).emit_with_ack("q")
        except AckTimeout as exc:
            caught.append(exc)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            for name in ("1a", "2a"):
                packet = await sockets[name].next_packet()
                sockets[name].answer(packet.ack_id, name)
    (exc,) = caught
    assert sorted(exc.responses) == ["1a", "2a"]


async def test_parent_adapter_has_no_sockets_of_its_own() -> None:
    parent, _ = family()
    with pytest.raises(TypeError):
        parent.adapter.add_all(SocketId("x"), ["r"])
    with pytest.raises(TypeError):
        parent.adapter.remove_all(SocketId("x"))
    assert dict(parent.adapter.rooms) == {} and dict(parent.adapter.sids) == {}
    with trio.fail_after(5):
        found = await parent.op.fetch_sockets()
    assert sorted(s.id for s in found) == ["1a", "1b", "2a"]
