"""The headline ratios of the benchmarks as one chart (issue 13): where trio_rooms stands at a glance.

Reads the results JSON files and draws a horizontal bar chart of the ratios trio_rooms / Node
socket.io (and / python-socketio where the file has it), one row per figure, on a log scale around a
vertical line at 1.0 ("as good as the peer"). Every ratio is a cost ratio (lower is better: left of the
line trio_rooms is better): CPU, memory, latency and time are trio_rooms / peer, and for the one
higher-is-better figure (cross-server deliveries per second) the ratio is inverted (peer /
trio_rooms), as the chart says. From the repository root::

    python benchmarks/chart.py                    # the repository's files -> benchmarks/chart.png
    python benchmarks/chart.py results.json results-storm.json --out /tmp/chart.png

Each path's kind is told from its content: run.py's ``results.json`` (fan-out and union CPU per
delivery, connect + join CPU, RSS per connection, p99 latency at 50/s, at N = 1000 and 10,000),
scenarios.py's ``results-poll.json`` (``--groups poll``: long-polling CPU per delivery),
cluster_fanout.py's ``results-cluster.json`` (cross-server deliveries per second and CPU per delivery)
and storm.py's ``results-storm.json`` (reconnect storm: time until every client is back, the new
server's peak RSS) and ``results-connect.json`` (``--connect-only``: the first connect + join's CPU).
A missing file or figure is skipped. The title gives the dates of the measurements and the machine.
The output is deterministic (fonts bundled with matplotlib, the PNG's "Creation Time" set to the
newest measurement's date, no software version): the same files give the same PNG bytes with the
same matplotlib.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

HERE = Path(__file__).resolve().parent
DEFAULTS = (
    "results.json",
    "results-poll.json",
    "results-connect.json",
    "results-cluster.json",
    "results-storm.json",
)
PEERS = {"node": "Node socket.io", "psio": "python-socketio"}
COLORS = {"node": "#1f77b4", "psio": "#9ecae1"}
LIMITS = (1 / 1000, 200.0)  # the x axis; a ratio beyond is drawn to the edge and labelled


@dataclass
class Row:
    label: str
    group: str
    ratios: dict[str, float]  # peer -> cost ratio (lower is better for trio_rooms)


@dataclass
class Source:
    kind: str
    path: Path
    doc: dict[str, Any]


def kind_of(doc: dict[str, Any]) -> str | None:
    """Which script wrote ``doc``: run, scenarios, cluster or storm."""
    settings = doc.get("settings")
    if isinstance(settings, dict) and "transports" in settings:
        return "storm"
    summary = doc.get("summary")
    if not isinstance(summary, dict):
        return None
    if "trio_rooms" in summary and "args" in doc:
        return "cluster"
    if any(key.isdigit() for key in summary):
        return "run"
    if "poll" in summary or "base" in summary:
        return "scenarios"
    return None


def median(row: dict[str, Any] | None, server: str) -> float | None:
    if not row or not isinstance(row.get(server), dict):
        return None
    value = row[server].get("median")
    return float(value) if value else None


def ratios(row: dict[str, Any] | None, peers: tuple[str, ...] = ("node", "psio")) -> dict[str, float]:
    """trio / peer of the medians in a run.py-shaped row ({server: {median, ...}})."""
    out: dict[str, float] = {}
    trio = median(row, "trio")
    for peer in peers:
        other = median(row, peer)
        if trio is not None and other:
            out[peer] = trio / other
    return out


RUN_FIGURES = (
    ("fanout_cpu_ms_per_1000", "fan-out CPU per delivery"),
    ("union_cpu_ms_per_1000", "union of 3 rooms: CPU per delivery"),
    ("connect_cpu_ms_per_1000", "connect + join: CPU per client"),
    ("rss_kb_per_conn", "RSS per idle connection"),
    ("latency50_p99_ms", "p99 latency at 50 broadcasts/s"),
)


def rows_of(source: Source) -> list[Row]:
    doc, rows = source.doc, []
    if source.kind == "run":
        for n in ("1000", "10000"):
            per_n = doc["summary"].get(n, {})
            for key, label in RUN_FIGURES:
                rows.append(Row(f"{label}, N = {int(n):,}", "broadcast (run.py)", ratios(per_n.get(key))))
    elif source.kind == "scenarios":
        poll = doc["summary"].get("poll", {})
        trio = median(poll.get("trio"), "cpu_ms_per_1000")
        polled = {peer: median(poll.get(peer), "cpu_ms_per_1000") for peer in ("node", "psio")}
        if trio is not None:
            by_peer = {peer: trio / value for peer, value in polled.items() if value}
            rows.append(Row("long-polling clients: CPU per delivery", "scenarios.py", by_peer))
    elif source.kind == "cluster":
        summary = doc["summary"]
        trio, node = summary.get("trio_rooms", {}), summary.get("node", {})
        rate_t, rate_n = trio.get("median_deliveries_per_second"), node.get("median_deliveries_per_second")
        if rate_t and rate_n:
            rows.append(
                Row("3 servers over Redis: deliveries/s (inverted)", "cluster", {"node": rate_n / rate_t})
            )
        cpu_t, cpu_n = trio.get("median_server_cpu_ms_per_1000"), node.get("median_server_cpu_ms_per_1000")
        if cpu_t and cpu_n:
            rows.append(Row("3 servers over Redis: CPU per delivery", "cluster", {"node": cpu_t / cpu_n}))
    elif source.kind == "storm":
        n = doc.get("settings", {}).get("n", 0)
        names = {"default": "polling + upgrade", "websocket": "WebSocket"}
        for transport, per in doc["summary"].items():
            if "back_s" not in per:  # storm.py --connect-only: the first connect + join only
                label = f"connect, {names.get(transport, transport)}: CPU, N = {n:,}"
                rows.append(Row(label, "storm.py", ratios(per.get("connect_cpu_ms_per_client"))))
                continue
            name = f"storm of {n:,}, {names.get(transport, transport)}"
            rows.append(Row(f"{name}: all back", "storm.py", ratios(per.get("back_s"))))
            rows.append(Row(f"{name}: peak RSS", "storm.py", ratios(per.get("peak_rss_mb"))))
    return [row for row in rows if row.ratios]


def load(paths: list[Path]) -> list[Source]:
    sources = []
    for path in paths:
        if not path.exists():
            print(f"chart.py: {path} is missing, skipped", file=sys.stderr)
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"chart.py: {path}: {exc}, skipped", file=sys.stderr)
            continue
        kind = kind_of(doc) if isinstance(doc, dict) else None
        if kind is None:
            print(f"chart.py: {path}: not a results file that chart.py knows, skipped", file=sys.stderr)
            continue
        sources.append(Source(kind, path, doc))
    order = ("run", "scenarios", "cluster", "storm")
    return sorted(sources, key=lambda s: order.index(s.kind))


SCRIPTS = {"run": "run.py", "scenarios": "scenarios.py", "cluster": "cluster_fanout.py", "storm": "storm.py"}


def provenance(sources: list[Source]) -> tuple[list[str], str | None]:
    """Lines saying when and on what each script's figures were measured; the newest date (ISO)."""
    groups: dict[str, list[str]] = {}
    for s in sources:
        date = str(s.doc.get("date") or "")[:10] or "date not recorded"
        m = s.doc.get("machine")
        where = "machine not recorded"
        if isinstance(m, dict):
            where = f"{m.get('cpu_model') or 'CPU'}, {m.get('nproc')} cores, Linux {m.get('kernel', '?')}"
            if m.get("pinning") == "taskset":
                where += ", server and load on one core each"
        groups.setdefault(f"{date}, {where}", []).append(SCRIPTS[s.kind])
    lines = [f"{', '.join(scripts)}: {key}" for key, scripts in groups.items()]
    newest = max((str(s.doc["date"]) for s in sources if s.doc.get("date")), default=None)
    return lines, newest


def label_of(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}x"
    if value >= 0.095:
        return f"{value:.2f}x"
    return f"{value:.3f}x"


def draw(rows: list[Row], sources: list[Source], out: Path) -> None:
    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 10})
    fig = plt.figure(figsize=(12, 8), dpi=100)
    ax = fig.add_axes((0.3, 0.085, 0.67, 0.735))
    peers = [p for p in PEERS if any(p in row.ratios for row in rows)]
    values = [v for row in rows for v in row.ratios.values()]
    low = max(LIMITS[0], min(0.4, min(values) / 3))
    high = min(LIMITS[1], max(2.0, max(values) * 2.5))
    slot = 0.8 / max(1, len(peers))
    for i, row in enumerate(rows):
        y0 = len(rows) - 1 - i
        present = [p for p in peers if p in row.ratios]
        for k, peer in enumerate(present):
            value = row.ratios[peer]
            y = y0 + (len(present) - 1) / 2 * slot - k * slot
            shown = min(max(value, LIMITS[0]), LIMITS[1])
            ax.barh(y, shown - 1, left=1, height=slot * 0.9, color=COLORS[peer], edgecolor="none", zorder=2)
            text = label_of(value) + (" (off the scale)" if shown != value else "")
            right = value >= 1
            x = shown * (1.06 if right else 1 / 1.06)
            ax.text(x, y, text, va="center", ha="left" if right else "right", fontsize=9, zorder=3)
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.axvline(1.0, color="black", linewidth=1.2, zorder=3)
    ax.axvspan(low, 1.0, color="#e5f5e0", zorder=0)
    ax.axvspan(1.0, high, color="#fde0dd", zorder=0)
    ticks = [t for t in (0.001, 0.01, 0.1, 0.5, 1, 2, 10, 100) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(range(len(rows)), [row.label for row in reversed(rows)])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    for i in range(1, len(rows)):  # a dotted line between the groups of rows
        if rows[i].group != rows[i - 1].group:
            ax.axhline(len(rows) - i - 0.5, color="grey", linewidth=0.7, linestyle=":", zorder=1)
    ax.text(0.99, 1.012, "trio_rooms worse", transform=ax.transAxes, ha="right", color="#a50f15")
    ax.text(0.01, 1.012, "trio_rooms better", transform=ax.transAxes, ha="left", color="#006d2c")
    ax.text(0.98, 1.012, "1.0: as good as the peer", transform=ax.get_xaxis_transform(), ha="right")
    ax.set_xlabel("trio_rooms / peer (log scale), lower is better; deliveries/s inverted (peer / trio_rooms)")
    names = " and ".join(f"{PEERS[p]}" for p in peers)
    fig.text(
        0.01, 0.965, f"Where trio_rooms stands: headline ratios against {names}", fontsize=14, weight="bold"
    )
    lines, newest = provenance(sources)
    lines.append("Medians of interleaved runs; the figures and how they were measured: benchmarks/RESULTS.md")
    fig.text(0.01, 0.945, "\n".join(lines), fontsize=9, va="top", color="#333333")
    handles = [Patch(color=COLORS[p], label=f"trio_rooms / {PEERS[p]}") for p in peers]
    ax.legend(handles=handles, loc="lower left", fontsize=9, framealpha=0.95)  # the empty corner
    metadata: dict[str, str | None] = {"Software": "benchmarks/chart.py"}
    if newest:
        metadata["Creation Time"] = newest
    fig.savefig(out, dpi=100, metadata=metadata)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help=f"results JSON files (default: {', '.join(DEFAULTS)} in benchmarks/)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "chart.png", help="the PNG (default benchmarks/chart.png)"
    )
    args = parser.parse_args()
    paths: list[Path] = args.paths or [HERE / name for name in DEFAULTS]
    sources = load(paths)
    rows = [row for source in sources for row in rows_of(source)]
    if not rows:
        print("chart.py: no figure to draw", file=sys.stderr)
        return 1
    draw(rows, sources, args.out)
    for row in rows:
        shown = ", ".join(f"{PEERS[p]} {label_of(v)}" for p, v in row.ratios.items())
        print(f"{row.label}: {shown}")
    print(
        f"wrote {args.out} ({len(rows)} rows from {', '.join(s.path.name for s in sources)})", file=sys.stderr
    )
    return 0 if all(math.isfinite(v) for row in rows for v in row.ratios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
