"""Summarise a ``py-spy record --format raw`` profile: where the time of the sampled process goes.

    python benchmarks/profile_summary.py PROFILE.raw [--top 25] [--us-per-delivery 16.5]

A raw profile has one line per distinct stack, ``frame;frame;...;leaf COUNT``, each frame
``function (file:line)``. Self time of a function: the samples whose leaf frame it is. Inclusive: the
samples with it anywhere in the stack. "In send(2)": the samples whose leaf line calls a socket
``send``/``sendmsg`` (read from the source with linecache): py-spy sees no native frames by default,
so the time inside a C call (here the send system call and its C wrapper) is the calling line's self time.
Percentages are of all samples (py-spy drops the samples of an idle thread unless ``--idle``).
"""

from __future__ import annotations

import argparse
import linecache
import re
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*):(?P<line>\d+)\)$")
SEND = re.compile(r"\bsock\w*\.send(msg|all|to)?\(")


def short(path: str) -> str:
    parts = Path(path).parts
    for anchor in ("trio_rooms", "trio", "h11"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) :])
    return "/".join(parts[-2:])


def parse_frame(frame: str) -> tuple[str, str, int]:
    m = FRAME.match(frame.strip())
    if m is None:
        return frame.strip(), "", 0
    return m["func"], m["file"], int(m["line"])


def summarize_raw(text: str, *, top: int = 25, us_per_delivery: float | None = None) -> dict[str, Any]:
    total = 0
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    send = 0
    send_lines: Counter[str] = Counter()
    leaf_lines: Counter[str] = Counter()
    for raw in text.splitlines():
        stack, _, count_s = raw.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = [parse_frame(f) for f in stack.split(";")]
        names = [f"{func} ({short(file)})" for func, file, _ in frames]
        self_t[names[-1]] += count
        for name in set(names):
            incl[name] += count
        _, file, line = frames[-1]
        source = linecache.getline(file, line).strip() if file else ""
        leaf_lines[f"{short(file)}:{line} `{source}`" if file else names[-1]] += count
        if file and SEND.search(linecache.getline(file, line)):
            send += count
            send_lines[f"{short(file)}:{line} `{linecache.getline(file, line).strip()}`"] += count
    rows = []
    for name, n in self_t.most_common(top):
        row: dict[str, Any] = {
            "function": name,
            "self_pct": 100 * n / total,
            "incl_pct": 100 * incl[name] / total,
        }
        if us_per_delivery is not None:
            row["self_us_per_delivery"] = us_per_delivery * n / total
        rows.append(row)
    out: dict[str, Any] = {
        "samples": total,
        "send_pct": 100 * send / total if total else 0.0,
        "send_lines": {k: 100 * v / total for k, v in send_lines.most_common(5)},
        "top": rows,
        "line_top": {k: 100 * v / total for k, v in leaf_lines.most_common(top)},
        "inclusive_top": [{"function": k, "incl_pct": 100 * v / total} for k, v in incl.most_common(top)],
    }
    out["markdown"] = markdown(out, us_per_delivery)
    return out


def markdown(s: dict[str, Any], us_per_delivery: float | None) -> str:
    per = us_per_delivery is not None
    lines = [
        f"py-spy samples: {s['samples']}; leaf line calls socket send (the send system call and its C "
        f"wrapper): {s['send_pct']:.1f} % of samples",
        "",
        "| function (self time, leaf frame) | self % | inclusive % |"
        + (" self us per delivery |" if per else ""),
        "|---|---|---|" + ("---|" if per else ""),
    ]
    for r in s["top"]:
        extra = f" {r['self_us_per_delivery']:.2f} |" if per else ""
        lines.append(f"| `{r['function']}` | {r['self_pct']:.1f} | {r['incl_pct']:.1f} |{extra}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--us-per-delivery", type=float, help="CPU per delivery of the run, to convert shares"
    )
    args = parser.parse_args()
    s = summarize_raw(args.raw.read_text(), top=args.top, us_per_delivery=args.us_per_delivery)
    print(s["markdown"])
    print("\n| send call site | % of samples |\n|---|---|")
    for k, v in s["send_lines"].items():
        print(f"| {k} | {v:.1f} |")
    print("\n| leaf line (self time) | % of samples |\n|---|---|")
    for k, v in s["line_top"].items():
        print(f"| {k} | {v:.1f} |")
    print("\n| function (inclusive) | % of samples |\n|---|---|")
    for r in s["inclusive_top"]:
        print(f"| `{r['function']}` | {r['incl_pct']:.1f} |")


if __name__ == "__main__":
    main()
