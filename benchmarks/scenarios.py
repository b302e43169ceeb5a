"""The extra measurements of issue #4 that run.py does not make (see RESULTS.md, second section).

Groups (``--groups``, default all):

- ``scale``: fan-out to rooms of 100 (cycling over the same 10 rooms, 1000 recipients) at N = 1000
  (``base``), at N = 1000 with 100,000 more rooms in the namespace (``rooms100k``: one member each,
  made with ``adapter.add_all`` over 4 sockets) and at N = 10,000 (``outside``: 9000 connected sockets
  outside every target). The ratios rooms100k / base and outside / base should be about 1.0.
- ``poll``: the same fan-out with long-polling clients (``poll``), and one trio_rooms run with the
  debug counters of ``server_trio.py --count-encodes`` (``poll-count``): packets encoded and
  long-polling texts built, against broadcasts and deliveries.
- ``bigroom``: N = 10,100; back-to-back broadcasts to a room of 10,000 while the latency of an
  unrelated room of 100 is measured at 50 broadcasts/s (and before, without the big broadcasts).
- ``profile``: one trio_rooms fan-out run (N = 1000) with ``py-spy record --format raw`` attached
  during the fan-out phase only, summarised by ``profile_summary.py``; ``profile-asgi`` (not in the
  default groups): the same for the native server and for ``trio_rooms.ASGIApp`` under Hypercorn.

Same rules as run.py: server pinned to CPU 0, load client (and py-spy) to CPU 1, CPU time from /proc
(utime and stime apart here), runs interleaved (trio, node, trio, node, ...), a phase failing its
exactly-once check gives no figure, everything bounded, 127.0.0.1 only::

    python benchmarks/scenarios.py --runs 3
    python benchmarks/scenarios.py --groups scale --runs 3 --servers trio,node
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profile_summary import summarize_raw
from run import (
    CLK_TCK,
    HERE,
    LABELS,
    SERVERS,
    fmt,
    machine,
    pin_prefix,
    pump_lines,
    raise_nofile,
    stop,
    wait_ready,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str
    n: int
    client: tuple[str, ...]  # after the common options: a "--deliveries" here wins
    servers: tuple[str, ...] = ("trio", "node")
    server_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    client_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    runs: int | None = None  # None: --runs
    profile: bool = False


FANOUT10 = ("--phases", "fanout", "--fanout-rooms", "10")
SCENARIOS = (
    Scenario("base", "scale", 1000, FANOUT10),
    Scenario("rooms100k", "scale", 1000, (*FANOUT10, "--extra-rooms", "100000")),
    Scenario("outside", "scale", 10_000, FANOUT10),
    # Diagnostic (not in the default groups): 100,000 rooms, then gc.freeze() in the server.
    Scenario(
        "rooms100k-frozen",
        "scale-gc",
        1000,
        (*FANOUT10, "--extra-rooms", "100000"),
        servers=("trio",),
        server_args={"trio": ("--gc-freeze-rooms",)},
    ),
    # trio_rooms answers about one long-polling delivery per ms: a smaller phase keeps it bounded.
    Scenario(
        "poll",
        "poll",
        1000,
        (*FANOUT10, "--transport", "polling", "--deliveries", "20000"),
        servers=("trio", "node", "psio"),
    ),
    Scenario(
        "poll-count",
        "poll",
        1000,
        (*FANOUT10, "--transport", "polling", "--server-stats", "--deliveries", "20000"),
        servers=("trio",),
        server_args={"trio": ("--count-encodes",)},
        runs=1,
    ),
    Scenario(
        "bigroom",
        "bigroom",
        10_100,
        ("--phases", "bigroom", "--big-room", "10000"),
        server_args={"trio": ("--trace-requests",)},
        client_args={"trio": ("--trace-requests",)},
    ),
    Scenario(
        "profile",
        "profile",
        1000,
        (*FANOUT10, "--deliveries", "600000"),
        servers=("trio",),
        runs=1,
        profile=True,
    ),
    # Not in the default groups: the profile of trio_rooms.ASGIApp under Hypercorn's trio worker
    # (issue 14), beside the native one measured in the same run.
    Scenario(
        "profile-asgi",
        "profile-asgi",
        1000,
        (*FANOUT10, "--deliveries", "100000"),
        servers=("trio", "asgi"),
        runs=1,
        profile=True,
    ),
    # Not in the default groups: the same profile with long-polling clients.
    Scenario(
        "profile-poll",
        "profile-poll",
        1000,
        (*FANOUT10, "--transport", "polling", "--deliveries", "10000"),
        servers=("trio",),
        runs=1,
        profile=True,
    ),
)


@dataclass
class Mark:
    utime: float
    stime: float
    rss_kb: int
    t: float


@dataclass
class Run:
    scenario: str
    server: str
    run: int
    ok: bool = False
    figures: dict[str, float] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    marks: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def read_marks(pid: int) -> Mark:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Mark(int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK, rss, time.monotonic())


def start_pyspy(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("py-spy not found: pip install py-spy")
    cmd = [*pin_prefix(1), exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    cmd += ["--nonblocking", "--output", str(out)]
    with open(f"{out}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    time.sleep(0.5)  # let it attach before the phase starts
    return proc


def one_run(sc: Scenario, server: str, run: int, args: argparse.Namespace, logdir: Path) -> Run:
    res = Run(sc.name, server, run)
    started = time.monotonic()
    stem = logdir / f"{sc.name}-{server}-run{run}"
    env = dict(os.environ)
    if server == "node":
        env["NODE_ENV"] = "production"
    marks: dict[str, Mark] = {}
    spy: subprocess.Popen[bytes] | None = None
    raw = Path(f"{stem}.pyspy.raw")
    with (
        open(f"{stem}.server.out", "wb") as s_out,
        open(f"{stem}.server.err", "wb") as s_err,
        open(f"{stem}.client.err", "wb") as c_err,
    ):
        sproc = subprocess.Popen(
            [*pin_prefix(0), *SERVERS[server], "--port", "0", *sc.server_args.get(server, ())],
            stdout=s_out,
            stderr=s_err,
            stdin=subprocess.DEVNULL,
            cwd=HERE,
            env=env,
        )
        cproc: subprocess.Popen[bytes] | None = None
        try:
            ready = wait_ready(sproc, Path(f"{stem}.server.out"), 30)
            cmd = [
                *pin_prefix(1),
                "node",
                str(HERE / "loadclient.mjs"),
                "--sync",
                "--port",
                str(ready["port"]),
            ]
            cmd += [
                "--n",
                str(sc.n),
                "--deliveries",
                str(args.deliveries),
                "--big-count",
                str(args.big_count),
            ]
            cmd += [
                "--latency-seconds",
                str(args.latency_seconds),
                "--phase-timeout",
                str(args.phase_timeout),
            ]
            cmd += [*sc.client, *sc.client_args.get(server, ())]
            cproc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=c_err, cwd=HERE
            )
            assert cproc.stdin is not None and cproc.stdout is not None
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=pump_lines, args=(cproc.stdout, lines), daemon=True).start()
            deadline = started + args.run_timeout
            while True:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                if line is None:
                    break
                if line.startswith("MARK "):
                    name = line[5:]
                    if sc.profile and name == "fanout-start":
                        spy = start_pyspy(sproc.pid, raw, args.pyspy_rate)
                    if sc.profile and name == "fanout-end" and spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(30)
                    marks[name] = read_marks(sproc.pid)
                    cproc.stdin.write(b"ok\n")
                    cproc.stdin.flush()
                elif line.startswith("RESULT "):
                    res.client = json.loads(line[7:])
            cproc.wait(10)
            res.marks = {k: vars(v) for k, v in marks.items()}
            res.figures = figures(res.client, marks)
            res.errors = list(res.client.get("errors", []))
            res.ok = bool(res.client.get("ok")) and sproc.poll() is None
            if sproc.poll() is not None:
                res.errors.append(f"server exited with {sproc.returncode} during the run")
            if sc.profile and raw.exists():
                res.profile = summarize_raw(
                    raw.read_text(), top=args.profile_top, us_per_delivery=res.figures.get("cpu_ms_per_1000")
                )
                res.profile["raw_file"] = str(raw)
        except (queue.Empty, subprocess.TimeoutExpired):
            res.errors.append(f"run timed out after {args.run_timeout} s")
        except Exception as exc:  # one failed run must not end the others
            res.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            for proc in (cproc, spy):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
            stop(sproc)
    res.seconds = time.monotonic() - started
    return res


def figures(client: dict[str, Any], m: dict[str, Mark]) -> dict[str, float]:
    """The figures of one run; a phase that failed its exactly-once check gives none."""
    out: dict[str, float] = {}
    phases: dict[str, dict[str, Any]] = client.get("phases", {})

    def cpu(phase: str) -> tuple[float, float]:
        a, b = m[f"{phase}-start"], m[f"{phase}-end"]
        return b.utime + b.stime - a.utime - a.stime, b.stime - a.stime

    if "connect-end" in m and "idle" in m:
        # the server's background CPU with every client connected and idle (pings, timers, GC)
        a, b = m["connect-end"], m["idle"]
        out["idle_cpu_ms_per_s"] = (b.utime + b.stime - a.utime - a.stime) * 1000 / (b.t - a.t)
    fan = phases.get("fanout")
    if fan and fan.get("ok") and "fanout-end" in m:
        total, system = cpu("fanout")
        out["cpu_ms_per_1000"] = total / fan["expected"] * 1e6
        out["sys_share_pct"] = 100 * system / total if total else 0.0
        out["deliveries_per_s"] = fan["deliveries_per_s"]
        if fan.get("poll_responses"):
            out["deliveries_per_get"] = fan["expected"] / fan["poll_responses"]
        for k, v in (fan.get("server_stats") or {}).items():
            out[f"stat_{k}"] = v
        out["broadcasts"] = fan["broadcasts"]
        out["deliveries"] = fan["expected"]
    for name in ("small50-idle", "small50-big"):
        ph = phases.get(name)
        if ph and ph.get("ok"):
            key = name.replace("small50-", "small_")
            out[f"{key}_p50_ms"] = ph["p50_ms"]
            out[f"{key}_p99_ms"] = ph["p99_ms"]
            out[f"{key}_max_ms"] = ph["max_ms"]
            out[f"{key}_client_loop_p99_ms"] = ph["client_loop_delay_p99_ms"]
            if ph.get("request_p50_ms") is not None:
                out[f"{key}_request_p50_ms"] = ph["request_p50_ms"]
                out[f"{key}_request_p99_ms"] = ph["request_p99_ms"]
    big = phases.get("bigroom")
    if big and big.get("ok") and "bigroom-end" in m:
        total, _ = cpu("bigroom")
        out["big_deliveries_per_s"] = big["deliveries_per_s"]
        out["big_cpu_ms_per_1000"] = total / big["expected"] * 1e6
        out["big_broadcasts_per_s"] = big["broadcasts"] / big["seconds"]
    return out


def summarize(runs: list[Run]) -> dict[str, dict[str, dict[str, Any]]]:
    """scenario -> server -> figure -> {median, min, max, runs}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        for k in r.figures:
            vals = [
                x.figures[k]
                for x in runs
                if (x.scenario, x.server) == (r.scenario, r.server) and k in x.figures
            ]
            out.setdefault(r.scenario, {}).setdefault(r.server, {})[k] = {
                "median": statistics.median(vals),
                "min": min(vals),
                "max": max(vals),
                "runs": len(vals),
            }
    return out


def cell(s: dict[str, Any] | None) -> str:
    if s is None:
        return "no figure"
    if s["runs"] == 1:
        return fmt(s["median"])
    return f"{fmt(s['median'])} [{fmt(s['min'])}-{fmt(s['max'])}]"


def tables(summ: dict[str, dict[str, dict[str, Any]]], servers: list[str]) -> str:
    out: list[str] = []

    def get(sc: str, srv: str, key: str) -> dict[str, Any] | None:
        return summ.get(sc, {}).get(srv, {}).get(key)

    if "base" in summ:
        out += ["### Broadcast cost against rooms and sockets outside the target", ""]
        out += [
            "| server | figure | base (N=1000) | 100,000 more rooms | N=10,000 "
            "| rooms / base | outside / base |"
        ]
        out += ["|---|---|---|---|---|---|---|"]
        for srv in servers:
            for key, label in (
                ("cpu_ms_per_1000", "CPU ms per 1000 deliveries"),
                ("sys_share_pct", "system time %"),
            ):
                b, r, o = (get(sc, srv, key) for sc in ("base", "rooms100k", "outside"))
                ratios = [
                    f"{x['median'] / b['median']:.2f}x" if x and b and key != "sys_share_pct" else "-"
                    for x in (r, o)
                ]
                out.append(
                    f"| {LABELS[srv]} | {label} | {cell(b)} | {cell(r)} | {cell(o)} | {' | '.join(ratios)} |"
                )
        out.append("")
    other = [sc for sc in summ if sc not in ("base", "rooms100k", "outside", "poll", "poll-count", "bigroom")]
    if other:
        out += [
            "| scenario | server | CPU ms per 1000 deliveries | system time % | deliveries/s |",
            "|---|---|---|---|---|",
        ]
        for sc in other:
            for srv, figs in summ[sc].items():
                shown = ("cpu_ms_per_1000", "sys_share_pct", "deliveries_per_s")
                out.append(f"| {sc} | {LABELS[srv]} | " + " | ".join(cell(figs.get(k)) for k in shown) + " |")
        out.append("")
    if "poll" in summ or "poll-count" in summ:
        out += ["### Long-polling clients (N = 1000, fan-out to 10 rooms of 100)", ""]
        out += [
            "| server | CPU ms per 1000 deliveries | system time % "
            "| deliveries per GET response | deliveries/s |"
        ]
        out += ["|---|---|---|---|---|"]
        for srv in servers:
            keys = ("cpu_ms_per_1000", "sys_share_pct", "deliveries_per_get", "deliveries_per_s")
            out.append(f"| {LABELS[srv]} | " + " | ".join(cell(get("poll", srv, k)) for k in keys) + " |")
        pc = summ.get("poll-count", {}).get("trio")
        if pc:
            out += ["", "| trio_rooms debug counters (one run) | value |", "|---|---|"]
            for key in (
                "broadcasts",
                "deliveries",
                "stat_encoded",
                "stat_polling_builds",
                "stat_polling_reads",
            ):
                out.append(f"| {key} | {cell(pc.get(key))} |")
        out.append("")
    if "bigroom" in summ:
        out += ["### Latency of a room of 100 while a room of 10,000 is broadcast to (N = 10,100, 50/s)", ""]
        big_keys = (
            ("small_idle_p50_ms", "small room p50, no big broadcast (ms)"),
            ("small_idle_p99_ms", "small room p99, no big broadcast (ms)"),
            ("small_big_p50_ms", "small room p50, during big broadcasts (ms)"),
            ("small_big_p99_ms", "small room p99, during big broadcasts (ms)"),
            ("small_big_max_ms", "small room max, during big broadcasts (ms)"),
            ("small_big_request_p50_ms", "of which client send -> server handler, p50 (ms)"),
            ("small_big_request_p99_ms", "of which client send -> server handler, p99 (ms)"),
            ("small_big_client_loop_p99_ms", "load client's own event-loop delay p99 (ms)"),
            ("big_broadcasts_per_s", "big-room broadcasts per second"),
            ("big_deliveries_per_s", "big-room deliveries per second"),
            ("big_cpu_ms_per_1000", "server CPU ms per 1000 deliveries (whole big phase)"),
        )
        out += [
            "| figure | " + " | ".join(LABELS[s] for s in servers) + " |",
            "|---|" + "---|" * len(servers),
        ]
        for key, label in big_keys:
            out.append(f"| {label} | " + " | ".join(cell(get("bigroom", s, key)) for s in servers) + " |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description="Extra broadcast measurements of issue #4 (see module doc).")
    parser.add_argument("--groups", default="scale,poll,bigroom,profile", help="comma-separated groups")
    parser.add_argument("--runs", type=int, default=3, help="runs of each server per scenario")
    parser.add_argument("--servers", default="trio,node", help="comma-separated: trio,node,psio,asgi")
    parser.add_argument("--deliveries", type=int, default=200_000, help="deliveries per fan-out phase")
    parser.add_argument("--big-count", type=int, default=40, help="broadcasts to the big room (bigroom)")
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="length of each latency phase")
    parser.add_argument("--pyspy-rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--profile-top", type=int, default=25, help="functions in the profile table")
    parser.add_argument("--phase-timeout", type=float, default=120.0, help="bound of one phase, seconds")
    parser.add_argument("--run-timeout", type=float, default=420.0, help="bound of one run, seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results-scenarios.json", help="JSON output")
    args = parser.parse_args()
    groups = set(args.groups.split(","))
    servers = [s for s in args.servers.split(",") if s in ("trio", "node", "psio", "asgi")]
    chosen = [sc for sc in SCENARIOS if sc.group in groups]
    limit = raise_nofile(2 * max(sc.n for sc in chosen) + 1000)
    if limit < max(sc.n for sc in chosen) + 200:
        print(f"RLIMIT_NOFILE is {limit}: too low", file=sys.stderr)
        return 2
    logdir = Path(tempfile.mkdtemp(prefix="trio-rooms-scenarios-"))
    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "rlimit_nofile": limit,
        "logs": str(logdir),
    }
    print(f"# {json.dumps(info)}", file=sys.stderr)
    runs: list[Run] = []
    for sc in chosen:
        for run in range(1, (sc.runs or args.runs) + 1):
            for srv in (s for s in servers if s in sc.servers):  # interleaved
                r = one_run(sc, srv, run, args, logdir)
                runs.append(r)
                status = "ok" if r.ok else "FAILED: " + "; ".join(r.errors)
                shown = {k: round(v, 3) for k, v in r.figures.items()}
                print(
                    f"[{sc.name} {srv} run {run}] {r.seconds:.0f} s, {status} {json.dumps(shown)}",
                    file=sys.stderr,
                )
    summ = summarize(runs)
    md = tables(summ, servers)
    for r in runs:
        if r.profile:
            md += "\n" + str(r.profile.get("markdown", "")) + "\n"
    print(md)
    args.out.write_text(
        json.dumps({**info, "summary": summ, "runs": [vars(r) for r in runs]}, indent=1) + "\n"
    )
    print(f"wrote {args.out}; logs in {logdir}", file=sys.stderr)
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
