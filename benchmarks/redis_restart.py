"""What a RedisAdapter server misses while Redis restarts (issue 11, bug 9): the one loss pub/sub cannot
report.

Two trio_rooms servers in this process share a real ``redis-server`` (started here on a free port of
127.0.0.1). Server A broadcasts to room "r" every 2 ms; server B has one client in "r". Redis is
stopped for ``--down`` seconds, then started again on the same port. Every broadcast A published
without an error must reach B; the ones that did not are the loss window: what A published after
it had resubscribed and before B had. Prints, per run, how many were lost and over how long.

    python benchmarks/redis_restart.py --runs 5 [--down 1.0]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import trio

import trio_rooms
from trio_rooms.testing import open_memory_server, open_test_client

INTERVAL = 0.002


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Redis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed (apt-get install -y redis-server)"
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir]
        argv = [binary, "--port", str(self.port), *options]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


async def one_run(redis: Redis, down: float) -> tuple[int, float, int]:
    """(broadcasts lost at B, the span they cover in seconds, broadcasts that raised AdapterError)."""
    url = f"redis://127.0.0.1:{redis.port}"
    factory = trio_rooms.RedisAdapter.factory(url, key=f"restart-{time.monotonic_ns()}")
    a, b = trio_rooms.Server(adapter=factory), trio_rooms.Server(adapter=factory)
    sent_at: dict[int, float] = {}
    failed = 0
    received: set[int] = set()

    @b.on("connection")
    async def join(socket: trio_rooms.Socket) -> None:
        socket.join("r")

    async with (
        open_memory_server(a),
        open_memory_server(b) as listener_b,
        trio.open_nursery() as nursery,
        open_test_client(await listener_b.connect()) as client,
    ):
        await client.connect()

        async def receive() -> None:
            while True:
                packet = await client.receive()
                received.add(packet.data[1])

        nursery.start_soon(receive)
        while await b.adapter.server_count() < 2:  # noqa: ASYNC110 - a Redis query, not a flag
            await trio.sleep(0.05)
        n = 0

        async def emit_for(seconds: float) -> None:
            nonlocal n, failed
            end = trio.current_time() + seconds
            while trio.current_time() < end:
                try:
                    await a.to("r").emit("n", n)
                    sent_at[n] = trio.current_time()
                except trio_rooms.AdapterError:
                    failed += 1
                n += 1
                await trio.sleep(INTERVAL)

        await emit_for(0.5)
        await trio.to_thread.run_sync(redis.stop)
        await emit_for(down)
        await trio.to_thread.run_sync(redis.start)
        await emit_for(3.0)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    lost = sorted(i for i in sent_at if i not in received)
    span = sent_at[lost[-1]] - sent_at[lost[0]] + INTERVAL if lost else 0.0
    return len(lost), span, failed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--down", type=float, default=1.0, help="seconds Redis stays down")
    args = parser.parse_args()
    redis = Redis(free_port())
    redis.start()
    spans: list[float] = []
    try:
        for run in range(args.runs):
            lost, span, failed = await one_run(redis, args.down)
            spans.append(span)
            print(f"run {run + 1}: {failed} emits raised AdapterError; {lost} published broadcasts lost "
                  f"at the other server, over {span * 1000:.0f} ms")  # fmt: skip
    finally:
        redis.stop()
    print(f"loss window: median {statistics.median(spans) * 1000:.0f} ms, max {max(spans) * 1000:.0f} ms")


if __name__ == "__main__":
    trio.run(main)
