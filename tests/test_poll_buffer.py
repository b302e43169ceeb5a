"""PollBuffer.settle: a woken long-polling GET answers with the whole burst that woke it.

In-process, on trio's scheduler only (no I/O): the broadcaster is a task that queues packets and
yields between them as a paced broadcast does.
"""

from __future__ import annotations

import trio
import trio.testing

from trio_rooms.engine.polling import SETTLE_ITEMS, PollBuffer
from trio_rooms.protocol.encoded import Encoded
from trio_rooms.stats import Counters


def new_buffer() -> PollBuffer:
    return PollBuffer(max_bytes=1 << 20, counters=Counters(), on_overflow=lambda: None)


def packet(i: int) -> Encoded:
    return Encoded((f'42["n",{i}]',))


async def answer_of_a_woken_get(buffer: PollBuffer) -> list[Encoded]:
    """What a GET answers with: it waits for a packet, lets the burst settle, takes."""
    await buffer.wait()
    await buffer.settle()
    return buffer.take()


async def test_a_burst_that_yields_between_its_packets_is_answered_in_one_piece() -> None:
    # 200 GETs, each against a burst of 20 packets with a checkpoint after each: whatever the order
    # trio picks within its batches, every answer carries the whole burst.
    with trio.fail_after(10):
        for _ in range(200):
            buffer = new_buffer()
            answers: list[list[Encoded]] = []

            async def get(buffer: PollBuffer = buffer, answers: list[list[Encoded]] = answers) -> None:
                answers.append(await answer_of_a_woken_get(buffer))

            async def burst(buffer: PollBuffer = buffer) -> None:
                for i in range(20):
                    buffer.write(packet(i))
                    await trio.lowlevel.checkpoint()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(get)
                await trio.lowlevel.checkpoint()  # the GET waits before the burst starts
                nursery.start_soon(burst)
            assert [len(a) for a in answers] == [20]


async def test_a_lone_packet_is_answered_within_two_scheduler_batches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    buffer = new_buffer()
    start = trio.current_time()
    buffer.write(packet(0))
    assert len(await answer_of_a_woken_get(buffer)) == 1
    assert trio.current_time() == start, "no time passes: the wait is two checkpoints"


async def test_a_broadcaster_that_never_stops_is_cut_at_the_items_bound() -> None:
    buffer = new_buffer()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def forever() -> None:
                i = 0
                while True:
                    buffer.write(packet(i))
                    i += 1
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(forever)
            answer = await answer_of_a_woken_get(buffer)
            nursery.cancel_scope.cancel()
    assert SETTLE_ITEMS <= len(answer) <= SETTLE_ITEMS + 2


async def test_a_wake_or_a_close_ends_the_settling_at_once() -> None:
    for end in ("wake", "close"):
        buffer = new_buffer()
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:

                async def forever(buffer: PollBuffer = buffer, end: str = end) -> None:
                    i = 0
                    while True:
                        buffer.write(packet(i))
                        i += 1
                        await trio.lowlevel.checkpoint()
                        if i == 5 and end == "wake":
                            buffer.wake()
                        elif i == 5:
                            buffer.close()

                nursery.start_soon(forever)
                answer = await answer_of_a_woken_get(buffer)
                nursery.cancel_scope.cancel()
        assert 5 <= len(answer) <= 7, end
