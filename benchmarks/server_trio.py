"""Benchmark server on trio_rooms: the handlers every benchmark server has (see README.md).

- ``"join", rooms``: joins the list of rooms; acks ``true``.
- ``"bench", {targets, except?, count, seq0, rate, pad}``: broadcasts ``count`` events
  ``"m", {"i": seq0 + i, "p": pad}``, event ``i`` to the rooms ``targets[i % len(targets)]`` (the union
  of those rooms, each member once), leaving out the members of ``except``; ``rate`` > 0 paces them
  at that many per second from an absolute schedule, 0 sends them back to back. Acks
  ``{"sent": count}`` when done, when the client asked for an ack.

Handlers of the extra workloads (scenarios.py; every server has them):

- ``"bench-rooms", {count, prefix, sockets}``: creates ``count`` rooms ``prefix0``, ``prefix1``, ... of
  one member each, spread round-robin over the asking socket and ``sockets - 1`` other connected
  sockets, with ``adapter.add_all``; acks ``{"rooms": total rooms in the namespace}``.
- ``"bench-stats", {}``: acks the debug counters (empty unless ``--count-encodes``).
- ``"bench-trace", {}``: with ``--trace-requests``, acks (and forgets) ``{seq0: ns}``, the
  ``time.monotonic_ns()`` at which each one-broadcast ``bench`` request's handler started.

``--gc-freeze-rooms``: ``bench-rooms`` ends with ``gc.collect(); gc.freeze()`` (a diagnostic).

``--admin development|production``: ``trio_rooms.admin.instrument(server, mode=...)`` (the Admin UI's
instrumentation, no page connected; its cost on the broadcast path).

``--ping-interval S``, ``--ping-timeout S``: the heartbeat (defaults: the Server's, 25 and 20 s).

``--metrics-scrape S``: ``Server(metrics=True)``, and a task of this process that scrapes its own
``GET /metrics`` over HTTP every S seconds (the metrics' cost when on, scrapes included); each scrape
prints ``scrape <ms> ms <bytes> bytes`` to stderr (its wall time, waits for the loop included).

``--stats-stdin`` (soak.py): a side channel that opens no connection to the server. Each line
``stats`` (or ``stats gc``) read on stdin is answered by one line ``STATS {json}`` on stdout:
``server.stats()``, the number of trio tasks (every task under the root task, walked recursively:
the same count before and after a run means no task was left behind), the most common task names,
the disconnect reasons the server gave its sockets so far (counted by a ``"disconnect"`` handler),
the entries of the heartbeat schedule (due or not, for live or gone sessions), and with ``gc`` the
number of objects the cyclic GC tracks before and after a full ``gc.collect()``, what that collected,
and the number of tracked objects by type.

``--count-encodes`` (this benchmark server only, nothing in trio_rooms changes) wraps
``trio_rooms.protocol.encoded.Encoded`` to count the encoded packets made (``encoded``), the reads of
their long-polling text (``polling_reads``) and how many of those reads built it (``polling_builds``).

Prints ``{"server": "trio_rooms", "port": PORT, ...}`` on one line when it listens (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import sys
import time
from importlib.metadata import version
from typing import Any

import trio

import trio_rooms
from trio_rooms.protocol.encoded import Encoded
from trio_rooms.protocol.socketio import Packet
from trio_rooms.server import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT

COUNTERS: dict[str, int] = {}
#: With --trace-requests: the CLOCK_MONOTONIC time (ns) at which the handler of each one-broadcast
#: "bench" request started, by its seq0 (the load client compares it with its own send time).
TRACE: dict[int, int] | None = None
#: With --gc-freeze-rooms: "bench-rooms" ends with gc.collect(); gc.freeze() (a diagnostic: do the
#: rooms cost through the cyclic GC's full collections?).
GC_FREEZE = False
#: With --stats-stdin: the disconnect reasons of the sockets so far, by reason.
DISCONNECTS: collections.Counter[str] | None = None
#: With --admin: the mode of the Admin UI's instrumentation.
ADMIN: str | None = None


def count_encodes() -> None:
    """Wrap ``Encoded`` (construction, the ``polling`` property) with counters, in this process only."""
    COUNTERS.update(encoded=0, polling_reads=0, polling_builds=0)
    init = Encoded.__init__
    polling = Encoded.__dict__["polling"]
    assert isinstance(polling, property) and polling.fget is not None
    build = polling.fget

    def counted_init(self: Encoded, segments: tuple[str | bytes, ...], packet: Packet | None = None) -> None:
        COUNTERS["encoded"] += 1
        init(self, segments, packet)

    def counted_polling(self: Encoded) -> str:
        COUNTERS["polling_reads"] += 1
        if self._polling is None:
            COUNTERS["polling_builds"] += 1
        text: str = build(self)
        return text

    Encoded.__init__ = counted_init  # type: ignore[method-assign]
    Encoded.polling = property(counted_polling)  # type: ignore[method-assign,assignment]


def log_collections() -> None:
    """Log every generation 1 and 2 collection (time, duration, objects collected) to stderr."""
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 0:
            return
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = (time.perf_counter() - started[0]) * 1000
        generation = info["generation"]
        objects = len(gc.get_objects(2)) if generation == 2 else "-"
        print(
            f"gc gen{generation} {took:.1f} ms collected={info['collected']} at={time.monotonic():.3f}"
            f" objects={objects}",
            file=sys.stderr,
            flush=True,
        )

    gc.callbacks.append(callback)


def task_census(top: int = 12) -> tuple[int, list[tuple[str, int]]]:
    """The number of live trio tasks (the root task and everything under it) and the ``top`` most
    common task names (without a " at 0x..." address, so that the tasks of one function share it)."""
    names: collections.Counter[str] = collections.Counter()
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        names[task.name.split(" at 0x")[0]] += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return sum(names.values()), names.most_common(top)


async def serve_stats_stdin(server: trio_rooms.Server) -> None:
    """Answer each ``stats`` line on stdin with one ``STATS {json}`` line on stdout, until EOF."""
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    async with stream:
        while True:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                words = line.decode().split()
                if not words or words[0] != "stats":
                    continue
                tasks, names = task_census()
                doc: dict[str, Any] = {
                    "stats": server.stats(),
                    "tasks": tasks,
                    "task_names": names,
                    "disconnects": dict(DISCONNECTS or {}),
                    # entries of the heartbeat schedule, live or not yet due (a private attribute)
                    "heartbeat_entries": len(getattr(server.engine, "_heartbeats", ())),
                    "monotonic": time.monotonic(),
                }
                if "gc" in words[1:]:
                    doc["gc_objects_before_collect"] = len(gc.get_objects())
                    doc["gc_collected"] = gc.collect()
                    objects = gc.get_objects()
                    doc["gc_objects"] = len(objects)
                    doc["gc_types"] = collections.Counter(type(o).__qualname__ for o in objects)
                    del objects
                print("STATS " + json.dumps(doc), flush=True)


def build_server(
    freeze_gc: bool = True,
    ping_interval: float | None = None,
    ping_timeout: float | None = None,
    metrics: bool = False,
    recovery: bool = False,
) -> trio_rooms.Server:
    server = trio_rooms.Server(
        connection_state_recovery=trio_rooms.ConnectionStateRecovery() if recovery else None,
        freeze_gc=freeze_gc,
        metrics=metrics,
        ping_interval=DEFAULT_PING_INTERVAL if ping_interval is None else ping_interval,
        ping_timeout=DEFAULT_PING_TIMEOUT if ping_timeout is None else ping_timeout,
    )

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        if DISCONNECTS is not None:
            disconnects = DISCONNECTS

            @socket.on("disconnect")
            async def on_disconnect(reason: str) -> None:
                disconnects[reason] += 1

        @socket.on("join")
        async def join(rooms: list[str]) -> bool:
            socket.join(rooms)
            return True

        @socket.on("bench")
        async def bench(req: dict[str, Any]) -> dict[str, int]:
            targets: list[list[str]] = req["targets"]
            excluded: list[str] = req.get("except") or []
            count = int(req["count"])
            seq0 = int(req["seq0"])
            rate = float(req.get("rate") or 0)
            pad = str(req.get("pad", ""))
            ops = [server.to(t).except_(excluded) if excluded else server.to(t) for t in targets]
            if TRACE is not None and count == 1:
                TRACE[seq0] = time.monotonic_ns()
            start = trio.current_time()
            for i in range(count):
                if rate > 0:
                    await trio.sleep_until(start + i / rate)
                await ops[i % len(ops)].emit("m", {"i": seq0 + i, "p": pad})
            return {"sent": count}

        @socket.on("bench-rooms")
        async def bench_rooms(req: dict[str, Any]) -> dict[str, int]:
            nsp = server.of("/")
            others = [sid for sid in nsp.sockets if sid != socket.id]
            owners = [socket.id, *others[: max(0, int(req.get("sockets", 1)) - 1)]]
            prefix = str(req["prefix"])
            for k, owner in enumerate(owners):
                nsp.adapter.add_all(owner, [f"{prefix}{i}" for i in range(k, int(req["count"]), len(owners))])
            if GC_FREEZE:
                gc.collect()
                gc.freeze()
            return {"rooms": len(nsp.adapter.rooms), "owners": len(owners)}

        @socket.on("bench-stats")
        async def bench_stats(req: dict[str, Any]) -> dict[str, int]:
            return dict(COUNTERS)

        @socket.on("bench-trace")
        async def bench_trace(req: dict[str, Any]) -> dict[str, int]:
            if TRACE is None:
                return {}
            out = {str(k): v for k, v in TRACE.items()}
            TRACE.clear()
            return out

    return server


async def scrape_forever(port: int, every: float) -> None:
    """GET /metrics from this server every ``every`` seconds over HTTP, as Prometheus would
    (``--metrics-scrape``: the cost of the metrics when on, scrapes included)."""
    request = b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    while True:
        await trio.sleep(every)
        started = time.perf_counter()
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            size = 0
            while data := await stream.receive_some(65536):
                size += len(data)
        took = (time.perf_counter() - started) * 1000
        print(f"scrape {took:.2f} ms {size} bytes at={time.monotonic():.3f}", file=sys.stderr, flush=True)


async def main(
    port: int,
    freeze_gc: bool = True,
    ping_interval: float | None = None,
    ping_timeout: float | None = None,
    metrics_scrape: float | None = None,
    recovery: bool = False,
) -> None:
    server = build_server(
        freeze_gc, ping_interval, ping_timeout, metrics=metrics_scrape is not None, recovery=recovery
    )
    if ADMIN is not None:
        from trio_rooms.admin import instrument

        instrument(server, mode="production" if ADMIN == "production" else "development")
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", port)
        if DISCONNECTS is not None:
            nursery.start_soon(serve_stats_stdin, server)
        if metrics_scrape is not None:
            nursery.start_soon(scrape_forever, listeners[0].socket.getsockname()[1], metrics_scrape)
        ready = {
            "server": "trio_rooms",
            "port": listeners[0].socket.getsockname()[1],
            "versions": {
                "python": sys.version.split()[0],
                "trio": trio.__version__,
                "trio_rooms": version("trio-rooms"),
            },
            "ping_interval": server.engine.options.ping_interval,
            "ping_timeout": server.engine.options.ping_timeout,
            "recovery": recovery,
        }
        print(json.dumps(ready), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count-encodes", action="store_true", help="count Encoded packets (debug)")
    parser.add_argument("--trace-requests", action="store_true", help="time one-broadcast requests (debug)")
    parser.add_argument("--gc-freeze-rooms", action="store_true", help="gc.freeze() after bench-rooms")
    parser.add_argument(
        "--gc",
        default="default",
        help='cyclic GC (diagnostic): "default", "off", or thresholds "700,10,10"',
    )
    parser.add_argument("--gc-log", action="store_true", help="log each gen 1/2 collection to stderr")
    parser.add_argument("--no-freeze-gc", action="store_true", help="Server(freeze_gc=False)")
    parser.add_argument(
        "--recovery", action="store_true", help="Server(connection_state_recovery=ConnectionStateRecovery())"
    )
    parser.add_argument("--ping-interval", type=float, help="Server(ping_interval=...), seconds")
    parser.add_argument("--ping-timeout", type=float, help="Server(ping_timeout=...), seconds")
    parser.add_argument("--stats-stdin", action="store_true", help='answer "stats" lines on stdin (soak.py)')
    parser.add_argument(
        "--metrics-scrape",
        type=float,
        metavar="SECONDS",
        help="Server(metrics=True), and GET /metrics from it every SECONDS over HTTP",
    )
    parser.add_argument("--admin", choices=["development", "production"], help="instrument for the Admin UI")
    cli = parser.parse_args()
    ADMIN = cli.admin
    if cli.stats_stdin:
        DISCONNECTS = collections.Counter()
    GC_FREEZE = cli.gc_freeze_rooms
    if cli.gc_log:
        log_collections()
    if cli.gc == "off":
        gc.disable()
    elif cli.gc != "default":
        gc.set_threshold(*(int(part) for part in cli.gc.split(",")))
    if cli.count_encodes:
        count_encodes()
    if cli.trace_requests:
        TRACE = {}
    trio.run(
        main,
        cli.port,
        not cli.no_freeze_gc,
        cli.ping_interval,
        cli.ping_timeout,
        cli.metrics_scrape,
        cli.recovery,
    )
