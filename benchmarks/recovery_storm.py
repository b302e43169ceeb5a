"""A reconnect storm with connection state recovery across servers (issue 17): N clients recovering at
once, each with missed broadcasts, while a control client measures the server's echo round trip.

Not a CI test. From the repository root (needs redis-server)::

    python benchmarks/recovery_storm.py                  # 1000 clients, 20 missed broadcasts, 3 runs
    python benchmarks/recovery_storm.py --runs 3 --pin --out benchmarks/results-recovery-storm.json

One run, everything on 127.0.0.1:

1. a ``redis-server`` (started here, no persistence) and two trio_rooms servers A and B, separate
   processes (``tests/helpers/cluster_server.py --streams --recovery 120``: the RedisStreamsAdapter on
   one stream, recovery on); a control process (this script, ``--pinger``) connects a trio_rooms
   ``Client`` to B and, every 10 ms, times an emit with ack ("do_server_events", answered at once by B);
2. N raw WebSocket clients (``tests/helpers/raw_clients.py``; their CONNECT payload is their name and
   the room "r") connect to A; one broadcast to "r" gives each its offset;
3. every client's TCP connection is cut at once (no close frame: A sees "transport close" and saves
   each session in Redis); once A holds none of them, ``--missed`` broadcasts are sent to "r";
4. the storm: every client opens a new WebSocket to B at the same moment and sends ``{pid, offset}``;
   a client is done when B's CONNECT reply names its old id and it has every missed broadcast, each
   once, in order, each ending with its offset.

Each run is followed by its control experiment, a plain connect storm: the same N clients open new
sockets on B at once (no pid, no offset), so that what recovery adds to a storm shows beside it.

Figures per storm: its duration (first connect to last client done), server B's CPU time meanwhile,
the clients recovered, those with every missed broadcast exactly once and in order (must be N), and the
control client's round trips during the storm: median, p99 and max (the issue's bound: under 100 ms).
B also logs its event loop's late wake-ups (``cluster_server.py --lag-probe``): ``loop_late_max_ms`` (the
latest a 5 ms sleep woke) and ``loop_held_max_ms`` (of that, the CPU time B's loop thread used: work that
held the loop, as opposed to time B was not given a CPU), and each task step over 20 ms. A run fails
if a client is not done within ``--timeout``. Writes every figure to ``--out`` (JSON) and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from helpers.raw_clients import WsClient, WsClosed  # noqa: E402

import trio_rooms  # noqa: E402

SERVER = ROOT / "tests" / "helpers" / "cluster_server.py"
TARGET = "/socket.io/?EIO=4&transport=websocket"
PING_EVERY = 0.01


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def start_redis(port: int, workdir: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (apt-get install -y redis-server)"
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen([binary, "--port", str(port), *options], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("redis-server did not start")


def start_server(
    name: str, redis_url: str, key: str, profile: str = "", lag_probe: str = "", cpu: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(SERVER), name, redis_url, key, "--streams", "--recovery", "120"]
    if lag_probe:
        argv += ["--lag-probe", lag_probe]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    if profile:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        argv = [spy, "record", "--format", "raw", "--rate", "250", "-o", profile, "--", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    while line.startswith("py-spy") or not line.strip():
        line = process.stdout.readline().decode()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"server {name} did not start: {line!r}")
    return process, int(line.split()[1])


# -- the control client (its own process) ---------------------------------------------------------
async def pinger(url: str) -> None:
    """Print ``<monotonic> <rtt>`` per echo round trip to ``url``, until killed."""
    async with trio_rooms.open_client(url, transports=("websocket",), reconnection=False) as client:
        print("READY", flush=True)
        while True:
            start = time.monotonic()
            await client.emit_with_ack("do_server_events", timeout=10.0)
            end = time.monotonic()
            print(f"{end:.6f} {end - start:.6f}", flush=True)
            await trio.sleep(PING_EVERY)


# -- the recovering clients ----------------------------------------------------------------------
class Recovering:
    """One raw client: its id, pid and last offset, and what it received."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.sid = ""
        self.pid = ""
        self.offset = ""
        self.ws: WsClient | None = None
        self.ticks: list[tuple[int, str]] = []
        self.recovered = False
        self.replied = False
        self.done_at = 0.0

    async def connect(self, port: int, payload: dict[str, Any]) -> None:
        ws = self.ws = await WsClient.connect(port, TARGET)
        opened = await ws.recv_app()
        assert isinstance(opened, str) and opened.startswith("0"), opened
        await ws.send("40" + json.dumps(payload))

    async def read_until(self, done: Any) -> None:
        """Read messages (ticks, the CONNECT reply) until ``done()`` is true."""
        assert self.ws is not None
        while not done():
            message = await self.ws.recv_app()
            if not isinstance(message, str):
                continue
            if message.startswith("40"):
                reply = json.loads(message[2:])
                self.recovered = reply.get("sid") == self.sid if self.sid else False
                self.sid, self.pid = reply["sid"], reply.get("pid", "")
                self.replied = True
            elif message.startswith("42"):
                event, *args = json.loads(message[2:])
                if event == "tick":
                    self.ticks.append((args[0], args[-1]))
                    self.offset = args[-1]


async def connect_all(clients: list[Recovering], port: int) -> None:
    limit = trio.Semaphore(100)

    async def one(client: Recovering) -> None:
        async with limit:
            await client.connect(port, {"name": f"c{client.index}", "rooms": ["r"]})
            await client.read_until(lambda: bool(client.sid))

    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(one, client)


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(args: argparse.Namespace, run: int, plain: bool) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="recovery-storm-")
    redis_port = free_port()
    redis = start_redis(redis_port, workdir)
    redis_url = f"redis://127.0.0.1:{redis_port}"
    key = f"storm-{run}-{time.monotonic_ns()}"
    processes: list[subprocess.Popen[bytes]] = [redis]
    try:
        a, a_port = start_server("A", redis_url, key)
        lag_path = os.path.join(workdir, "lag-b.txt")
        b, b_port = start_server("B", redis_url, key, args.profile, lag_path, 0 if args.pin else None)
        processes += [a, b]
        ping = subprocess.Popen(  # noqa: ASYNC220 - before the clients: nothing else runs yet
            [sys.executable, __file__, "--pinger", f"http://127.0.0.1:{b_port}"],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        processes.append(ping)
        assert ping.stdout is not None
        assert ping.stdout.readline().strip() == b"READY"
        samples: list[tuple[float, float]] = []

        def read_samples() -> None:
            assert ping.stdout is not None
            for line in ping.stdout:
                stamp, rtt = line.split()
                samples.append((float(stamp), float(rtt)))

        threading.Thread(target=read_samples, daemon=True).start()

        async with trio_rooms.open_client(
            f"http://127.0.0.1:{a_port}", transports=("websocket",), reconnection=False
        ) as driver:
            clients = [Recovering(index) for index in range(args.n)]
            await connect_all(clients, a_port)
            await driver.emit_with_ack("do_broadcast", ["r"], [], "tick", 0, timeout=30.0)
            with trio.fail_after(args.timeout):
                async with trio.open_nursery() as nursery:
                    for client in clients:
                        nursery.start_soon(client.read_until, lambda c=client: bool(c.ticks))
            for client in clients:  # the cut: no close frame
                assert client.ws is not None
                await trio.aclose_forcefully(client.ws.stream)
            with trio.fail_after(args.timeout):
                while await driver.emit_with_ack("do_fetch", ["r"], timeout=30.0):  # noqa: ASYNC110
                    await trio.sleep(0.05)  # polling another process: nothing to wait on
            for n in range(1, args.missed + 1):
                await driver.emit_with_ack("do_broadcast", ["r"], [], "tick", n, timeout=30.0)
            await trio.sleep(0.5)  # the control's baseline
            cpu_before = cpu_seconds(b.pid)
            start = time.monotonic()
            failures: list[str] = []

            async def storm(client: Recovering) -> None:
                try:
                    if plain:  # the control experiment: new sockets, no recovery
                        await client.connect(b_port, {"name": f"c{client.index}", "rooms": ["r"]})
                        client.replied = False
                        await client.read_until(lambda: client.replied)
                        client.done_at = time.monotonic()
                        return
                    await client.connect(b_port, {"pid": client.pid, "offset": client.offset})
                    wanted = args.missed + 1
                    client.replied = False
                    await client.read_until(
                        lambda: client.replied and (not client.recovered or len(client.ticks) >= wanted)
                    )
                    client.done_at = time.monotonic()
                except (WsClosed, OSError, trio.BrokenResourceError) as exc:
                    failures.append(f"client {client.index}: {exc!r}")

            with trio.move_on_after(args.timeout) as scope:
                async with trio.open_nursery() as nursery:
                    for client in clients:
                        nursery.start_soon(storm, client)
            end = time.monotonic()
            cpu_storm = cpu_seconds(b.pid) - cpu_before
            await trio.sleep(0.3)
    finally:
        for process in reversed(processes):
            profiled = args.profile and len(processes) > 2 and process is processes[2]
            process.send_signal(signal.SIGINT if profiled else signal.SIGKILL)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    lags: list[tuple[float, float, float]] = []
    steps: list[str] = []
    with contextlib.suppress(FileNotFoundError), open(lag_path) as lag_file:  # noqa: ASYNC230 - after the run
        lines = lag_file.read().splitlines()
        lags = [
            (float(a), float(b), float(c)) for a, b, c in (line.split() for line in lines if line[:1] != "#")
        ]
        steps = [line for line in lines if line.startswith("# step")]
    storm_lags = [(late, cpu) for stamp, late, cpu in lags if start <= stamp <= end + 0.5]
    window = [rtt for stamp, rtt in samples if start <= stamp <= end]
    before = [rtt for stamp, rtt in samples if stamp < start]
    expected = list(range(args.missed + 1))
    exact = sum(1 for c in clients if [n for n, _ in c.ticks] == expected)
    with_offsets = all(isinstance(o, str) and "-" in o for c in clients for _, o in c.ticks)
    result = {
        "run": run,
        "storm": "connect (no recovery)" if plain else "recovery",
        "server_b_cpu_s": round(cpu_storm, 3),
        "n": args.n,
        "missed": args.missed,
        "timed_out": scope.cancelled_caught,
        "failures": failures[:10],
        "storm_s": round(end - start, 3),
        "recovered": sum(c.recovered for c in clients),
        "exactly_once_in_order": exact,
        "missed_received": sum(len(c.ticks) - 1 for c in clients),
        "offsets_on_every_tick": with_offsets,
        "rtt_samples": len(window),
        "rtt_median_ms": round(1000 * statistics.median(window), 2) if window else None,
        "rtt_p99_ms": round(1000 * sorted(window)[int(0.99 * (len(window) - 1))], 2) if window else None,
        "rtt_max_ms": round(1000 * max(window), 2) if window else None,
        "loop_late_max_ms": round(1000 * max((late for late, _ in storm_lags), default=0.0), 1),
        "loop_held_max_ms": round(1000 * max((min(late, cpu) for late, cpu in storm_lags), default=0.0), 1),
        "long_steps": sorted(steps, key=lambda line: -float(line.split()[2]))[:8],
        "rtt_before_median_ms": round(1000 * statistics.median(before), 2) if before else None,
    }
    print(json.dumps(result), file=sys.stderr)
    return result


async def main(args: argparse.Namespace) -> None:
    if args.pin:
        os.sched_setaffinity(0, {1})  # the runner, and what it starts but B (redis, A, the pinger)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = []
    for run in range(args.runs):  # interleaved: a recovery storm, then a plain connect storm
        results.append(await one_run(args, run, plain=False))
        if not args.no_plain:
            results.append(await one_run(args, run, plain=True))
    if args.out:
        text = json.dumps({"args": vars(args), "runs": results}, indent=2) + "\n"
        Path(args.out).write_text(text)  # noqa: ASYNC240 - after the runs
    print(
        "| run | storm | clients | missed each | storm (s) | server B CPU (s) | recovered | "
        "exactly once, in order | control RTT median / p99 / max (ms) | samples |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['run']} | {r['storm']} | {r['n']} | {r['missed']} | {r['storm_s']} | "
            f"{r['server_b_cpu_s']} | {r['recovered']} | {r['exactly_once_in_order']} | "
            f"{r['rtt_median_ms']} / {r['rtt_p99_ms']} / {r['rtt_max_ms']} | {r['rtt_samples']} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="recovering clients")
    parser.add_argument("--missed", type=int, default=20, help="broadcasts each client misses")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a phase may take")
    parser.add_argument("--out", default="", help="JSON results file")
    parser.add_argument(
        "--pin", action="store_true", help="server B on CPU 0, everything else (this runner too) on CPU 1"
    )
    parser.add_argument("--no-plain", action="store_true", help="skip the plain connect storms")
    parser.add_argument("--profile", default="", help="py-spy raw profile of server B to this file")
    parser.add_argument("--pinger", default="", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.pinger:
        trio.run(pinger, parsed.pinger)
    else:
        trio.run(main, parsed)
