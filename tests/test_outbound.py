"""The outbound path of one connection (``Outbound``): its writer task and queue exist only while
bytes are queued, order holds across the lanes, the close frame goes last within its deadline, and
the byte bound closes a slow consumer. Memory streams and the autojump clock (no real sockets), plus
one real TCP pair for the fast lane."""

from __future__ import annotations

import math
import socket

import trio
import trio.testing

from trio_rooms.engine.outbound import Outbound
from trio_rooms.engine.pacing import BACKLOG
from trio_rooms.stats import Counters


async def read_all(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    received = b""
    while len(received) < size:
        received += await stream.receive_some(65536)
    return received


async def test_writer_task_and_queue_exist_only_while_bytes_are_queued() -> None:
    sender, receiver = trio.testing.memory_stream_pair()  # not a socket: always the writer lane
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            outbound = Outbound(sender, nursery=nursery, on_overflow=lambda: None, stats=Counters())
            assert outbound.write(b"one ") and outbound.write(b"two ")
            assert outbound.queued_bytes == 8
            assert outbound.write(b"three")
            assert await read_all(receiver, 13) == b"one two three"
            await outbound.wait_flushed()
            assert outbound.queued_bytes == 0
            assert outbound._pending is None and not outbound._writing and outbound._writer_scope is None
            # A later write starts a writer again.
            assert outbound.write(b"four")
            assert await read_all(receiver, 4) == b"four"
            await outbound.wait_flushed()
            assert not outbound._writing


async def test_close_frame_goes_last_and_a_stuck_writer_stops_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sender, receiver = trio.testing.memory_stream_pair()
    counters = Counters()
    async with trio.open_nursery() as nursery:
        outbound = Outbound(sender, nursery=nursery, on_overflow=lambda: None, stats=counters)
        outbound.write(b"data")
        outbound.close(b"CLOSE", deadline=math.inf)
        assert not outbound.write(b"late")  # closed: dropped
        assert await read_all(receiver, 9) == b"dataCLOSE"
        await outbound.wait_flushed()

    # A peer that never reads: the writer blocks in send_all until close's deadline stops it.
    stuck, _never_read = trio.testing.lockstep_stream_pair()
    async with trio.open_nursery() as nursery:
        outbound = Outbound(stuck, nursery=nursery, on_overflow=lambda: None, stats=counters)
        outbound.write(b"x" * 1000)
        await trio.sleep(1)
        assert outbound.queued_bytes == 1000
        start = trio.current_time()
        outbound.close(b"CLOSE", deadline=start + 2)
        await outbound.wait_flushed()
        assert abs(trio.current_time() - start - 2) < 1e-6
        assert outbound.queued_bytes == 0 and not outbound._writing


async def test_slow_consumer_is_closed_and_volatile_dropped_past_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sender, _never_read = trio.testing.lockstep_stream_pair()
    counters = Counters()
    overflowed: list[bool] = []
    async with trio.open_nursery() as nursery:
        outbound = Outbound(
            sender,
            nursery=nursery,
            max_queued_bytes=100,
            on_overflow=lambda: overflowed.append(True),
            stats=counters,
        )
        assert outbound.write(b"x" * 100)
        assert not outbound.write(b"v", volatile=True)
        assert counters.volatile_dropped == 1 and not overflowed
        assert not outbound.write(b"y")
        # The owner (the session) counts the slow consumer once; the outbound path only reports it.
        assert overflowed == [True] and counters.slow_consumers_closed == 0 and outbound.closed
        outbound.abort()  # before the writer task even started: it drops the queue and returns
    assert outbound.queued_bytes == 0


async def test_fast_lane_sends_at_once_and_keeps_order_behind_a_queue() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", listener.getsockname()[1])
        peer, _ = listener.accept()
        peer.setblocking(True)
        async with stream, trio.open_nursery() as nursery:
            outbound = Outbound(stream, nursery=nursery, on_overflow=lambda: None, stats=Counters())
            assert outbound.write(b"fast")
            assert outbound.queued_bytes == 0 and not outbound._writing  # sent at once, no task
            # Fill the kernel's buffers until a write queues, then check the order of everything.
            chunk = b"z" * 65536
            total = 4
            while outbound.queued_bytes == 0:
                outbound.write(chunk)
                total += len(chunk)
            assert outbound._writing
            outbound.write(b"END")
            total += 3
            received = b""
            while len(received) < total:
                received += await trio.to_thread.run_sync(peer.recv, 1 << 20)
            assert received.startswith(b"fast") and received.endswith(b"END")
            assert received[4:-3] == chunk * ((total - 7) // len(chunk))
            await outbound.wait_flushed()
            assert not outbound._writing
        peer.close()
    listener.close()


async def test_a_queue_past_half_its_bound_tells_broadcasters_the_writer_is_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sender, _never_read = trio.testing.lockstep_stream_pair()
    BACKLOG.behind = False
    async with trio.open_nursery() as nursery:
        outbound = Outbound(
            sender, nursery=nursery, max_queued_bytes=100, on_overflow=lambda: None, stats=Counters()
        )
        assert outbound.write(b"x" * 50)
        assert not BACKLOG.behind  # half the bound: not behind yet
        assert outbound.write(b"x")
        assert BACKLOG.behind
        outbound.abort()
    BACKLOG.behind = False
