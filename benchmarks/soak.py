"""The soak benchmark of issue #11: many clients held with heartbeats on, receiving room broadcasts.

Not a CI test. Two runs, each a fresh ``server_trio.py`` (pinned to CPU 0) and a fresh load client
(``loadclient.mjs --phases soak``, pinned to CPU 1)::

    python benchmarks/soak.py                         # 10,000 WebSocket clients, then + 500 polling
    python benchmarks/soak.py --n 1000 --poll 100 --seconds 15     # a small one, while developing

Each run: N WebSocket clients (then N plus ``--poll`` long-polling ones) in N/100 rooms of 100 (the
polling clients spread over the same rooms), held ``--seconds`` with a heartbeat of ``--ping-interval``
/ ``--ping-timeout``, receiving ``--rate`` room broadcasts per second (cycling over the rooms) and
``--all-rate`` broadcasts per second to every client. The load client checks, per client and per
stream: 0 missing, 0 duplicates, 0 unexpected, 0 out of order (emission order), 0 connections lost
(ended by anything but the client), and that every client was pinged. Every client then leaves as a
Socket.IO client does (DISCONNECT, then a WebSocket close or an Engine.IO close POST).

The server (``--stats-stdin``) answers ``stats`` on its stdin with ``server.stats()``, its trio task
count and the disconnect reasons it gave; this runner adds its RSS and CPU time from /proc. It samples
them before anything connects (``before``), once everything is connected (``connected``), every
``--sample-every`` s of the soak, at its end, when every client has left (``left``) and ``--settle``
s later (``after``), and checks ``after`` against ``before``: connections 0, sockets 0, rooms 0, no
bytes queued, the same number of tasks; every socket disconnected for "client namespace disconnect";
no slow consumer closed, no protocol error. RSS is reported, not checked. ``before``, ``after`` and a
last sample ``--late`` s later (once every heartbeat deadline of the gone sessions has passed: the
schedule keeps a dead entry until it is due) also count the objects the cyclic GC tracks, after a
full collection, by type.

Everything on 127.0.0.1, bounded (``--run-timeout``); RLIMIT_NOFILE is raised to the hard limit for
the children. Writes ``benchmarks/results-soak.json`` (``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import queue
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from run import HERE, machine, pin_prefix, pump_lines, raise_nofile, read_proc, stop

SERVER = (sys.executable, str(HERE / "server_trio.py"))


@dataclass
class SoakRun:
    name: str
    websocket: int
    polling: int
    ok: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    client: dict[str, Any] = field(default_factory=dict)
    ready: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    gc_growth: dict[str, int] = field(default_factory=dict)
    gc_growth_late: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class ServerProbe:
    """The server's ``stats`` side channel (its stdin and stdout) and its /proc figures."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.stdin: IO[bytes] = proc.stdin
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=pump_lines, args=(proc.stdout, self.lines), daemon=True).start()

    def ready(self, timeout: float) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        if line is None:
            raise RuntimeError(f"server exited with {self.proc.wait(5)} before it was ready")
        ready: dict[str, Any] = json.loads(line)
        return ready

    def sample(
        self, label: str, t0: float | None, *, gc: bool = False, timeout: float = 30.0
    ) -> dict[str, Any]:
        """One sample: the server's own report plus RSS and CPU time (``t`` from the soak's start)."""
        proc = read_proc(self.proc.pid)
        self.stdin.write(b"stats gc\n" if gc else b"stats\n")
        self.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("the server closed its stdout")
            if line.startswith("STATS "):
                report: dict[str, Any] = json.loads(line[6:])
                break
        took = time.monotonic() - proc.t
        return {
            "label": label,
            "t": None if t0 is None else round(proc.t - t0, 3),
            "at": proc.t,
            "rss_kb": proc.rss_kb,
            "cpu_s": proc.cpu_s,
            "answer_ms": round(took * 1000, 1),
            **report,
        }


def client_cmd(port: int, n: int, poll: int, args: argparse.Namespace) -> list[str]:
    return [
        *pin_prefix(1),
        "node",
        str(HERE / "loadclient.mjs"),
        "--sync",
        "--phases",
        "soak",
        "--port",
        str(port),
        "--n",
        str(n),
        "--poll-clients",
        str(poll),
        "--soak-seconds",
        str(args.seconds),
        "--soak-rate",
        str(args.rate),
        "--soak-all-rate",
        str(args.all_rate),
        "--ping-interval",
        str(args.ping_interval),
        "--phase-timeout",
        str(args.phase_timeout),
        *args.client_args,
    ]


def one_run(name: str, n: int, poll: int, args: argparse.Namespace, logdir: Path) -> SoakRun:
    res = SoakRun(name, n, poll)
    started = time.monotonic()
    stem = logdir / name
    res.logs = {"server": f"{stem}.server.err", "client": f"{stem}.client.err"}
    server_cmd = [
        *pin_prefix(0),
        *SERVER,
        "--port",
        "0",
        "--stats-stdin",
        "--ping-interval",
        str(args.ping_interval),
        "--ping-timeout",
        str(args.ping_timeout),
        *args.server_args,
    ]
    with open(res.logs["server"], "wb") as s_err, open(res.logs["client"], "wb") as c_err:
        sproc = subprocess.Popen(
            server_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=s_err, cwd=HERE
        )
        cproc: subprocess.Popen[bytes] | None = None
        try:
            probe = ServerProbe(sproc)
            res.ready = probe.ready(30)
            cproc = subprocess.Popen(
                client_cmd(res.ready["port"], n, poll, args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=c_err,
                cwd=HERE,
            )
            assert cproc.stdin is not None and cproc.stdout is not None
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=pump_lines, args=(cproc.stdout, lines), daemon=True).start()
            deadline = started + args.run_timeout
            soak_t0: float | None = None
            next_sample = float("inf")
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError(f"run timed out after {args.run_timeout} s")
                if now >= next_sample:
                    res.samples.append(probe.sample("soak", soak_t0))
                    next_sample += args.sample_every
                    continue
                try:
                    line = lines.get(timeout=max(0.05, min(next_sample, deadline) - now))
                except queue.Empty:
                    continue
                if line is None:
                    break
                if line.startswith("MARK "):
                    mark = line[5:]
                    if mark == "soak-start":
                        soak_t0 = time.monotonic()
                        next_sample = soak_t0 + args.sample_every
                    elif mark == "soak-end":
                        next_sample = float("inf")
                    label = "before" if mark == "baseline" else mark
                    res.samples.append(probe.sample(label, soak_t0, gc=label == "before"))
                    cproc.stdin.write(b"ok\n")
                    cproc.stdin.flush()
                elif line.startswith("RESULT "):
                    res.client = json.loads(line[7:])
            cproc.wait(30)
            time.sleep(args.settle)
            res.samples.append(probe.sample("after", soak_t0, gc=True))
            after = res.samples[-1]
            # Diagnostic only: when "after" is not the baseline, keep looking a while longer.
            extra_until = time.monotonic() + args.settle_max
            while not back_to_baseline(res.samples[0], res.samples[-1]) and time.monotonic() < extra_until:
                time.sleep(1.0)
                res.samples.append(probe.sample("after+", soak_t0))
            res.gc_growth = gc_growth(res.samples[0], after)
            if args.late > 0:
                # Diagnostic: once every heartbeat deadline of the gone sessions has passed.
                time.sleep(args.late)
                res.samples.append(probe.sample("late", soak_t0, gc=True))
                res.gc_growth_late = gc_growth(res.samples[0], res.samples[-1])
            res.checks = checks(res, after)
            res.errors += list(res.client.get("errors", []))
            res.errors += [f"check failed: {k}" for k, v in res.checks.items() if not v]
            res.ok = all(res.checks.values()) and sproc.poll() is None
            if sproc.poll() is not None:
                res.errors.append(f"server exited with {sproc.returncode} during the run")
        except Exception as exc:  # one failed run must not end the other
            res.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if cproc is not None and cproc.poll() is None:
                cproc.kill()
                cproc.wait(5)
            if sproc.stdin is not None:
                sproc.stdin.close()
            stop(sproc)
    res.seconds = time.monotonic() - started
    return res


def gc_growth(before: dict[str, Any], after: dict[str, Any], top: int = 6) -> dict[str, int]:
    """The types with more objects tracked by the cyclic GC after the run than before (both after a
    full collection): what the run left behind, if anything (caches, or a leak if it grows with N)."""
    b: dict[str, int] = before.get("gc_types", {})
    a: dict[str, int] = after.get("gc_types", {})
    grown = {k: a[k] - b.get(k, 0) for k in a if a[k] > b.get(k, 0)}
    shown = dict(sorted(grown.items(), key=lambda kv: -kv[1])[:top])
    return {"total": after.get("gc_objects", 0) - before.get("gc_objects", 0), **shown}


def back_to_baseline(before: dict[str, Any], after: dict[str, Any]) -> bool:
    s = after["stats"]
    return bool(
        s["connections"] == 0
        and sum(s["sockets"].values()) == 0
        and sum(s["rooms"].values()) == 0
        and s["queued_bytes"] == 0
        and after["tasks"] == before["tasks"]
    )


def checks(res: SoakRun, after: dict[str, Any]) -> dict[str, bool]:
    """Every check of one run, by name (all must hold)."""
    c = res.client
    soak: dict[str, Any] = c.get("soak") or {}
    phases: dict[str, Any] = soak.get("phases") or {}
    total = res.websocket + res.polling
    by = {s["label"]: s for s in res.samples}
    before = by.get("before")
    out: dict[str, bool] = {"client finished": bool(soak)}
    out["every client connected"] = (c.get("phases", {}).get("connect") or {}).get("connections") == total
    for stream in ("soak-rooms", "soak-all"):
        v = phases.get(stream) or {}
        per = v.get("clients_with") or {}
        out[f"{stream}: every client received"] = bool(v) and per.get("clients") == total
        for key in ("missing", "duplicates", "unexpected", "reordered"):
            out[f"{stream}: 0 {key}"] = bool(v) and v.get(key) == 0
    out["0 connections lost"] = (c.get("lost") or {}).get("count", -1) == 0
    out["every client pinged"] = bool((soak.get("heartbeat") or {}).get("ok"))
    out["every client left"] = (soak.get("leave") or {}).get("left") == total
    out["no stray event"] = not any("outside any phase" in e for e in c.get("errors", []))
    during = [s for s in res.samples if s["label"] in ("connected", "soak", "soak-end")]
    out["all connected during the soak (server)"] = bool(during) and all(
        s["stats"]["connections"] == total + 1 and s["stats"]["sockets"].get("/") == total + 1 for s in during
    )
    s = after["stats"]
    out["after: connections 0"] = s["connections"] == 0
    out["after: sockets 0"] = sum(s["sockets"].values()) == 0
    out["after: rooms 0"] = sum(s["rooms"].values()) == 0
    out["after: queued bytes 0"] = s["queued_bytes"] == 0
    out["after: tasks back to the idle count"] = before is not None and after["tasks"] == before["tasks"]
    reasons: dict[str, int] = after.get("disconnects", {})
    out["server: every socket left by client namespace disconnect"] = reasons == {
        "client namespace disconnect": total + 1
    }
    out["server: no slow consumer, no protocol error"] = (
        s["slow_consumers_closed"] == 0 and s["protocol_errors"] == 0 and s["volatile_dropped"] == 0
    )
    return out


def fmt_int(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def tables(runs: list[SoakRun]) -> str:
    out = [
        "| run | clients (WS + polling) | stream | broadcasts | deliveries expected | received | missing "
        "| duplicates | out of order | unexpected | clients short / dup / out of order |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        phases = (r.client.get("soak") or {}).get("phases") or {}
        for stream in ("soak-rooms", "soak-all"):
            v = phases.get(stream)
            if not v:
                out.append(
                    f"| {r.name} | {r.websocket:,} + {r.polling:,} | {stream} | no figure | | | | | | | |"
                )
                continue
            per = v["clients_with"]
            out.append(
                f"| {r.name} | {r.websocket:,} + {r.polling:,} | {stream} | {v['broadcasts']:,} "
                f"| {v['expected']:,} | {v['received']:,} | {v['missing']:,} | {v['duplicates']:,} "
                f"| {v['reordered']:,} | {v['unexpected']:,} "
                f"| {per['missing']} / {per['duplicates']} / {per['reordered']} |"
            )
    out += [
        "",
        "| run | lost connections | pings per client (min-max) | left cleanly | client CPU (share of a core) "
        "| client loop delay p99 / max (ms) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        soak = r.client.get("soak") or {}
        hb = soak.get("heartbeat") or {}
        leave = soak.get("leave") or {}
        lost = (r.client.get("lost") or {}).get("count", "-")
        share = soak.get("client_cpu_share")
        delay = (soak.get("client_loop_delay_p99_ms"), soak.get("client_loop_delay_max_ms"))
        failed = [k for k, v in r.checks.items() if not v]
        verdict = "**pass**" if r.ok else "**FAIL**: " + "; ".join(failed or r.errors[:3])
        out.append(
            f"| {r.name} | {lost} | {hb.get('min_pings', '-')}-{hb.get('max_pings', '-')} "
            f"| {leave.get('left', '-')} of {r.websocket + r.polling:,} "
            f"| {'-' if share is None else f'{share:.0%}'} "
            f"| {'-' if delay[0] is None else f'{delay[0]:.0f} / {delay[1]:.0f}'} | {verdict} |"
        )
    out += [
        "",
        "| run | sample | t (s) | server RSS (MB) | trio tasks | connections | sockets | rooms "
        "| server CPU since previous (% of a core) | heartbeat entries | disconnect reasons |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        prev: dict[str, Any] | None = None
        for s in r.samples:
            cpu = "-"
            if prev is not None and s["at"] - prev["at"] > 0.2:
                cpu = f"{(s['cpu_s'] - prev['cpu_s']) / (s['at'] - prev['at']):.0%}"
            st = s["stats"]
            reasons = ", ".join(f"{k}: {v:,}" for k, v in s.get("disconnects", {}).items()) or "-"
            t = "-" if s["t"] is None else f"{s['t']:.1f}"
            out.append(
                f"| {r.name} | {s['label']} | {t} "
                f"| {s['rss_kb'] / 1024:.1f} | {s['tasks']:,} | {st['connections']:,} "
                f"| {sum(st['sockets'].values()):,} | {sum(st['rooms'].values()):,} | {cpu} "
                f"| {s.get('heartbeat_entries', '-'):,} | {reasons} |"
            )
            prev = s
    out += [
        "",
        "| run | objects tracked by the GC (after a full collection): before | after | growth after, by type "
        "| late | growth late, by type |",
        "|---|---|---|---|---|---|",
    ]

    def top(growth: dict[str, int]) -> str:
        return ", ".join(f"{k} {v:+,}" for k, v in growth.items() if k != "total") or "-"

    def objects(by: dict[str, dict[str, Any]], label: str) -> str:
        return f"{by[label]['gc_objects']:,}" if "gc_objects" in by.get(label, {}) else "-"

    for r in runs:
        by = {s["label"]: s for s in r.samples}
        out.append(
            f"| {r.name} | {objects(by, 'before')} | {objects(by, 'after')} | {top(r.gc_growth)} "
            f"| {objects(by, 'late')} | {top(r.gc_growth_late)} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description="The soak benchmark of issue #11 (see the module doc).")
    parser.add_argument("--n", type=int, default=10_000, help="WebSocket clients (a multiple of 100)")
    parser.add_argument("--poll", type=int, default=500, help="long-polling clients of the second run")
    parser.add_argument(
        "--configs", default="websocket,mixed", help="runs: websocket (N), mixed (N + --poll polling)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the soak")
    parser.add_argument("--rate", type=float, default=50.0, help="room broadcasts per second")
    parser.add_argument("--all-rate", type=float, default=1.0, help="broadcasts to all per second")
    parser.add_argument("--ping-interval", type=float, default=5.0, help="server ping_interval, s")
    parser.add_argument("--ping-timeout", type=float, default=10.0, help="server ping_timeout, s")
    parser.add_argument("--sample-every", type=float, default=10.0, help="server samples during the soak, s")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after the clients left, s")
    parser.add_argument(
        "--settle-max", type=float, default=30.0, help="diagnostic: keep sampling this long if not back"
    )
    parser.add_argument(
        "--late",
        type=float,
        help="diagnostic: one more sample this long after `after` (default: ping interval + timeout + 1 s)",
    )
    parser.add_argument("--phase-timeout", type=float, default=120.0, help="bound of one client phase, s")
    parser.add_argument("--run-timeout", type=float, default=600.0, help="bound of one run, s")
    parser.add_argument("--server-args", default="", help="more arguments of server_trio.py (diagnostics)")
    parser.add_argument("--client-args", default="", help="more arguments of loadclient.mjs (diagnostics)")
    parser.add_argument("--out", type=Path, default=HERE / "results-soak.json", help="JSON output")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    args.server_args = shlex.split(args.server_args)
    args.client_args = shlex.split(args.client_args)
    if args.late is None:
        args.late = args.ping_interval + args.ping_timeout + 1.0
    configs = [c for c in args.configs.split(",") if c]
    if set(configs) - {"websocket", "mixed"} or args.n % 100 or args.n < 100:
        parser.error("--configs: websocket and/or mixed; --n: a positive multiple of 100")
    total = args.n + (args.poll if "mixed" in configs else 0)
    limit = raise_nofile(total + 2 * args.poll + 1000)
    if limit < total + 2 * args.poll + 200:
        print(f"RLIMIT_NOFILE is {limit}: too low for {total} clients", file=sys.stderr)
        return 2
    if not (HERE / "node_modules" / "ws").exists():
        print("run `npm ci` in benchmarks/ first", file=sys.stderr)
        return 2
    logdir = Path(tempfile.mkdtemp(prefix="trio-rooms-soak-"))
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/soak.py", *sys.argv[1:]])
    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "settings": {k: v if isinstance(v, int | float | list) else str(v) for k, v in vars(args).items()},
        "rlimit_nofile": limit,
        "logs": str(logdir),
    }
    print(f"# {json.dumps(info)}", file=sys.stderr)
    runs: list[SoakRun] = []
    for config in configs:
        poll = args.poll if config == "mixed" else 0
        r = one_run(config, args.n, poll, args, logdir)
        runs.append(r)
        status = "ok" if r.ok else "FAILED: " + "; ".join(r.errors)
        print(f"[{config}: {args.n} WebSocket + {poll} polling] {r.seconds:.0f} s, {status}", file=sys.stderr)
    versions = runs[0].ready.get("versions", {}) if runs else {}
    md = f"`{command}`\n\n" + tables(runs)
    print(md)
    doc = {**info, "versions": versions, "ok": all(r.ok for r in runs), "runs": [vars(r) for r in runs]}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(md + "\n")
    print(f"wrote {args.out}; logs in {logdir}", file=sys.stderr)
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
