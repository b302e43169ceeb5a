"""InMemoryAdapter: membership (rooms and sids as exact inverses), room events, and the operations on
the sockets a BroadcastOptions selects (delivery, acks, fetch/add/del/disconnect), on fake sockets."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
import trio.testing
from helpers.fakes import FakeNamespace, FakeSocket

from trio_rooms import AckTimeout
from trio_rooms.adapter import memory
from trio_rooms.adapter.base import Adapter, BroadcastFlags, BroadcastOptions, SocketId
from trio_rooms.adapter.memory import YIELD_EVERY
from trio_rooms.engine.pacing import BACKLOG
from trio_rooms.protocol import Packet, PacketType
from trio_rooms.protocol.encoded import Encoded

Log = list[tuple[Any, ...]]


def assert_inverse(adapter: Adapter) -> None:
    """``rooms`` and ``sids`` describe the same (room, id) pairs and hold no empty entry."""
    by_room = {(room, sid) for room, members in adapter.rooms.items() for sid in members}
    by_sid = {(room, sid) for sid, rooms in adapter.sids.items() for room in rooms}
    assert by_room == by_sid
    assert all(adapter.rooms.values()), "an empty room was kept"
    assert all(adapter.sids.values()), "a socket id with no room was kept"


def record_events(adapter: Adapter) -> Log:
    log: Log = []
    for event in ("create-room", "join-room", "leave-room", "delete-room"):
        adapter.on(event, lambda *args, event=event: log.append((event, *args)))
    return log


def opts(
    rooms: Iterable[str] = (),
    except_rooms: Iterable[str] = (),
    *,
    volatile: bool = False,
    timeout: float | None = None,
) -> BroadcastOptions:
    return BroadcastOptions(
        frozenset(rooms), frozenset(except_rooms), BroadcastFlags(volatile=volatile, timeout=timeout)
    )


def event(name: str, *args: Any) -> Packet:
    return Packet(PacketType.EVENT, "/", [name, *args])


def sid(name: str) -> SocketId:
    return SocketId(name)


# -- membership -----------------------------------------------------------------------------------


def test_connect_puts_socket_in_its_own_room() -> None:
    ns = FakeNamespace()
    a = ns.connect("a")
    assert dict(ns.adapter.rooms) == {"a": {"a"}}
    assert dict(ns.adapter.sids) == {"a": {"a"}}
    assert a.rooms == {"a"}
    assert_inverse(ns.adapter)


def test_add_all_remove_remove_all_keep_inverses() -> None:
    ns = FakeNamespace()
    adapter = ns.adapter
    ns.connect("a", ["r1", "r2"])
    ns.connect("b", ["r2", "r3"])
    assert dict(adapter.rooms) == {"a": {"a"}, "b": {"b"}, "r1": {"a"}, "r2": {"a", "b"}, "r3": {"b"}}
    assert dict(adapter.sids) == {"a": {"a", "r1", "r2"}, "b": {"b", "r2", "r3"}}
    assert_inverse(adapter)

    adapter.remove(sid("a"), "r2")
    assert adapter.rooms["r2"] == {"b"}
    assert adapter.sids[sid("a")] == {"a", "r1"}
    assert_inverse(adapter)

    adapter.remove_all(sid("b"))
    assert dict(adapter.rooms) == {"a": {"a"}, "r1": {"a"}}
    assert dict(adapter.sids) == {"a": {"a", "r1"}}
    assert_inverse(adapter)

    adapter.remove_all(sid("a"))
    assert dict(adapter.rooms) == {}
    assert dict(adapter.sids) == {}


def test_rooms_and_sids_are_read_only() -> None:
    ns = FakeNamespace()
    ns.connect("a", ["r"])
    with pytest.raises(TypeError):
        ns.adapter.rooms["x"] = set()  # type: ignore[index]
    with pytest.raises(TypeError):
        ns.adapter.sids[sid("x")] = set()  # type: ignore[index]


def test_joining_twice_and_leaving_unknown_change_nothing() -> None:
    ns = FakeNamespace()
    adapter = ns.adapter
    ns.connect("a", ["r"])
    adapter.add_all(sid("a"), ["r", "r", "a"])
    adapter.remove(sid("a"), "not-a-room")
    adapter.remove(sid("nobody"), "r")
    adapter.remove_all(sid("nobody"))
    assert dict(adapter.rooms) == {"a": {"a"}, "r": {"a"}}
    assert dict(adapter.sids) == {"a": {"a", "r"}}


def test_empty_rooms_are_deleted_at_once_own_room_included() -> None:
    ns = FakeNamespace()
    adapter = ns.adapter
    ns.connect("a", ["r"])
    adapter.remove(sid("a"), "r")
    assert "r" not in adapter.rooms
    adapter.remove(sid("a"), "a")
    assert "a" not in adapter.rooms
    assert "a" not in adapter.sids
    assert dict(adapter.rooms) == {}


def test_socket_id_room_can_be_left_and_rejoined() -> None:
    ns = FakeNamespace()
    a = ns.connect("a")
    a.leave("a")
    assert a.rooms == set()
    a.join("a")
    assert a.rooms == {"a"}
    assert_inverse(ns.adapter)


def test_add_all_with_no_rooms_creates_no_entry() -> None:
    ns = FakeNamespace()
    ns.adapter.add_all(sid("ghost"), [])
    assert "ghost" not in ns.adapter.sids
    assert_inverse(ns.adapter)


@pytest.mark.parametrize("seed", range(8))
def test_random_membership_changes_match_a_model(seed: int) -> None:
    rng = random.Random(seed)
    ns = FakeNamespace()
    adapter = ns.adapter
    ids = [sid(f"s{i}") for i in range(6)]
    room_names = [f"r{i}" for i in range(5)] + list(ids)
    model: dict[SocketId, set[str]] = {}
    for _ in range(300):
        who = rng.choice(ids)
        action = rng.random()
        if action < 0.5:
            rooms = rng.sample(room_names, rng.randint(1, 3))
            adapter.add_all(who, rooms)
            model.setdefault(who, set()).update(rooms)
        elif action < 0.9:
            room = rng.choice(room_names)
            adapter.remove(who, room)
            model.get(who, set()).discard(room)
        else:
            adapter.remove_all(who)
            model.pop(who, None)
        model = {s: r for s, r in model.items() if r}
        assert {s: set(r) for s, r in adapter.sids.items()} == model
        assert_inverse(adapter)


# -- room events ----------------------------------------------------------------------------------


def test_room_events_in_order() -> None:
    ns = FakeNamespace()
    log = record_events(ns.adapter)
    a = ns.connect("a")
    assert log == [("create-room", "a"), ("join-room", "a", "a")]
    log.clear()

    a.join("r")
    b = ns.connect("b", ["r"])
    assert log == [
        ("create-room", "r"),
        ("join-room", "r", "a"),
        ("create-room", "b"),
        ("join-room", "b", "b"),
        ("join-room", "r", "b"),
    ]
    log.clear()

    a.leave("r")
    assert log == [("leave-room", "r", "a")]
    log.clear()
    b.leave("r")
    assert log == [("leave-room", "r", "b"), ("delete-room", "r")]


def test_remove_all_emits_leave_before_delete_for_each_room() -> None:
    ns = FakeNamespace()
    ns.connect("a", ["r1", "r2"])
    ns.connect("b", ["r2"])
    log = record_events(ns.adapter)
    ns.adapter.remove_all(sid("a"))
    assert sorted(log) == sorted(
        [
            ("leave-room", "a", "a"),
            ("delete-room", "a"),
            ("leave-room", "r1", "a"),
            ("delete-room", "r1"),
            ("leave-room", "r2", "a"),
        ]
    )
    for room in ("a", "r1"):
        assert log.index(("leave-room", room, "a")) < log.index(("delete-room", room))


def test_join_of_member_and_leave_of_non_member_emit_nothing() -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    ns.connect("b")
    log = record_events(ns.adapter)
    a.join("r")
    a.join(["a", "r"])
    a.leave("elsewhere")
    ns.adapter.remove(sid("b"), "r")
    ns.adapter.remove_all(sid("nobody"))
    assert log == []


def test_listener_that_raises_does_not_break_membership(caplog: pytest.LogCaptureFixture) -> None:
    ns = FakeNamespace()
    adapter = ns.adapter

    def boom(*args: Any) -> None:
        raise RuntimeError("listener failed")

    for name in ("create-room", "join-room", "leave-room", "delete-room"):
        adapter.on(name, boom)
    log = record_events(adapter)  # registered after the failing listeners: still called
    a = ns.connect("a", ["r"])
    assert a.rooms == {"a", "r"}
    a.leave("r")
    assert "r" not in adapter.rooms
    adapter.remove_all(a.id)
    assert dict(adapter.rooms) == {} and dict(adapter.sids) == {}
    assert ("create-room", "r") in log and ("delete-room", "r") in log
    assert "listener failed" in caplog.text


def test_on_rejects_unknown_event_and_non_callable() -> None:
    adapter = FakeNamespace().adapter
    with pytest.raises(ValueError, match="unknown adapter event"):
        adapter.on("join", lambda *args: None)
    with pytest.raises(TypeError):
        adapter.on("join-room", "not callable")  # type: ignore[arg-type]


# -- run --------------------------------------------------------------------------------------------


async def test_run_reports_started_and_stays_until_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    adapter = FakeNamespace().adapter
    finished = False

    async def run_it(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal finished
        await adapter.run(task_status=task_status)
        finished = True

    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_it)
            await trio.sleep(500)
            assert not finished
            nursery.cancel_scope.cancel()
    assert not finished


# -- delivery: who gets what ------------------------------------------------------------------------

OVERLAPS = {
    "three rooms share members": (
        {"a": ["r1", "r2", "r3"], "b": ["r1", "r2"], "c": ["r2", "r3"], "d": ["r3"], "e": []},
        ["r1", "r2", "r3"],
    ),
    "nested rooms": ({"a": ["big", "small"], "b": ["big"], "c": ["big", "small"], "d": []}, ["big", "small"]),
    "disjoint plus shared": ({"a": ["x"], "b": ["y"], "c": ["x", "y"], "d": ["z"]}, ["x", "y"]),
    "room and socket id": ({"a": ["r"], "b": ["r"], "c": []}, ["r", "a", "c"]),
    "unknown room in the list": ({"a": ["r"], "b": []}, ["r", "nope"]),
    "identical rooms": ({"a": ["p", "q"], "b": ["p", "q"], "c": []}, ["p", "q"]),
}


@pytest.mark.parametrize(("members", "targets"), OVERLAPS.values(), ids=OVERLAPS.keys())
async def test_union_reaches_each_member_exactly_once(
    members: dict[str, list[str]], targets: list[str]
) -> None:
    ns = FakeNamespace()
    sockets = {name: ns.connect(name, rooms) for name, rooms in members.items()}
    with trio.fail_after(5):
        await ns.adapter.broadcast(event("hi", 1, {"x": [2]}), opts(targets))
    expected = {name for name, rooms in members.items() if set(targets) & ({name} | set(rooms))}
    for name, socket in sockets.items():
        got = socket.events()
        if name in expected:
            assert got == [("hi", [1, {"x": [2]}])], name
        else:
            assert got == [], name


async def test_broadcast_to_nobody() -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    with trio.fail_after(5):
        await ns.adapter.broadcast(event("hi"), opts(["empty", "also-empty"]))
        await ns.adapter.broadcast(event("hi"), opts(["r"], ["r"]))
        FakeNamespace()  # a namespace with no sockets at all
        await FakeNamespace().adapter.broadcast(event("hi"), opts())
    assert a.events() == []
    assert a.volatile_flags == []


async def test_except_wins_over_to() -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["room", "vip"])
    b = ns.connect("b", ["room"])
    c = ns.connect("c", ["vip"])
    with trio.fail_after(5):
        await ns.adapter.broadcast(event("hi"), opts(["room", "vip"], ["vip"]))
    assert b.event_names() == ["hi"]
    assert a.event_names() == []
    assert c.event_names() == []


async def test_socket_id_as_room_in_except() -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    b = ns.connect("b", ["r"])
    c = ns.connect("c", ["r"])
    with trio.fail_after(5):
        await ns.adapter.broadcast(event("hi"), opts(["r"], ["b"]))
    assert a.event_names() == ["hi"] and c.event_names() == ["hi"]
    assert b.event_names() == []


async def test_broadcast_to_all_with_except() -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["muted"])
    b = ns.connect("b")
    c = ns.connect("c", ["muted"])
    d = ns.connect("d")
    with trio.fail_after(5):
        await ns.adapter.broadcast(event("all"), opts())
        await ns.adapter.broadcast(event("most"), opts((), ["muted", "d"]))
    assert a.event_names() == ["all"]
    assert c.event_names() == ["all"]
    assert b.event_names() == ["all", "most"]
    assert d.event_names() == ["all"]


async def test_broadcast_to_all_reaches_a_socket_that_left_its_own_room() -> None:
    ns = FakeNamespace()
    a = ns.connect("a")
    a.leave("a")
    with trio.fail_after(5):
        await ns.adapter.broadcast(event("all"), opts())
    assert a.event_names() == ["all"]


async def test_order_per_recipient_across_many_broadcasts() -> None:
    ns = FakeNamespace()
    rooms = {"a": ["even", "all"], "b": ["odd", "all"], "c": ["even", "odd"], "d": ["all"]}
    sockets = {name: ns.connect(name, r, capacity=500) for name, r in rooms.items()}
    sent: list[tuple[int, str]] = []
    with trio.fail_after(5):
        for i in range(200):
            room = ("even", "odd", "all")[i % 3]
            await ns.adapter.broadcast(event("n", i), opts([room]))
            sent.append((i, room))
    for name, socket in sockets.items():
        expected = [i for i, room in sent if room in rooms[name]]
        assert [args[0] for _name, args in socket.events()] == expected, name


async def test_binary_arguments_reach_every_recipient() -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    b = ns.connect("b", ["r"])
    with trio.fail_after(5):
        await ns.adapter.broadcast(event("blob", b"\x00\x01", {"more": b"\xff"}), opts(["r"]))
    for socket in (a, b):
        assert socket.events() == [("blob", [b"\x00\x01", {"more": b"\xff"}])]


@pytest.mark.parametrize("volatile", [False, True])
async def test_volatile_flag_passes_through_to_deliver(volatile: bool) -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    b = ns.connect("b")
    with trio.fail_after(5):
        await ns.adapter.broadcast(event("v"), opts(["r"], volatile=volatile))
        await ns.adapter.broadcast(event("v"), opts(volatile=volatile))
    assert a.volatile_flags == [volatile, volatile]
    assert b.volatile_flags == [volatile]


async def test_slow_consumer_does_not_stall_the_others() -> None:
    ns = FakeNamespace()
    slow = ns.connect("slow", ["r"], capacity=2)
    fast = ns.connect("fast", ["r"], capacity=100)
    with trio.fail_after(5):
        for i in range(10):
            await ns.adapter.broadcast(event("n", i), opts(["r"]))
    assert [args[0] for _n, args in fast.events()] == list(range(10))
    assert [args[0] for _n, args in slow.events()] == [0, 1]
    assert slow.dropped == 8
    assert fast.dropped == 0


# -- delivery: a huge broadcast yields and keeps per-recipient order -------------------------------


class StepWatcher(trio.abc.Instrument):
    """Calls ``on_step`` after each step (run between two checkpoints) of the task ``task``."""

    def __init__(self, on_step: Callable[[], None]) -> None:
        self.task: trio.lowlevel.Task | None = None
        self.on_step = on_step

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.on_step()


@contextmanager
def watching(on_step: Callable[[], None]) -> Iterator[StepWatcher]:
    watcher = StepWatcher(on_step)
    trio.lowlevel.add_instrument(watcher)
    try:
        yield watcher
    finally:
        trio.lowlevel.remove_instrument(watcher)


def big_namespace(extra: int = 5) -> tuple[FakeNamespace, list[FakeSocket]]:
    ns = FakeNamespace()
    sockets = [ns.connect(f"s{i:05}", ["big"], capacity=4) for i in range(YIELD_EVERY + extra)]
    return ns, sockets


def reached(sockets: Iterable[FakeSocket]) -> int:
    return sum(1 for s in sockets if s.queued)


async def test_huge_broadcast_yields_and_is_not_overtaken() -> None:
    ns, sockets = big_namespace()
    total = len(sockets)
    after_steps: list[int] = []
    big_done = False
    ran_during_big = False
    unreached_when_small_started = 0

    async def big() -> None:
        nonlocal big_done
        watcher.task = trio.lowlevel.current_task()
        await ns.adapter.broadcast(event("big"), opts(["big"]))
        big_done = True

    async def small() -> None:
        nonlocal ran_during_big, unreached_when_small_started
        while watcher.task is None:
            await trio.lowlevel.checkpoint()
        ran_during_big = not big_done
        unreached_when_small_started = total - reached(sockets)
        await ns.adapter.broadcast(event("small"), opts(["big"]))
        await ns.adapter.broadcast(event("smaller"), opts([s.id for s in sockets[-3:]]))

    with trio.fail_after(10), watching(lambda: after_steps.append(reached(sockets))) as watcher:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(big)
            nursery.start_soon(small)
    assert ran_during_big, "another task ran while the huge broadcast was in progress"
    assert any(0 < n < total for n in after_steps), f"no yield with recipients left: {after_steps}"
    assert unreached_when_small_started > 0
    for socket in sockets[:-3]:
        assert socket.event_names() == ["big", "small"], socket
    for socket in sockets[-3:]:
        assert socket.event_names() == ["big", "small", "smaller"], socket


async def sibling_turns_during(burst: Callable[[], Any]) -> int:
    """How many scheduler turns a busy sibling task got while ``burst()`` ran."""
    turns = 0

    async def sibling() -> None:
        nonlocal turns
        while True:
            await trio.lowlevel.checkpoint()
            turns += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sibling)
        await trio.lowlevel.checkpoint()
        before = turns
        await burst()
        nursery.cancel_scope.cancel()
    return turns - before


async def test_a_burst_of_broadcasts_runs_as_one_piece_unless_a_writer_is_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Within the yield slice, broadcasts are cancellation points only; a writer behind (the hint of
    ``engine.pacing``) turns the next broadcast into a schedule point, which lowers the hint."""
    monkeypatch.setattr(memory, "YIELD_SLICE", 3600.0)
    ns = FakeNamespace()
    ns.connect("a", ["r"])
    BACKLOG.behind = False

    async def burst() -> None:
        for i in range(50):
            await ns.adapter.broadcast(event("n", i), opts(["r"]))

    async def burst_behind() -> None:
        for i in range(50):
            BACKLOG.behind = True  # as a writer past half its bound raises it
            await ns.adapter.broadcast(event("n", i), opts(["r"]))
            assert not BACKLOG.behind

    with trio.fail_after(10):
        memory._mark_yield()
        assert await sibling_turns_during(burst) <= 1
        assert await sibling_turns_during(burst_behind) >= 49
        with trio.CancelScope() as scope:  # still a cancellation point at every broadcast
            scope.cancel()
            await ns.adapter.broadcast(event("cancelled"), opts(["r"]))
        assert scope.cancelled_caught


async def test_the_yield_slice_is_one_of_cpu_time_not_of_waiting_for_a_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a busy machine wall time passes while the process waits for a core: a burst is cut into
    pieces only by the CPU time it spends (each broadcast here "lasts" a whole slice of wall time)."""
    ns = FakeNamespace()
    ns.connect("a", ["r"])
    BACKLOG.behind = False
    wall = [0.0]
    cpu = [0.0]

    def fake_wall() -> float:
        wall[0] += memory.YIELD_SLICE  # a slice of wall time between any two readings
        return wall[0]

    monkeypatch.setattr(memory, "perf_counter", fake_wall)
    monkeypatch.setattr(memory, "thread_time", lambda: cpu[0])

    async def burst() -> None:
        for i in range(50):
            await ns.adapter.broadcast(event("n", i), opts(["r"]))

    async def burst_spending_cpu() -> None:
        for i in range(50):
            cpu[0] += 2 * memory.YIELD_SLICE  # each broadcast spends more than a slice of CPU time
            await ns.adapter.broadcast(event("n", i), opts(["r"]))

    with trio.fail_after(10):
        memory._mark_yield()
        assert await sibling_turns_during(burst) <= 1
        assert await sibling_turns_during(burst_spending_cpu) >= 49


async def test_huge_broadcast_to_everyone_with_except() -> None:
    ns, sockets = big_namespace(extra=100)
    excluded = {s.id for s in sockets[::7]}
    with trio.fail_after(10):
        await ns.adapter.broadcast(event("hi"), opts((), excluded))
    for socket in sockets:
        assert socket.event_names() == ([] if socket.id in excluded else ["hi"])


async def test_huge_broadcast_skips_sockets_gone_mid_way() -> None:
    ns, sockets = big_namespace(extra=YIELD_EVERY)
    gone: list[FakeSocket] = []

    def disconnect_unreached() -> None:
        # Runs between two steps of the broadcast, as another task would.
        if gone or not 0 < reached(sockets) < len(sockets):
            return
        for socket in sockets:
            if not socket.queued:
                gone.append(socket)
                socket.go_away()

    with trio.fail_after(10), watching(disconnect_unreached) as watcher:
        watcher.task = trio.lowlevel.current_task()
        await ns.adapter.broadcast(event("big"), opts(["big"]))
    assert gone, "the broadcast never yielded with recipients left"
    for socket in gone:
        assert socket.volatile_flags == [], "a socket that went away was still delivered to"
    assert all(s.event_names() == ["big"] for s in sockets if s not in gone)


# -- broadcast_with_ack -----------------------------------------------------------------------------


async def answer_all(sockets: Iterable[FakeSocket], value: Any = None) -> None:
    for socket in sockets:
        packet = await socket.next_packet()
        socket.answer(packet.ack_id, socket.id if value is None else value)


async def test_broadcast_with_ack_collects_each_answer(autojump_clock: trio.testing.MockClock) -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    b = ns.connect("b", ["r", "q"])
    c = ns.connect("c", ["q"])
    d = ns.connect("d")
    result: list[Any] = []

    async def ask() -> None:
        result.extend(await ns.adapter.broadcast_with_ack(event("q?", 1), opts(["r", "q"], timeout=10)))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await answer_all([a, b, c])
    assert sorted(result) == ["a", "b", "c"]
    assert trio.current_time() < 10
    assert d.packets() == []


async def test_broadcast_with_ack_packets_carry_one_ack_id(autojump_clock: trio.testing.MockClock) -> None:
    ns = FakeNamespace()
    a = ns.connect("a")
    b = ns.connect("b")
    with trio.fail_after(100), pytest.raises(AckTimeout):
        await ns.adapter.broadcast_with_ack(event("q?", "x"), opts(timeout=1))
    (pa,) = a.packets()
    (pb,) = b.packets()
    assert pa == pb
    assert pa.type is PacketType.EVENT and pa.data == ["q?", "x"] and pa.ack_id is not None


async def test_broadcast_with_ack_to_nobody_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    ns = FakeNamespace()
    ns.connect("a")
    with trio.fail_after(100):
        assert await ns.adapter.broadcast_with_ack(event("q?"), opts(["empty"], timeout=5)) == []
    assert trio.current_time() == 0


async def test_broadcast_with_ack_timeout_keeps_partial_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    b = ns.connect("b", ["r"])
    c = ns.connect("c", ["r"])
    caught: list[AckTimeout] = []

    async def ask() -> None:
        try:
            await ns.adapter.broadcast_with_ack(event("q?"), opts(["r"], timeout=3))
        except AckTimeout as exc:
            caught.append(exc)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await answer_all([a, c], value="yes")
            await b.next_packet()  # b never answers
    (exc,) = caught
    assert exc.responses == ["yes", "yes"]
    assert trio.current_time() == pytest.approx(3)
    # Late answers after the timeout are not collected anywhere (callbacks were removed).
    assert b.acks == {} and a.acks == {}


async def test_socket_that_goes_away_is_not_waited_for(autojump_clock: trio.testing.MockClock) -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    b = ns.connect("b", ["r"])
    result: list[Any] = []

    async def ask() -> None:
        result.extend(await ns.adapter.broadcast_with_ack(event("q?"), opts(["r"], timeout=30)))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await b.next_packet()
            await trio.sleep(1)
            b.go_away()
            await answer_all([a])
    assert result == ["a"]
    assert trio.current_time() == pytest.approx(1)


async def test_full_socket_is_not_waited_for(autojump_clock: trio.testing.MockClock) -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    full = ns.connect("full", ["r"], capacity=1)
    full.deliver(Encoded(("6",)), False)  # fill its channel
    result: list[Any] = []

    async def ask() -> None:
        result.extend(await ns.adapter.broadcast_with_ack(event("q?"), opts(["r"], timeout=30)))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await answer_all([a])
    assert result == ["a"]
    assert trio.current_time() == 0
    assert full.dropped == 1


async def test_failed_delivery_then_teardown_counts_once(autojump_clock: trio.testing.MockClock) -> None:
    ns = FakeNamespace()
    slow = ns.connect("slow", ["r"], capacity=1)
    slow.deliver(Encoded(("6",)), False)  # fill its channel: the next delivery fails (a slow consumer)
    a = ns.connect("a", ["r"])
    b = ns.connect("b", ["r"])
    outcome: list[Any] = []

    async def ask() -> None:
        try:
            outcome.append(await ns.adapter.broadcast_with_ack(event("q?"), opts(["r"], timeout=10)))
        except AckTimeout as exc:
            outcome.append(exc)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await answer_all([a])
            await b.next_packet()  # b got it and never answers
            slow.go_away()  # the slow consumer is closed, as the real Socket is after an overflow
    (result,) = outcome
    assert isinstance(result, AckTimeout), f"returned {result!r} though b never answered"
    assert result.responses == ["a"]


async def test_broadcast_with_ack_without_timeout_is_a_type_error() -> None:
    ns = FakeNamespace()
    a = ns.connect("a")
    with trio.fail_after(5), pytest.raises(TypeError, match="timeout"):
        await ns.adapter.broadcast_with_ack(event("q?"), opts())
    assert a.packets() == []


async def test_ack_broadcast_keeps_order_behind_a_huge_broadcast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ns, sockets = big_namespace()
    started = False
    big_done = False

    async def big() -> None:
        nonlocal started, big_done
        started = True
        await ns.adapter.broadcast(event("big"), opts(["big"]))
        big_done = True

    async def ack() -> None:
        while not started:
            await trio.lowlevel.checkpoint()
        assert not big_done
        with pytest.raises(AckTimeout):
            await ns.adapter.broadcast_with_ack(event("ack"), opts(["big"], timeout=1))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(big)
            nursery.start_soon(ack)
    for socket in sockets:
        assert socket.event_names() == ["big", "ack"], socket


async def test_huge_ack_broadcast_yields_while_delivering(autojump_clock: trio.testing.MockClock) -> None:
    ns, sockets = big_namespace()
    after_steps: list[int] = []
    with trio.fail_after(100), watching(lambda: after_steps.append(reached(sockets))) as watcher:
        watcher.task = trio.lowlevel.current_task()
        with pytest.raises(AckTimeout):
            await ns.adapter.broadcast_with_ack(event("q?"), opts(["big"], timeout=1))
    assert any(0 < n < len(sockets) for n in after_steps), f"no yield with recipients left: {after_steps}"


async def test_target_gone_while_ack_broadcast_waits_counts_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ns, _sockets = big_namespace()
    a = ns.connect("a", ["abc"])
    b = ns.connect("b", ["abc"])
    c = ns.connect("c", ["abc"])
    ns.connect("d", ["abc", "big"])  # shared with the huge broadcast: the ack broadcast waits its turn
    started = False
    outcome: list[Any] = []

    async def big() -> None:
        nonlocal started
        started = True
        await ns.adapter.broadcast(event("big"), opts(["big"]))

    async def ask() -> None:
        while not started:
            await trio.lowlevel.checkpoint()
        try:
            outcome.append(await ns.adapter.broadcast_with_ack(event("q?"), opts(["abc"], timeout=10)))
        except AckTimeout as exc:
            outcome.append(exc)

    async def a_goes_away_then_b_answers() -> None:
        while not a.acks:
            await trio.lowlevel.checkpoint()
        assert a.queued == 0, "the ack broadcast should still be waiting behind the huge one"
        a.go_away()
        packet = await b.next_packet()
        b.answer(packet.ack_id, "b")  # c never answers

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(big)
            nursery.start_soon(ask)
            nursery.start_soon(a_goes_away_then_b_answers)
    (result,) = outcome
    assert isinstance(result, AckTimeout), f"returned {result!r} though c never answered"
    assert result.responses == ["b"]
    assert c.event_names() == ["q?"]


# -- fetch / add / del / disconnect -----------------------------------------------------------------


async def test_fetch_sockets_returns_snapshots() -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r", "x"])
    a.data["user"] = "ann"
    ns.connect("b", ["r"])
    ns.connect("c")
    with trio.fail_after(5):
        found = await ns.adapter.fetch_sockets(opts(["r"], ["b"]))
        everyone = await ns.adapter.fetch_sockets(opts())
    (remote,) = found
    assert remote.id == "a"
    assert remote.rooms == {"a", "r", "x"}
    assert remote.handshake == a.handshake and remote.handshake.auth == {"token": "a"}
    assert remote.data == {"user": "ann"}
    a.join("later")
    assert remote.rooms == {"a", "r", "x"}, "rooms are a snapshot"
    assert sorted(s.id for s in everyone) == ["a", "b", "c"]


async def test_add_sockets_and_del_sockets() -> None:
    ns = FakeNamespace()
    log = record_events(ns.adapter)
    a = ns.connect("a", ["r"])
    b = ns.connect("b", ["r"])
    c = ns.connect("c")
    log.clear()
    with trio.fail_after(5):
        await ns.adapter.add_sockets(opts(["r"], ["b"]), ["x", "y"])
    assert a.rooms == {"a", "r", "x", "y"}
    assert b.rooms == {"b", "r"}
    assert c.rooms == {"c"}
    assert log == [
        ("create-room", "x"),
        ("join-room", "x", "a"),
        ("create-room", "y"),
        ("join-room", "y", "a"),
    ] or log == [("create-room", "y"), ("join-room", "y", "a"), ("create-room", "x"), ("join-room", "x", "a")]
    with trio.fail_after(5):
        await ns.adapter.add_sockets(opts(), ["all"])
        await ns.adapter.del_sockets(opts(["x"]), ["r", "x"])
        await ns.adapter.del_sockets(opts(["all"]), ["all"])
    assert a.rooms == {"a", "y"}
    assert b.rooms == {"b", "r"}
    assert c.rooms == {"c"}
    assert "x" not in ns.adapter.rooms and "all" not in ns.adapter.rooms
    assert_inverse(ns.adapter)


async def test_del_sockets_of_the_room_being_left() -> None:
    ns = FakeNamespace()
    sockets = [ns.connect(f"s{i}", ["r"]) for i in range(10)]
    with trio.fail_after(5):
        await ns.adapter.del_sockets(opts(["r"]), ["r"])
    assert "r" not in ns.adapter.rooms
    assert all(s.rooms == {s.id} for s in sockets)


async def test_disconnect_sockets() -> None:
    ns = FakeNamespace()
    a = ns.connect("a", ["r"])
    b = ns.connect("b", ["r"])
    c = ns.connect("c", ["r"])
    with trio.fail_after(5):
        await ns.adapter.disconnect_sockets(opts(["r"], ["c"]), True)
    assert a.disconnect_calls == [True] and b.disconnect_calls == [True]
    assert c.disconnect_calls == []
    assert set(ns.sockets) == {"c"}
    assert dict(ns.adapter.rooms) == {"c": {"c"}, "r": {"c"}}
    with trio.fail_after(5):
        await ns.adapter.disconnect_sockets(opts(), False)
    assert c.disconnect_calls == [False]
    assert dict(ns.adapter.rooms) == {} and dict(ns.adapter.sids) == {}


async def test_single_server_operations() -> None:
    adapter = FakeNamespace().adapter
    with trio.fail_after(5):
        assert await adapter.server_count() == 1
        assert await adapter.server_side_emit("ev", [1]) == []
        assert await adapter.server_side_emit("ev", [1], timeout=1) == []


async def test_unrelated_room_is_not_held_up_by_a_huge_broadcast() -> None:
    # Five chunks: the watcher may see the start one chunk late, and one more chunk may pass while
    # the small broadcast checkpoints; the huge one is still on its way then, whatever the order.
    ns, sockets = big_namespace(extra=4 * YIELD_EVERY + 5)
    small = [ns.connect(f"x{i}", ["small"]) for i in range(3)]
    overlapping = ns.connect("both", ["small2", "big"])
    big_reached_when_small_arrived: list[int] = []
    big_reached_when_overlap_arrived: list[int] = []

    async def big() -> None:
        await ns.adapter.broadcast(event("big"), opts(["big"]))

    async def unrelated() -> None:
        while not any(s.queued for s in sockets):  # the huge broadcast has started
            await trio.lowlevel.checkpoint()
        await ns.adapter.broadcast(event("small"), opts(["small"]))
        big_reached_when_small_arrived.append(reached(sockets))
        await ns.adapter.broadcast(event("small2"), opts(["small2"]))
        big_reached_when_overlap_arrived.append(reached([*sockets, overlapping]))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(big)
            nursery.start_soon(unrelated)
    # The unrelated room got its packet while the huge broadcast was still on its way...
    assert 0 < big_reached_when_small_arrived[0] < len(sockets)
    assert all(s.event_names() == ["small"] for s in small)
    # ...while a room sharing a recipient with it waited, and kept that recipient's order.
    assert big_reached_when_overlap_arrived[0] == len(sockets) + 1
    assert overlapping.event_names() == ["big", "small2"]
