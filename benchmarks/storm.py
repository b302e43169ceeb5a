"""The reconnect storm of issue 13: N stock clients reconnecting at once to a server that restarts.

Not a CI test. From the repository root, after ``npm ci`` in benchmarks/ (socket.io-client 4.8)::

    python benchmarks/storm.py                       # 5000 clients, 3 interleaved runs of each setting
    python benchmarks/storm.py --n 1000 --runs 1 --servers trio --transports websocket

A setting is a server (``trio``: server_trio.py, ``node``: server_node.mjs with NODE_ENV=production; as
run.py) and the clients' transports (``default``: the stock client's polling then upgrade to WebSocket;
``websocket``: ``transports: ["websocket"]``). The settings run interleaved (trio/default,
node/default, trio/websocket, node/websocket, trio/default, ...). One run:

1. a server on a free port of 127.0.0.1 (pinned to CPU 0, ``taskset``) and ``--procs`` Node processes
   of ``storm_client.mjs`` (pinned to CPU 1) holding N stock ``socket.io-client`` clients between them
   (default options; each joins a room of 100 with an ack, on every "connect"); a broadcast to all
   rooms checks that each client gets it exactly once;
2. the server is killed (SIGKILL: an abrupt restart) and, as soon as the kernel has reaped it, a new
   one of the same kind starts on the same port. The clients retry with their backoff (1 s doubling to
   5 s, +-50 %). A thread samples the new server's /proc (utime + stime, VmRSS) and the clients' CPU
   time every ``--sample-ms`` (50);
3. when every client is connected and joined again (the clients say so at once, with the time on
   their CLOCK_MONOTONIC, which is the clock of time.monotonic here), or after ``--storm-timeout``,
   another broadcast to all rooms checks that every client is reachable once.

Figures of a run (times from the moment the new server's ready line reached this runner, just after it
listens): ``back_s`` (every client connected and joined again), ``connected_s`` (the last
"connect"), the count of clients connected again at 1, 2, 5 and 10 s, the failed reconnection attempts
(the Manager's "reconnect_error": refused connections before the new server listens, and anything
else), the new server's peak RSS (VmHWM: its peak since it started; the samples' maximum is in the
JSON too) and CPU time from listening to ``back_s``, and the clients' CPU time in that window (if it
is close to the window's length, the clients, not the server, set the pace). A run fails if a client
is not back within the timeout, a broadcast check fails or a server dies.

Writes every figure of every run, the samples and each client's record to
``benchmarks/results-storm.json`` (``--out``) and prints a Markdown table (medians [min-max] of the
runs, ratios trio_rooms / Node) on stdout, progress on stderr. Everything on 127.0.0.1 and bounded
(``--connect-timeout``, ``--storm-timeout``); RLIMIT_NOFILE is raised to the hard limit.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import contextlib
import datetime
import json
import math
import os
import queue
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from run import HERE, LABELS, SERVERS, fmt, machine, pin_prefix, raise_nofile, read_proc, stop

CLIENT = HERE / "storm_client.mjs"
#: Diagnostic servers (not in the default --servers): trio_rooms listening otherwise
#: (server_trio_listen.py): a listen backlog of 511 as Node's, and/or every pending connection
#: accepted at once (as libuv does) instead of one per pass of trio's scheduler.
LISTEN = (sys.executable, str(HERE / "server_trio_listen.py"))
SERVERS.update(
    {
        "trio-b511": (*LISTEN, "--backlog", "511"),
        "trio-acceptall": (*LISTEN, "--accept-all"),
        "trio-b511-acceptall": (*LISTEN, "--backlog", "511", "--accept-all"),
    }
)
LABELS.update(
    {
        "trio-b511": "trio_rooms, backlog 511",
        "trio-acceptall": "trio_rooms, accept all",
        "trio-b511-acceptall": "trio_rooms, backlog 511 + accept all",
    }
)
TRANSPORTS = {"default": "polling then WebSocket", "websocket": "WebSocket only"}
#: The "connected again by" checkpoints, seconds after the new server listens.
CHECKPOINTS = (1, 2, 5, 10)


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    lower_is_better: bool


FIGURES = (
    Figure("connect_cpu_ms_per_client", "first connect + join: server CPU per client", "ms", True),
    Figure("back_s", "time until every client is connected and joined again", "s", True),
    Figure("back_after_kill_s", "the same from the kill (the restart as the clients see it)", "s", True),
    Figure("connected_s", "time until the last client's reconnection (its 'connect')", "s", True),
    Figure("median_reconnect_s", "median client's reconnection", "s", True),
    *(Figure(f"connected_by_{t}s", f"clients connected again at {t} s", "", False) for t in CHECKPOINTS),
    Figure("failed_attempts", "failed reconnection attempts (all clients)", "", True),
    Figure("failed_before_listening", "of which before the new server listened", "", True),
    Figure("reconnected_twice", "clients that reconnected more than once", "", True),
    Figure("upgrade_errors", "failed upgrades to WebSocket (the engine's upgradeError)", "", True),
    Figure("startup_s", "kill -> new server listening", "s", True),
    Figure("peak_rss_mb", "new server's peak RSS (VmHWM)", "MB", True),
    Figure("storm_cpu_s", "new server's CPU time, listening -> every client back", "s", True),
    Figure("storm_cpu_ms_per_client", "new server's CPU per reconnected client", "ms", True),
    Figure("client_cpu_share", "storm clients' CPU time / the window's length", "", True),
    Figure("connected_rss_mb", "old server's RSS with every client connected", "MB", True),
)


@dataclass
class StormRun:
    server: str
    transport: str
    run: int
    n: int
    port: int = 0
    ok: bool = False
    figures: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    ready: dict[str, Any] = field(default_factory=dict)
    clients_ready: list[dict[str, Any]] = field(default_factory=list)
    verify: list[dict[str, Any]] = field(default_factory=list)
    failure_kinds: dict[str, int] = field(default_factory=dict)
    disconnect_reasons: dict[str, int] = field(default_factory=dict)
    upgrade_error_kinds: dict[str, int] = field(default_factory=dict)
    net: dict[str, dict[str, int]] = field(default_factory=dict)
    cpus: dict[str, dict[str, float]] = field(default_factory=dict)
    server_stats: dict[str, Any] = field(default_factory=dict)
    timeline: list[list[float]] = field(default_factory=list)
    samples: list[list[float]] = field(default_factory=list)
    distribution: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    logs: str = ""
    seconds: float = 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def pump_timed(stream: IO[bytes], lines: queue.Queue[tuple[float, str | None]]) -> None:
    """Each line of ``stream`` with the time.monotonic() at which it was read; None at the end."""
    for raw in stream:
        lines.put((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
    lines.put((time.monotonic(), None))


class Proc:
    """A child process whose stdout lines arrive, timed, in a queue."""

    def __init__(self, cmd: list[str], err: Path, env: dict[str, str], stdin: bool = False) -> None:
        with open(err, "wb") as err_file:
            self.popen = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err_file,
                cwd=HERE,
                env=env,
            )
        self.spawned = time.monotonic()
        self.lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
        assert self.popen.stdout is not None
        threading.Thread(target=pump_timed, args=(self.popen.stdout, self.lines), daemon=True).start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def expect(self, tag: str, deadline: float) -> tuple[float, dict[str, Any]]:
        """The next line ``TAG {json}`` (or, with tag "", the next JSON line) and when it was read."""
        while True:
            try:
                at, line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {tag or 'ready'} line in time") from None
            if line is None:
                raise RuntimeError(f"exited with {self.popen.wait(5)} before its {tag or 'ready'} line")
            if not tag and line.startswith("{"):
                doc: dict[str, Any] = json.loads(line)
                return at, doc
            if tag and line.startswith(tag + " "):
                doc = json.loads(line[len(tag) + 1 :])
                return at, doc

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()


#: Kernel TCP counters (system-wide, of this network namespace) whose change over the storm says what
#: the listen queue and the retransmissions did: a full accept queue drops SYNs, which the client
#: retransmits 1 s, then 3 s, 7 s ... later.
NET_COUNTERS = (
    "TcpExt:ListenOverflows",
    "TcpExt:ListenDrops",
    "TcpExt:TCPSynRetrans",
    "TcpExt:TCPTimeouts",
    "Tcp:RetransSegs",
    "Tcp:AttemptFails",
    "Tcp:EstabResets",
    "Tcp:ActiveOpens",
    "Tcp:PassiveOpens",
)


def net_counters() -> dict[str, int]:
    """The NET_COUNTERS now, from /proc/net/netstat and /proc/net/snmp."""
    out: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for head, values in zip(lines[::2], lines[1::2], strict=False):
            names, numbers = head.split(), values.split()
            for name, number in zip(names[1:], numbers[1:], strict=False):
                key = names[0] + name
                if key in NET_COUNTERS:
                    out[key] = int(number)
    return out


def net_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k.split(":")[1]: after[k] - before[k] for k in NET_COUNTERS if k in before and k in after}


def run_delay_s(pid: int) -> float:
    """Time the process spent runnable but waiting for a CPU (/proc/PID/schedstat), all threads."""
    total = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[1]) / 1e9
    except OSError:
        return float("nan")
    return total


def cpu_times() -> dict[str, list[float]]:
    """Per CPU (cpu0, cpu1, ...): [busy, steal, idle] seconds since boot, from /proc/stat."""
    tck = os.sysconf("SC_CLK_TCK")
    out: dict[str, list[float]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) / tck for v in values[:8])
            out[name] = [user + nice + system + irq + softirq, steal, idle + iowait]
    return out


def cpu_delta(before: dict[str, list[float]], after: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        cpu: {k: round(after[cpu][i] - before[cpu][i], 2) for i, k in enumerate(("busy", "steal", "idle"))}
        for cpu in before
        if cpu in after
    }


def cpu_of(pid: int) -> float:
    try:
        return read_proc(pid).cpu_s
    except OSError:
        return float("nan")


def vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Sampler:
    """Samples the server's CPU time and RSS, and the clients' CPU time, every ``every`` seconds."""

    def __init__(self, server: int, clients: list[int], every: float) -> None:
        self.server = server
        self.clients = clients
        self.every = every
        self.samples: list[tuple[float, float, float, float]] = []  # t, server CPU, RSS KB, clients' CPU
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        next_at = time.monotonic()
        while not self.done.is_set():
            try:
                s = read_proc(self.server)
            except OSError:
                return
            clients = sum(cpu_of(pid) for pid in self.clients)
            self.samples.append((s.t, s.cpu_s, float(s.rss_kb), clients))
            next_at += self.every
            self.done.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> list[tuple[float, float, float, float]]:
        self.done.set()
        self.thread.join(5)
        return self.samples


def server_env(server: str) -> dict[str, str]:
    env = dict(os.environ)
    if server == "node":
        env["NODE_ENV"] = "production"
    return env


def start_server(server: str, port: int, stem: str, stats: bool = False) -> Proc:
    """The server; with ``stats`` (server_trio.py only) its ``--stats-stdin`` side channel."""
    extra = ["--stats-stdin"] if stats else []
    cmd = [*pin_prefix(0), *SERVERS[server], "--port", str(port), *extra]
    return Proc(cmd, Path(stem), server_env(server), stdin=stats)


def with_stats(server: str, args: argparse.Namespace) -> bool:
    return bool(args.trio_stats) and SERVERS[server][1:2] == (str(HERE / "server_trio.py"),)


def kill(proc: Proc) -> None:
    if proc.popen.poll() is None:
        proc.popen.kill()
    proc.popen.wait(10)


def one_run(server: str, transport: str, run: int, args: argparse.Namespace, logdir: Path) -> StormRun:
    n: int = args.n
    res = StormRun(server, transport, run, n, port=args.port or free_port())
    started = time.monotonic()
    stem = f"{logdir}/{server}-{transport}-run{run}"
    res.logs = stem
    shares = split(n, args.procs)
    old: Proc | None = None
    new: Proc | None = None
    clients: list[Proc] = []
    sampler: Sampler | None = None
    try:
        old = start_server(server, res.port, f"{stem}.server1.err")
        _, res.ready = old.expect("", time.monotonic() + 30)
        res.marks["ready_cpu_s"] = read_proc(old.pid).cpu_s
        net0 = net_counters()
        first = 0
        for k, share in enumerate(shares):
            cmd = [*pin_prefix(1), "node", str(CLIENT), "--port", str(res.port), "--n", str(share)]
            cmd += ["--first", str(first), "--transport", transport, *shlex.split(args.client_args)]
            clients.append(Proc(cmd, Path(f"{stem}.client{k}.err"), dict(os.environ), stdin=True))
            first += share
        deadline = time.monotonic() + args.connect_timeout + 30
        for c in clients:
            res.clients_ready.append(c.expect("READY", deadline)[1])
        bad = [r for r in res.clients_ready if not r["verify"]["ok"] or r["errors"]]
        if bad:
            raise RuntimeError(f"before the storm: {bad[0]['verify']} {bad[0]['errors'][:3]}")
        res.net["connect"] = net_delta(net0, net_counters())
        time.sleep(args.settle)
        connected = read_proc(old.pid)
        res.marks["connected_rss_kb"] = connected.rss_kb
        res.marks["connected_cpu_s"] = connected.cpu_s
        # The first connect (every client's handshake, upgrade when default, CONNECT, join and the
        # verifying broadcast) as the server paid it, from listening to every client joined.
        connect_cpu = res.marks["connected_cpu_s"] - res.marks["ready_cpu_s"]
        res.figures["connect_cpu_ms_per_client"] = connect_cpu / n * 1000
        if args.connect_only:
            res.ok = not res.errors
            res.seconds = time.monotonic() - started
            return res
        client_cpu0 = sum(cpu_of(c.pid) for c in clients)

        # The restart: SIGKILL, reap, and a new server on the same port at once.
        net1 = net_counters()
        cpus1 = cpu_times()
        t_kill = time.monotonic()
        kill(old)
        t_dead = time.monotonic()
        new = start_server(server, res.port, f"{stem}.server2.err", with_stats(server, args))
        sampler = Sampler(new.pid, [c.pid for c in clients], args.sample_ms / 1000)
        t_listen, ready2 = new.expect("", time.monotonic() + 30)
        at_listen = read_proc(new.pid)
        clients_at_listen = sum(cpu_of(c.pid) for c in clients)
        res.marks.update(
            kill=t_kill,
            dead=t_dead,
            spawned=new.spawned,
            listen=t_listen,
            listen_cpu_s=at_listen.cpu_s,
            listen_rss_kb=at_listen.rss_kb,
            listen_run_delay_s=run_delay_s(new.pid),
            clients_cpu_before_kill_s=client_cpu0,
            clients_cpu_at_listen_s=clients_at_listen,
        )
        if ready2.get("port") != res.port:
            raise RuntimeError(f"the new server listens on {ready2.get('port')}, not {res.port}")

        # Every client back (each process says BACK at once), or the storm's timeout.
        deadline = t_listen + args.storm_timeout
        backs: list[float] = []
        try:
            for c in clients:
                backs.append(c.expect("BACK", deadline)[1]["at"])
        except TimeoutError:
            res.errors.append(f"not every client back within {args.storm_timeout} s")
        t_back = max(backs) if len(backs) == len(clients) else None
        res.net["storm"] = net_delta(net1, net_counters())
        res.cpus = cpu_delta(cpus1, cpu_times())
        at_back = read_proc(new.pid)
        res.marks.update(
            back=t_back or float("nan"),
            back_read=at_back.t,
            back_cpu_s=at_back.cpu_s,
            back_rss_kb=at_back.rss_kb,
            back_hwm_kb=vm_hwm_kb(new.pid),
            back_run_delay_s=run_delay_s(new.pid),
            clients_cpu_at_back_s=sum(cpu_of(c.pid) for c in clients),
        )
        if with_stats(server, args):  # the server's counters (diagnostic: timed-out upgrades, ...)
            new.send("stats")
            res.server_stats = new.expect("STATS", time.monotonic() + 30)[1]
        time.sleep(args.settle)
        samples = [  # [s from listening, server CPU s, server RSS KB, clients' CPU s]
            [round(t - t_listen, 3), round(cpu, 2), rss, round(ccpu, 2)]
            for t, cpu, rss, ccpu in sampler.stop()
        ]
        Path(f"{stem}.samples.json").write_text(json.dumps(samples))
        before_back = [x[2] for x in samples if x[0] <= res.marks["back_read"] - t_listen]
        res.marks["sampled_peak_rss_kb"] = max(before_back, default=0.0)
        res.samples = thin(samples, 0.25)
        sampler = None
        res.marks["settled_hwm_kb"] = vm_hwm_kb(new.pid)

        results: list[dict[str, Any]] = []
        for c in clients:
            c.send("verify")
        deadline = time.monotonic() + 60
        for c in clients:
            results.append(c.expect("RESULT", deadline)[1])
        Path(f"{stem}.clients.json").write_text(json.dumps({"marks": res.marks, "results": results}))
        if new.popen.poll() is not None:
            res.errors.append(f"the new server exited with {new.popen.returncode}")
        res.figures.update(figures(res, results))
        res.ok = not res.errors
    except Exception as exc:  # one failed run must not end the others
        res.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if sampler is not None:
            sampler.stop()
        for c in clients:
            if c.popen.poll() is None:
                with contextlib.suppress(OSError):
                    c.send("exit")
        for c in clients:
            try:
                c.popen.wait(10)
            except subprocess.TimeoutExpired:
                c.popen.kill()
                c.popen.wait(5)
        for proc in (old, new):
            if proc is not None:
                stop(proc.popen)
    res.seconds = time.monotonic() - started
    return res


def split(n: int, procs: int) -> list[int]:
    """N clients over ``procs`` processes, in whole rooms of 100 where possible."""
    rooms = -(-n // 100)
    per = [rooms // procs + (1 if k < rooms % procs else 0) for k in range(procs)]
    shares = [r * 100 for r in per if r]
    shares[-1] -= sum(shares) - n
    return shares


def figures(res: StormRun, results: list[dict[str, Any]]) -> dict[str, float]:
    """The run's figures from the marks and the clients' records; adds the failures to ``res``."""
    m = res.marks
    t_listen = m["listen"]
    records = [rec for r in results for rec in r["clients"]]
    res.verify = [{"before": r["verify_before"], "after": r["verify_after"]} for r in results]
    for r in results:
        if not r["verify_after"]["ok"]:
            res.errors.append(f"broadcast after the storm: {json.dumps(r['verify_after'])}")
        res.errors.extend(r["errors"][:10])
    reconnected = sorted(rec["reconnected"] - t_listen for rec in records if rec["reconnected"] is not None)
    lost = res.n - len(reconnected)
    if lost:
        res.errors.append(f"{lost} clients did not reconnect")
    kinds: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    for rec in records:
        kinds.update(rec["failure_kinds"])
        reasons.update(rec["reasons"])
    res.failure_kinds = dict(kinds.most_common())
    upgrade_kinds = collections.Counter(e[1] for rec in records for e in rec.get("upgrade_errors", ()))
    res.upgrade_error_kinds = dict(upgrade_kinds.most_common())
    res.disconnect_reasons = dict(reasons.most_common())
    disconnected = sorted(rec["disconnect"] - m["kill"] for rec in records if rec["disconnect"] is not None)
    res.distribution = {
        "reconnected_s": quantiles(reconnected),
        "disconnected_after_kill_s": quantiles(disconnected),
        "attempts_per_client": count_of(rec["attempts"] for rec in records),
        "failures_per_client": count_of(rec["failures"] for rec in records),
        "connects_per_client": count_of(rec["connects"] for rec in records),
    }
    # clients connected again over time (s from listening, count), every 0.25 s from the kill
    start = math.floor((m["kill"] - t_listen) * 4) / 4
    end = reconnected[-1] if reconnected else 0.0
    res.timeline = [
        [t, bisect.bisect_right(reconnected, t)]
        for t in (start + k / 4 for k in range(int((end - start) * 4) + 2))
    ]
    out: dict[str, float] = {
        "startup_s": t_listen - m["kill"],
        "failed_attempts": float(sum(rec["failures"] for rec in records)),
        "attempts": float(sum(rec["attempts"] for rec in records)),
        "failed_before_listening": float(
            sum(1 for rec in records for t in rec["failure_times"] if t < t_listen)
        ),
        "clients_with_failures": float(sum(1 for rec in records if rec["failures"])),
        # failed WebSocket probes (the engine's "upgradeError"): the client stays on polling, or is left
        # paused when its polling transport was pausing for the upgrade (see README)
        "upgrade_errors": float(sum(len(rec.get("upgrade_errors", ())) for rec in records)),
        "reconnected_twice": float(sum(1 for rec in records if rec["connects"] > 1)),
        "lost": float(lost),
        "connected_rss_mb": m["connected_rss_kb"] / 1024,
        "startup_cpu_s": m["listen_cpu_s"],
    }
    for cp in CHECKPOINTS:
        out[f"connected_by_{cp}s"] = float(sum(1 for x in reconnected if x <= cp))
    if reconnected:
        out["median_reconnect_s"] = statistics.median(reconnected)
        out["first_reconnect_s"] = reconnected[0]
    if not lost and m["back"] == m["back"]:  # every client back (not NaN)
        window = m["back"] - t_listen
        out["back_s"] = window
        out["back_after_kill_s"] = m["back"] - m["kill"]
        out["connected_s"] = max(rec["last_connect"] for rec in records) - t_listen
        joined = [rec["joined"] for rec in records if rec["joined"] is not None]
        out["joined_s"] = max(joined) - t_listen
        out["peak_rss_mb"] = m["back_hwm_kb"] / 1024
        out["sampled_peak_rss_mb"] = m["sampled_peak_rss_kb"] / 1024
        out["storm_cpu_s"] = m["back_cpu_s"] - m["listen_cpu_s"]
        out["storm_cpu_ms_per_client"] = out["storm_cpu_s"] / res.n * 1000
        # time the new server was runnable but had no CPU (another process on its core: noise)
        out["server_run_delay_s"] = m["back_run_delay_s"] - m["listen_run_delay_s"]
        # CPU 0's busy time (kill -> back) beyond the new server's own: others on the server's core
        if "cpu0" in res.cpus:
            out["cpu0_others_s"] = res.cpus["cpu0"]["busy"] - m["back_cpu_s"]
        clients_cpu = m["clients_cpu_at_back_s"] - m["clients_cpu_at_listen_s"]
        out["client_cpu_s"] = clients_cpu
        out["client_cpu_share"] = clients_cpu / max(window, 1e-9)
        upgraded = [rec["upgraded"] for rec in records if rec["upgraded"] is not None]
        if res.transport == "default" and len(upgraded) == res.n:
            out["upgraded_s"] = max(upgraded) - t_listen
    return out


def thin(samples: list[list[float]], step: float) -> list[list[float]]:
    """One sample per ``step`` seconds, and the one of the highest RSS (the JSON stays small; every
    sample is in the log directory)."""
    if not samples:
        return []
    peak = max(samples, key=lambda x: x[2])
    out: list[list[float]] = []
    next_t = samples[0][0]
    for x in samples:
        if x[0] >= next_t:
            out.append(x)
            next_t = x[0] + step
        elif x is peak:
            out.append(x)
    return out


def quantiles(values: list[float]) -> dict[str, float]:
    """Some quantiles of sorted ``values`` (nearest rank), rounded to the ms."""
    if not values:
        return {}
    out = {}
    for q in (0, 10, 25, 50, 75, 90, 99, 100):
        out[f"p{q}"] = round(values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))], 3)
    return out


def count_of(values: Iterable[int]) -> dict[str, int]:
    """How many clients had each value, by value."""
    return {str(k): v for k, v in sorted(collections.Counter(values).items())}


def compact(text: str) -> str:
    """JSON text with each innermost list of numbers on one line."""
    return re.sub(
        r"\[\s*((?:-?[\d.eE+-]+|null)(?:,\s*(?:-?[\d.eE+-]+|null))*)\s*\]",
        lambda mo: "[" + re.sub(r",\s*", ", ", mo.group(1)) + "]",
        text,
    )


def summarize(results: list[StormRun], settings: list[tuple[str, str]]) -> dict[str, Any]:
    keys = sorted({k for r in results for k in r.figures})
    summary: dict[str, Any] = {}
    for transport in dict.fromkeys(t for _, t in settings):
        per: dict[str, Any] = {}
        for key in keys:
            row: dict[str, Any] = {}
            for server in dict.fromkeys(s for s, t in settings if t == transport):
                vals = [
                    r.figures[key]
                    for r in results
                    if r.server == server and r.transport == transport and key in r.figures
                ]
                row[server] = (
                    {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals)}
                    if vals
                    else None
                )
            if row.get("trio"):
                for peer in list(row):
                    if peer != "trio" and row.get(peer) and row[peer]["median"]:
                        row[f"trio/{peer}"] = row["trio"]["median"] / row[peer]["median"]
            per[key] = row
        summary[transport] = per
    return summary


def table(summary: dict[str, Any], settings: list[tuple[str, str]], n: int) -> str:
    servers = list(dict.fromkeys(s for s, _ in settings))
    peers = [p for p in servers if p != "trio"] if "trio" in servers else []
    head = ["clients' transports", "figure", "better"] + [LABELS[s] for s in servers]
    head += [f"trio_rooms / {LABELS[p]}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for transport, per in summary.items():
        for f in FIGURES:
            row = per.get(f.key)
            if row is None:
                continue
            unit = f" ({f.unit})" if f.unit else ""
            label = f.label if "connected_by" not in f.key else f"{f.label} (of {n:,})"
            cells = [TRANSPORTS[transport], label + unit, "lower" if f.lower_is_better else "higher"]
            for srv in servers:
                v = row.get(srv)
                if v is None:
                    cells.append("-" if (srv, transport) not in settings else "no figure")
                elif v["runs"] == 1:
                    cells.append(fmt(v["median"]))
                else:
                    cells.append(f"{fmt(v['median'])} [{fmt(v['min'])}-{fmt(v['max'])}]")
            for p in peers:
                r = row.get(f"trio/{p}")
                cells.append("-" if r is None else f"{r:.2f}x")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="clients (default 5000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each setting (default 3)")
    parser.add_argument("--servers", default="trio,node", help="comma-separated, among run.py's servers")
    parser.add_argument(
        "--transports", default="default,websocket", help="clients' transports: default,websocket"
    )
    parser.add_argument("--procs", type=int, default=1, help="storm client processes (default 1)")
    parser.add_argument("--port", type=int, default=0, help="the servers' port (default: a free one per run)")
    parser.add_argument("--sample-ms", type=float, default=50.0, help="/proc sampling period (default 50)")
    parser.add_argument("--connect-timeout", type=float, default=180.0, help="bound of the first connect")
    parser.add_argument("--storm-timeout", type=float, default=180.0, help="bound of the storm, seconds")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before the kill and after")
    parser.add_argument(
        "--trio-stats",
        action="store_true",
        help="diagnostic: run server_trio.py with --stats-stdin and keep its counters when all are back",
    )
    parser.add_argument("--client-args", default="", help="more arguments of storm_client.mjs")
    parser.add_argument("--out", type=Path, default=HERE / "results-storm.json", help="the JSON output")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--connect-only",
        action="store_true",
        help="measure the first connect + join only (no restart): the default-transports connect figure",
    )
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    transports = [t for t in args.transports.split(",") if t]
    if set(servers) - set(SERVERS) or set(transports) - set(TRANSPORTS):
        parser.error(f"servers among {sorted(SERVERS)}, transports among {sorted(TRANSPORTS)}")
    if args.n < 1 or args.procs < 1 or args.procs > max(1, args.n // 100):
        parser.error("--n >= 1 and 1 <= --procs <= n / 100")
    settings = [(s, t) for t in transports for s in servers]
    limit = raise_nofile(2 * args.n + 1000)
    if limit < args.n + 200:
        print(f"RLIMIT_NOFILE is {limit}: too low for N = {args.n}", file=sys.stderr)
        return 2
    if not (HERE / "node_modules" / "socket.io-client").exists():
        print("run `npm ci` in benchmarks/ first (socket.io-client)", file=sys.stderr)
        return 2
    logdir = Path(tempfile.mkdtemp(prefix="trio-rooms-storm-"))
    command = "python benchmarks/storm.py " + shlex.join(sys.argv[1:])
    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command.strip(),
        "machine": machine(),
        "settings": {
            "n": args.n,
            "runs": args.runs,
            "servers": servers,
            "transports": transports,
            "procs": args.procs,
            "sample_ms": args.sample_ms,
            "storm_timeout": args.storm_timeout,
            "rlimit_nofile": limit,
            "client": "socket.io-client (default options, forceNew)",
        },
        "logs": str(logdir),
    }
    print(f"# {json.dumps(info)}", file=sys.stderr)
    results: list[StormRun] = []
    for run in range(1, args.runs + 1):
        for server, transport in settings:  # interleaved
            r = one_run(server, transport, run, args, logdir)
            results.append(r)
            status = "ok" if r.ok else "FAILED: " + "; ".join(r.errors[:5])
            shown = {k: round(v, 3) for k, v in r.figures.items()}
            print(
                f"[{server}/{transport} run {run}] {r.seconds:.0f} s, {status} {json.dumps(shown)}",
                file=sys.stderr,
            )
    versions: dict[str, Any] = {}
    for r in results:
        versions.update(r.ready.get("versions", {}))
    client_pkg = HERE / "node_modules" / "socket.io-client" / "package.json"
    versions["socket.io-client"] = json.loads(client_pkg.read_text())["version"]
    summary = summarize(results, settings)
    md = table(summary, settings, args.n)
    print(f"`{command.strip()}`\n")
    print(md)
    doc = {**info, "versions": versions, "summary": summary, "runs": [r.__dict__ for r in results]}
    args.out.write_text(compact(json.dumps(doc, indent=1)) + "\n")
    if args.markdown:
        args.markdown.write_text(md + "\n")
    print(f"wrote {args.out}; logs in {logdir}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
