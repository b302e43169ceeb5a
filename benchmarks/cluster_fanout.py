"""Cross-server fan-out through Redis: 3 trio_rooms servers beside 3 Node socket.io servers, one Redis.

Usage (from the repository root; needs redis-server, node, ``npm ci`` in tests/interop and in
benchmarks, and trio_rooms with its Redis extra)::

    python benchmarks/cluster_fanout.py [--clients 100] [--window 4] [--seconds 5] [--runs 3]
                                        [--also PATH] [--adapter redis|streams] [--recovery]
                                        [--out benchmarks/results-cluster.json]

Per run and implementation (interleaved: trio_rooms, Node, trio_rooms, ...), on a fresh key of one
redis-server: three servers as separate processes (``tests/helpers/cluster_server.py`` with ``RedisAdapter``,
or ``tests/interop/node_cluster_server.mjs`` with ``@socket.io/redis-adapter`` 8.3 ``createAdapter``,
``NODE_ENV=production``), then ``benchmarks/cluster_loadclient.mjs``: ``--clients`` receivers per server
in one room, and per server one sender keeping ``--window`` broadcasts to that room in flight, so that
each broadcast is delivered on all three servers (two thirds of the deliveries cross Redis). Figures
of the measured window: deliveries per second, and the CPU time (user + system, from /proc) of the
three servers per 1000 deliveries, and of redis-server. A run whose deliveries are not exactly once
(every acknowledged broadcast at every receiver, once) reports no figure.

``--adapter streams``: the Redis Streams adapters instead (``RedisStreamsAdapter``, ``--streams``, beside
``@socket.io/redis-streams-adapter`` 0.3): every broadcast is an XADD that each server reads back with
XREAD. ``--recovery``: connection state recovery on in every server (``--recovery``), so that each
broadcast carries its offset (with the streams adapters: the entry id, known once XADD answered).

``--also PATH`` runs a second trio_rooms too, interleaved with the others: the checkout at PATH (its
``tests/helpers/cluster_server.py``, with ``PYTHONPATH=PATH``), labelled ``trio_rooms@PATH``: a
before/after comparison under the same conditions (``git worktree add /tmp/before main``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOADCLIENT = ROOT / "benchmarks" / "cluster_loadclient.mjs"
PY_SERVER = ROOT / "tests" / "helpers" / "cluster_server.py"
NODE_SERVER = ROOT / "tests" / "interop" / "node_cluster_server.mjs"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_member(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"{argv[:2]} did not start: {line!r}")
    return process, int(line.split()[1])


def run_one(impl: str, redis_url: str, redis_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    key = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NODE_ENV": "production"}
    script = PY_SERVER
    if impl.startswith("trio_rooms@"):
        root = Path(impl.partition("@")[2])
        script = root / "tests" / "helpers" / "cluster_server.py"
        env["PYTHONPATH"] = str(root)
    members: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for index in range(3):
            if impl.startswith("trio_rooms"):
                argv = [sys.executable, str(script), f"s{index}", redis_url, key]
            else:
                argv = ["node", str(NODE_SERVER), f"n{index}", redis_url, key]
            if args.adapter == "streams":
                argv.append("--streams")
            if args.recovery:
                argv += ["--recovery", "120" if impl.startswith("trio_rooms") else "120000"]
            members.append(start_member(argv, env))
        time.sleep(0.5)  # subscriptions settle
        pids = [process.pid for process, _ in members]
        client = subprocess.Popen(
            [
                "node",
                str(LOADCLIENT),
                "--ports",
                ",".join(str(port) for _, port in members),
                "--clients",
                str(args.clients),
                "--window",
                str(args.window),
                "--seconds",
                str(args.seconds),
            ],
            stdout=subprocess.PIPE,
            cwd=ROOT / "benchmarks",
            env=env,
        )
        assert client.stdout is not None
        marks: dict[str, tuple[list[float], float]] = {}
        result: dict[str, Any] = {}
        for raw in client.stdout:
            line = raw.decode().strip()
            if line.startswith("MARK "):
                marks[line[5:]] = ([cpu_seconds(pid) for pid in pids], cpu_seconds(redis_pid))
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        client.wait(timeout=60)
        (start_cpu, start_redis), (end_cpu, end_redis) = marks["start"], marks["end"]
        server_cpu = sum(end_cpu) - sum(start_cpu)
        deliveries = result["deliveries"]
        result.update(
            impl=impl,
            server_cpu_seconds=server_cpu,
            server_cpu_per_server=[e - s for s, e in zip(start_cpu, end_cpu, strict=True)],
            redis_cpu_seconds=end_redis - start_redis,
            server_cpu_ms_per_1000=server_cpu * 1e6 / deliveries if deliveries else None,
            redis_cpu_ms_per_1000=(end_redis - start_redis) * 1e6 / deliveries if deliveries else None,
        )
        return result
    finally:
        for process, _ in members:
            process.terminate()
        for process, _ in members:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=100, help="receivers per server (default 100)")
    parser.add_argument("--window", type=int, default=4, help="broadcasts in flight per sender (default 4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per implementation (default 3)")
    parser.add_argument("--also", type=Path, help="also run the trio_rooms checkout at this path")
    parser.add_argument("--recovery", action="store_true", help="connection state recovery on")
    parser.add_argument(
        "--adapter", choices=("redis", "streams"), default="redis", help="pub/sub (default) or streams"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results-cluster.json")
    args = parser.parse_args()
    redis = shutil.which("redis-server")
    if redis is None or shutil.which("node") is None:
        print("needs redis-server and node", file=sys.stderr)
        return 2
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            cwd=workdir,
        )
        try:
            time.sleep(0.5)
            url = f"redis://127.0.0.1:{port}"
            runs: list[dict[str, Any]] = []
            impls = ["trio_rooms", "node"]
            if args.also is not None:
                impls.insert(1, f"trio_rooms@{args.also.resolve()}")
            for run in range(args.runs):
                for impl in impls:
                    result = run_one(impl, url, server.pid, args)
                    result["run"] = run
                    runs.append(result)
                    print(json.dumps(result), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)
    summary: dict[str, Any] = {}
    for impl in impls:
        good = [r for r in runs if r["impl"] == impl and r["exactly_once"]]
        summary[impl] = {
            "runs": len(good),
            "deliveries_per_second": [round(r["deliveries_per_second"]) for r in good],
            "server_cpu_ms_per_1000": [round(r["server_cpu_ms_per_1000"], 1) for r in good],
            "redis_cpu_ms_per_1000": [round(r["redis_cpu_ms_per_1000"], 1) for r in good],
            "median_deliveries_per_second": round(statistics.median(r["deliveries_per_second"] for r in good))
            if good
            else None,
            "median_server_cpu_ms_per_1000": round(
                statistics.median(r["server_cpu_ms_per_1000"] for r in good), 1
            )
            if good
            else None,
        }
    settings = vars(args) | {"out": str(args.out), "also": str(args.also)}
    args.out.write_text(json.dumps({"args": settings, "runs": runs, "summary": summary}, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
