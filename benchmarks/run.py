"""Run the broadcast benchmarks: trio_rooms beside Node socket.io 4.8 and python-socketio 5 (issue #4).

``nox -s bench`` installs what is needed and runs this; by hand, after ``npm ci`` in benchmarks/ and
``pip install python-socketio aiohttp``::

    python benchmarks/run.py --quick          # N = 1000, one run of each server
    python benchmarks/run.py                  # N = 1000 and 10,000, three runs of each server
    python benchmarks/run.py --n 1000 --runs 3 --servers trio,node

For each N, the servers run interleaved (trio, node, psio, trio, node, ...), each run a fresh server
process pinned to CPU 0 and a fresh load client (loadclient.mjs) pinned to CPU 1. The load client
stops at each phase boundary ("MARK name"); this runner then reads the server's CPU time
(utime + stime of /proc/PID/stat, all threads) and VmRSS (/proc/PID/status) and answers "ok".
A phase whose exactly-once check failed gives no figure. The table shows the median of the runs,
the spread (min-max) and the ratios trio_rooms / peer; the same figures go to a JSON file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import resource
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
from typing import IO, Any

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

SERVERS: dict[str, tuple[str, ...]] = {
    # BENCH_TRIO_ARGS: extra arguments of server_trio.py (diagnostics such as "--gc off").
    "trio": (sys.executable, str(HERE / "server_trio.py"), *os.environ.get("BENCH_TRIO_ARGS", "").split()),
    "node": ("node", str(HERE / "server_node.mjs")),
    "psio": (sys.executable, str(HERE / "server_psio.py")),
    # Connection state recovery on (issue 17): trio_rooms with
    # Server(connection_state_recovery=ConnectionStateRecovery()) and Node with connectionStateRecovery
    # (its in-memory SessionAwareAdapter), both with their defaults (2 minutes).
    "trio-recovery": (sys.executable, str(HERE / "server_trio.py"), "--recovery"),
    "node-recovery": ("node", str(HERE / "server_node.mjs"), "--recovery"),
    # The same trio_rooms server with Server(freeze_gc=False) (the default is True).
    "trio-nofreeze": (sys.executable, str(HERE / "server_trio.py"), "--no-freeze-gc"),
    # Server(metrics=True), its /metrics scraped once a second over HTTP (issue 16: the cost when on).
    "trio-metrics": (sys.executable, str(HERE / "server_trio.py"), "--metrics-scrape", "1"),
    # The same server instrumented for the Socket.IO Admin UI (no page connected), in both modes.
    "trio-admin": (sys.executable, str(HERE / "server_trio.py"), "--admin", "development"),
    "trio-admin-prod": (sys.executable, str(HERE / "server_trio.py"), "--admin", "production"),
    # The floor: one send(2) per delivery of a frame encoded once, from a bare selectors loop.
    "limit": (sys.executable, str(HERE / "server_limit.py")),
    # trio_rooms as an ASGI application (trio_rooms.ASGIApp) under Hypercorn's trio worker (issue 14).
    "asgi": (sys.executable, str(HERE / "server_asgi.py")),
    # python-socketio's ASGIApp under uvicorn (uvloop, httptools, websockets): its users' ASGI choice.
    "psio-asgi": (sys.executable, str(HERE / "server_psio_asgi.py")),
}
if os.environ.get("BENCH_TRIO_SERVER"):  # a diagnostic stand-in for server_trio.py
    SERVERS["trio"] = (sys.executable, os.environ["BENCH_TRIO_SERVER"])
#: ``--tree LABEL=DIR`` servers: trio_rooms from another checkout (``DIR/benchmarks/server_trio.py`` with
#: ``DIR`` first on PYTHONPATH), to measure two versions side by side in one interleaved run.
TREES: dict[str, Path] = {}
LABELS = {
    "trio": "trio_rooms",
    "node": "Node socket.io",
    "trio-recovery": "trio_rooms recovery on",
    "node-recovery": "Node socket.io recovery on",
    "psio": "python-socketio",
    "trio-nofreeze": "trio_rooms freeze_gc=False",
    "trio-metrics": "trio_rooms metrics on (scraped 1/s)",
    "trio-admin": "trio_rooms + Admin UI (development)",
    "trio-admin-prod": "trio_rooms + Admin UI (production)",
    "limit": "the limit",
    "asgi": "trio_rooms ASGI (Hypercorn)",
    "psio-asgi": "python-socketio ASGI (uvicorn)",
}
#: The servers whose ratios to every other server the table shows (those of the run).
BASES = ("trio", "asgi")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    lower_is_better: bool


METRICS = (
    Metric("fanout_cpu_ms_per_1000", "fan-out, room of 100: server CPU per 1000 deliveries", "ms", True),
    Metric("fanout_deliveries_per_s", "fan-out, room of 100: deliveries per second", "/s", False),
    Metric("union_cpu_ms_per_1000", "union of 3 rooms (200 recipients): CPU per 1000 deliveries", "ms", True),
    Metric("union_deliveries_per_s", "union of 3 rooms: deliveries per second", "/s", False),
    Metric("connects_per_s", "connect + join (2 rooms) per second", "/s", False),
    Metric("connect_cpu_ms_per_1000", "connect + join: server CPU per 1000 clients", "ms", True),
    Metric("rss_kb_per_conn", "RSS per idle connection (in 2 rooms)", "KB", True),
    Metric("latency50_p50_ms", "latency at 50 broadcasts/s x 100: p50", "ms", True),
    Metric("latency50_p99_ms", "latency at 50 broadcasts/s x 100: p99", "ms", True),
    Metric("latency200_p50_ms", "latency at 200 broadcasts/s x 100: p50", "ms", True),
    Metric("latency200_p99_ms", "latency at 200 broadcasts/s x 100: p99", "ms", True),
)


@dataclass
class Sample:
    """The server's /proc figures at one mark of the load client."""

    cpu_s: float
    rss_kb: int
    t: float


@dataclass
class RunResult:
    server: str
    n: int
    run: int
    ok: bool
    figures: dict[str, float] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    marks: dict[str, dict[str, float]] = field(default_factory=dict)
    ready: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def raise_nofile(need: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it); return the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_prefix(cpu: int) -> list[str]:
    """``taskset -c CPU`` when there is a taskset and that CPU is ours; otherwise nothing."""
    if shutil.which("taskset") and cpu in os.sched_getaffinity(0) and len(os.sched_getaffinity(0)) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def read_proc(pid: int) -> Sample:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Sample(cpu, rss, time.monotonic())


def wait_ready(proc: subprocess.Popen[bytes], out_path: Path, timeout: float) -> dict[str, Any]:
    """The server's ready line (JSON with its port), read from its stdout file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        text = out_path.read_text()
        if "\n" in text:
            ready: dict[str, Any] = json.loads(text.splitlines()[0])
            return ready
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def pump_lines(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    for raw in stream:
        lines.put(raw.decode(errors="replace").rstrip("\n"))
    lines.put(None)


def one_run(server: str, n: int, run: int, args: argparse.Namespace, logdir: Path) -> RunResult:
    res = RunResult(server, n, run, ok=False)
    started = time.monotonic()
    stem = logdir / f"{server}-n{n}-run{run}"
    env = dict(os.environ)
    if server.startswith("node"):
        env["NODE_ENV"] = "production"
    if server in TREES:
        paths = [str(TREES[server]), *filter(None, [env.get("PYTHONPATH")])]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    with (
        open(f"{stem}.server.out", "wb") as s_out,
        open(f"{stem}.server.err", "wb") as s_err,
        open(f"{stem}.client.err", "wb") as c_err,
    ):
        sproc = subprocess.Popen(
            [*pin_prefix(0), *SERVERS[server], "--port", "0"],
            stdout=s_out,
            stderr=s_err,
            stdin=subprocess.DEVNULL,
            cwd=HERE,
            env=env,
        )
        cproc: subprocess.Popen[bytes] | None = None
        try:
            res.ready = wait_ready(sproc, Path(f"{stem}.server.out"), 30)
            cmd = [
                *pin_prefix(1),
                "node",
                str(HERE / "loadclient.mjs"),
                "--sync",
                "--port",
                str(res.ready["port"]),
                "--n",
                str(n),
                "--deliveries",
                str(args.deliveries),
                "--latency-seconds",
                str(args.latency_seconds),
                "--phase-timeout",
                str(args.phase_timeout),
            ]
            cproc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=c_err, cwd=HERE
            )
            assert cproc.stdin is not None and cproc.stdout is not None
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=pump_lines, args=(cproc.stdout, lines), daemon=True).start()
            samples: dict[str, Sample] = {}
            deadline = started + args.run_timeout
            while True:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                if line is None:
                    break
                if line.startswith("MARK "):
                    samples[line[5:]] = read_proc(sproc.pid)
                    cproc.stdin.write(b"ok\n")
                    cproc.stdin.flush()
                elif line.startswith("RESULT "):
                    res.client = json.loads(line[7:])
            cproc.wait(10)
            res.marks = {k: {"cpu_s": v.cpu_s, "rss_kb": v.rss_kb, "t": v.t} for k, v in samples.items()}
            res.figures = figures(res.client, samples, n)
            res.errors = list(res.client.get("errors", []))
            res.ok = bool(res.client.get("ok")) and sproc.poll() is None
            if sproc.poll() is not None:
                res.errors.append(f"server exited with {sproc.returncode} during the run")
        except (queue.Empty, subprocess.TimeoutExpired):
            res.errors.append(f"run timed out after {args.run_timeout} s")
        except Exception as exc:  # one failed run must not end the others
            res.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if cproc is not None and cproc.poll() is None:
                cproc.kill()
                cproc.wait(5)
            stop(sproc)
    res.seconds = time.monotonic() - started
    return res


def figures(client: dict[str, Any], s: dict[str, Sample], n: int) -> dict[str, float]:
    """The figures of one run; a phase that failed its exactly-once check gives none."""
    out: dict[str, float] = {}
    phases: dict[str, dict[str, Any]] = client.get("phases", {})

    def cpu_ms(phase: str) -> float:
        return (s[f"{phase}-end"].cpu_s - s[f"{phase}-start"].cpu_s) * 1000

    conn = phases.get("connect")
    if conn and conn.get("ok") and "connect-end" in s:
        out["connects_per_s"] = conn["connects_per_s"]
        out["connect_cpu_ms_per_1000"] = cpu_ms("connect") / n * 1000
        if "idle" in s and "baseline" in s:
            out["rss_kb_per_conn"] = (s["idle"].rss_kb - s["baseline"].rss_kb) / n
    for name in ("fanout", "union"):
        ph = phases.get(name)
        if ph and ph.get("ok") and f"{name}-end" in s:
            out[f"{name}_cpu_ms_per_1000"] = cpu_ms(name) / ph["expected"] * 1000
            out[f"{name}_deliveries_per_s"] = ph["deliveries_per_s"]
    for rate in (50, 200):
        ph = phases.get(f"latency{rate}")
        if ph and ph.get("ok"):
            out[f"latency{rate}_p50_ms"] = ph["p50_ms"]
            out[f"latency{rate}_p99_ms"] = ph["p99_ms"]
            out[f"latency{rate}_cpu_ms_per_1000"] = cpu_ms(f"latency{rate}") / ph["expected"] * 1000
    return out


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def summarize(results: list[RunResult], servers: list[str], ns: list[int]) -> dict[str, Any]:
    """Medians, spreads and ratios trio / peer, per N and metric."""
    summary: dict[str, Any] = {}
    for n in ns:
        per_metric: dict[str, Any] = {}
        for m in METRICS:
            row: dict[str, Any] = {}
            for srv in servers:
                vals = [
                    r.figures[m.key] for r in results if r.server == srv and r.n == n and m.key in r.figures
                ]
                row[srv] = (
                    {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals)}
                    if vals
                    else None
                )
            for base in BASES:
                if not row.get(base):
                    continue
                for peer in servers:
                    if peer != base and row.get(peer) and row[peer]["median"]:
                        row[f"{base}/{peer}"] = row[base]["median"] / row[peer]["median"]
            per_metric[m.key] = row
        summary[str(n)] = per_metric
    return summary


def table(summary: dict[str, Any], servers: list[str], ns: list[int]) -> str:
    """A Markdown table: median [min-max] per server, then the ratios trio_rooms / peer (and
    trio_rooms ASGI / peer when it ran)."""
    # trio_rooms / trio_rooms ASGI is left out: ASGI / trio_rooms (the cost of the ASGI path) says it.
    pairs = [(b, p) for b in BASES if b in servers for p in servers if p != b and (b, p) != ("trio", "asgi")]
    head = ["N", "figure", "better"] + [LABELS[s] for s in servers]
    head += [f"{LABELS[b]} / {LABELS[p]}" for b, p in pairs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in ns:
        for m in METRICS:
            row = summary[str(n)][m.key]
            cells = [f"{n:,}", f"{m.label} ({m.unit})", "lower" if m.lower_is_better else "higher"]
            for srv in servers:
                v = row.get(srv)
                if v is None:
                    cells.append("no figure")
                elif v["runs"] == 1:
                    cells.append(fmt(v["median"]))
                else:
                    cells.append(f"{fmt(v['median'])} [{fmt(v['min'])}-{fmt(v['max'])}]")
            for b, p in pairs:
                r = row.get(f"{b}/{p}")
                cells.append("-" if r is None else f"{r:.2f}x")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), ""
        )
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "pinning": "taskset" if pin_prefix(0) else "none",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Broadcast benchmarks of trio_rooms beside its peers.")
    parser.add_argument("--quick", action="store_true", help="N = 1000, one run of each server")
    parser.add_argument("--n", type=int, nargs="+", help="client counts (default: 1000 10000)")
    parser.add_argument("--runs", type=int, help="runs of each server per N (default 3)")
    parser.add_argument(
        "--servers",
        default="trio,node,psio,limit",
        help="comma-separated, among trio,node,psio,limit,trio-nofreeze,trio-metrics,trio-admin,"
        "trio-admin-prod,asgi,psio-asgi,trio-recovery,node-recovery (default trio,node,psio,limit)",
    )
    parser.add_argument("--deliveries", type=int, default=100_000, help="deliveries per throughput phase")
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="length of each latency phase")
    parser.add_argument("--phase-timeout", type=float, default=120.0, help="bound of one phase, seconds")
    parser.add_argument("--run-timeout", type=float, default=600.0, help="bound of one run, seconds")
    parser.add_argument("--out", type=Path, help="JSON output (default: benchmarks/results[-quick].json)")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also a server LABEL: trio_rooms of the checkout DIR (name it in --servers); repeatable",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    ns: list[int] = args.n or ([1000] if args.quick else [1000, 10_000])
    runs: int = args.runs or (1 if args.quick else 3)
    for spec in args.tree:
        label, _, tree = spec.partition("=")
        root = Path(tree).resolve()
        if not label or not (root / "benchmarks" / "server_trio.py").exists():
            parser.error(f"--tree {spec!r}: LABEL=DIR, DIR a trio_rooms checkout")
        TREES[label] = root
        SERVERS[label] = (sys.executable, str(root / "benchmarks" / "server_trio.py"))
        LABELS[label] = f"trio_rooms ({label})"
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {sorted(unknown)}")
    out_path: Path = args.out or HERE / ("results-quick.json" if args.quick else "results.json")

    limit = raise_nofile(2 * max(ns) + 1000)
    if limit < max(ns) + 200:
        print(f"RLIMIT_NOFILE is {limit}: too low for N = {max(ns)}", file=sys.stderr)
        return 2
    if not (HERE / "node_modules" / "ws").exists():
        print("run `npm ci` in benchmarks/ first (or `nox -s bench`)", file=sys.stderr)
        return 2
    logdir = Path(tempfile.mkdtemp(prefix="trio-rooms-bench-"))
    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "n": ns,
            "runs": runs,
            "servers": servers,
            "deliveries": args.deliveries,
            "latency_seconds": args.latency_seconds,
            "rlimit_nofile": limit,
        },
        "logs": str(logdir),
    }
    print(f"# {json.dumps(info)}", file=sys.stderr)
    results: list[RunResult] = []
    for n in ns:
        for run in range(1, runs + 1):
            for srv in servers:  # interleaved: trio, node, psio, trio, node, psio, ...
                r = one_run(srv, n, run, args, logdir)
                results.append(r)
                status = "ok" if r.ok else "FAILED: " + "; ".join(r.errors)
                shown = {k: round(v, 3) for k, v in r.figures.items()}
                print(
                    f"[N={n} run {run} {srv}] {r.seconds:.0f} s, {status} {json.dumps(shown)}",
                    file=sys.stderr,
                )
    versions: dict[str, Any] = {}
    for r in results:
        versions.update(r.ready.get("versions", {}))
    summary = summarize(results, servers, ns)
    md = table(summary, servers, ns)
    print(md)
    doc = {
        **info,
        "versions": versions,
        "summary": summary,
        "runs": [r.__dict__ for r in results],
    }
    out_path.write_text(json.dumps(doc, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(md + "\n")
    print(f"wrote {out_path}; logs in {logdir}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
