"""Adversarial inputs (issue 11): what the worst inputs of each decoder cost, and what they do to the others.

Not a test (see README.md). Two parts:

(a) sans IO, in process: the decoding time per byte of each worst shape (tests/helpers/worst_shapes.py,
    plus the transport shapes: HTTP heads and chunked bodies on Http11Connection, heads on the lean
    reader of long-polling (protocol/http1.py: "accepted" there means read or fallen back), WebSocket
    frames on wsproto as WebSocketReader drives it) at 1 KB, 64 KB and 1 MB: the best of a few runs, in
    ns per byte. Linear decoders keep the figure flat across the sizes.
(b) end to end: a trio_rooms ``Server`` (default options: max_payload 1 MB) in a subprocess on 127.0.0.1,
    a control client emitting ``echo`` with an ack every 50 ms, and an attacker sending each worst shape
    at just under max_payload, over WebSocket and over long-polling, ``--rounds`` times; the table gives
    the control's worst round trip while each attack was in flight (target: under 100 ms), and how long
    the server took to deal with the attack (until it acked a following echo, answered the POST, or
    closed the connection).

    python benchmarks/adversarial.py                      # both parts, all shapes (~5 minutes)
    python benchmarks/adversarial.py --part sansio --sizes 1000,64000 --only escaped-quotes
    python benchmarks/adversarial.py --part e2e --rounds 1

Tables on stdout, every figure in benchmarks/results-adversarial.json (``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

import h11  # noqa: E402
import trio  # noqa: E402
from helpers.worst_shapes import (  # noqa: E402
    BINARY,
    HTTP1_HEAD_SHAPES,
    HTTP_BODY_SHAPES,
    HTTP_HEAD_SHAPES,
    SHAPES,
    TEXT,
    WS_SHAPES,
    Shape,
    polling_body,
    receive_over_polling,
    receive_over_websocket,
    websocket_messages,
    ws_frame,
)
from wsproto.connection import Connection, ConnectionType  # noqa: E402
from wsproto.events import BytesMessage, Ping, TextMessage  # noqa: E402

import trio_rooms  # noqa: E402
from trio_rooms.engine.h11io import MAX_REQUEST_HEAD_BYTES, parse_request  # noqa: E402
from trio_rooms.errors import RemoteProtocolError  # noqa: E402
from trio_rooms.protocol import engineio  # noqa: E402
from trio_rooms.protocol.cluster.messages import MessageError, decode_any  # noqa: E402
from trio_rooms.protocol.http1 import parse_simple_head  # noqa: E402
from trio_rooms.protocol.http11 import Http11Connection  # noqa: E402
from trio_rooms.protocol.socketio import Decoder  # noqa: E402

SIZES = (1_000, 64_000, 1_000_000)
ATTACK_SIZE = 999_000  # just under max_payload (1,000,000)
CONTROL_PERIOD = 0.05
TARGET_RTT = 0.100

# ---------------------------------------------------------------------------------------------------------
# (a) sans IO
# ---------------------------------------------------------------------------------------------------------

Decode = Callable[[], object]
REFUSALS = (RemoteProtocolError, MessageError, h11.RemoteProtocolError)


def ws_receive(data: bytes) -> int:
    """What WebSocketReader and the session do with ``data`` (64 KiB reads): wsproto's events, pongs
    for pings, messages reassembled, decoded (Engine.IO, then Socket.IO for MESSAGEs)."""
    ws = Connection(ConnectionType.SERVER)
    decoder = Decoder()
    parts: list[Any] = []
    messages = 0
    for start in range(0, len(data), 65536):
        ws.receive_data(data[start : start + 65536])
        for event in ws.events():
            if isinstance(event, Ping):
                ws.send(event.response())
            elif isinstance(event, TextMessage | BytesMessage):
                parts.append(event.data)
                if event.message_finished:
                    message = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
                    parts.clear()
                    packet = engineio.decode_ws(message)
                    if packet.type is engineio.EnginePacketType.MESSAGE:
                        decoder.feed(packet.data)
                    messages += 1
    return messages


def http_receive(data: bytes) -> int:
    """What the server does with a request (16 KiB reads): Http11Connection's events, the head parsed
    (parse_request), a body read whole, then decoded (decode_payload, Socket.IO for MESSAGEs)."""
    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
    body: list[bytes] = []
    offset = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(data[offset : offset + 16384])
            offset += 16384
        elif isinstance(event, h11.Request):
            parse_request(event)
        elif isinstance(event, h11.Data):
            body.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            break
    if body:
        decoder = Decoder()
        for packet in engineio.decode_payload(b"".join(body).decode()):
            decoder.feed(packet.data)
    return len(body)


def http1_parse(build: Callable[[int], bytes], *, bounded: bool) -> Callable[[int], Decode]:
    """size -> the lean reader's call on a shape (built before the timing), at the server's head limit
    (``bounded``) or with a limit past the whole input."""

    def make(size: int) -> Decode:
        data = build(size)
        max_head = MAX_REQUEST_HEAD_BYTES if bounded else len(data) + 1
        return lambda: parse_simple_head(data, max_head=max_head)

    return make


def sansio_cases(only: list[str]) -> list[tuple[str, str, Callable[[int], Decode]]]:
    """(shape, path, size -> the call to time)."""
    cases: list[tuple[str, str, Callable[[int], Decode]]] = []

    def add(name: str, path: str, make: Callable[[int], Decode]) -> None:
        if not only or any(word in name for word in only):
            cases.append((name, path, make))

    def of(shape: Shape, call: Callable[[Any], object]) -> Callable[[int], Decode]:
        def make(size: int) -> Decode:
            messages = shape.build(size)
            return lambda: call(messages)

        return make

    for shape in SHAPES:
        if shape.kind == "socketio":
            add(shape.name, "websocket", of(shape, receive_over_websocket))
            add(shape.name, "polling", of(shape, receive_over_polling))
        elif shape.kind == "payload":
            add(shape.name, "decode_payload", of(shape, lambda m: engineio.decode_payload(m[0])))
        elif shape.kind == "open":
            add(shape.name, "parse_open", of(shape, lambda m: engineio.parse_open(m[0])))
        else:
            add(shape.name, "cluster decode_any", of(shape, lambda m: decode_any(m[0])))
    for name, build in WS_SHAPES.items():
        add(name, "wsproto + decoders", lambda size, build=build: lambda: ws_receive(build(size)))
    for name, build in HTTP_HEAD_SHAPES.items():
        add(name, "h11 head", lambda size, build=build: lambda: http_receive(build(size)))
    for name, build in HTTP1_HEAD_SHAPES.items():
        # the lean head reader at the server's head limit, and with no limit (its own time, linear)
        add(name, "http1 head", http1_parse(build, bounded=True))
        add(name, "http1 head, no limit", http1_parse(build, bounded=False))
    for name, build in HTTP_BODY_SHAPES.items():
        head = b"POST /socket.io/?EIO=4&transport=polling&sid=s HTTP/1.1\r\nHost: x\r\n"
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        add(
            name,
            "h11 chunked body",
            lambda size, build=build, head=head: lambda: http_receive(head + build(size)),
        )
    return cases


def time_call(call: Decode, size: int, max_runs: int) -> tuple[float, str]:
    """Best time of a few runs (seconds) and the outcome."""
    runs = max(1, min(max_runs, 3_000_000 // size))
    best = float("inf")
    outcome = "accepted"
    for _ in range(runs):
        start = time.perf_counter()
        try:
            call()
        except REFUSALS:
            outcome = "refused"
        best = min(best, time.perf_counter() - start)
    return best, outcome


def run_sansio(sizes: list[int], only: list[str], max_runs: int) -> list[dict[str, Any]]:
    rows = []
    for name, path, make in sansio_cases(only):
        row: dict[str, Any] = {"shape": name, "path": path, "ns_per_byte": {}, "seconds": {}, "outcome": {}}
        for size in sizes:
            call = make(size)
            seconds, outcome = time_call(call, size, max_runs)
            row["ns_per_byte"][size] = round(seconds / size * 1e9, 1)
            row["seconds"][size] = seconds
            row["outcome"][size] = outcome
        rows.append(row)
        figures = "  ".join(f"{row['ns_per_byte'][s]:>9}" for s in sizes)
        print(f"  {name:32} {path:20} {figures}", file=sys.stderr, flush=True)
    return rows


def sansio_table(rows: list[dict[str, Any]], sizes: list[int]) -> str:
    head = "| shape | path | " + " | ".join(f"{s:,} B" for s in sizes) + " | worst/best | outcome |"
    lines = [head, "|" + " --- |" * (len(sizes) + 4)]
    for row in rows:
        figures = [row["ns_per_byte"][s] for s in sizes]
        spread = max(figures) / max(min(figures), 0.01)
        outcomes = sorted(set(row["outcome"].values()))
        cells = " | ".join(f"{f:,.1f}" for f in figures)
        lines.append(f"| {row['shape']} | {row['path']} | {cells} | {spread:.1f} | {'/'.join(outcomes)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# (b) end to end
# ---------------------------------------------------------------------------------------------------------


def serve() -> None:
    """``--serve``: the server under attack (default options), printing {"port": N} when it listens."""
    server = trio_rooms.Server()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("echo")
        async def echo(n: int) -> int:
            return n

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(server.serve, "127.0.0.1", 0)
            print(json.dumps({"port": listeners[0].socket.getsockname()[1]}), flush=True)

    trio.run(main)


class Frames:
    """The server's side of a WebSocket, read raw: the 101 head, then unmasked frames."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def _more(self) -> bool:
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        self.buffer += data
        return bool(data)

    async def head(self) -> None:
        while b"\r\n\r\n" not in self.buffer:
            if not await self._more():
                raise EOFError
        self.buffer = self.buffer.partition(b"\r\n\r\n")[2]

    async def message(self) -> bytes | None:
        """The next text or binary frame's payload; None on a close frame or EOF."""
        while True:
            while len(self.buffer) < 2 or len(self.buffer) < self._frame_end():
                if not await self._more():
                    return None
            end, start = self._frame_end(), self._payload_start()
            opcode, payload, self.buffer = self.buffer[0] & 0x0F, self.buffer[start:end], self.buffer[end:]
            if opcode == 0x8:
                return None
            if opcode in (0x1, 0x2):
                return payload

    def _payload_start(self) -> int:
        short = self.buffer[1] & 0x7F
        return 2 if short < 126 else 4 if short == 126 else 10

    def _frame_end(self) -> int:
        short = self.buffer[1] & 0x7F
        if short < 126:
            return 2 + short
        if len(self.buffer) < self._payload_start():
            return self._payload_start() + 1
        size = int.from_bytes(self.buffer[2 : self._payload_start()], "big")
        return self._payload_start() + size


WS_HANDSHAKE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
ECHO_FRAME = ws_frame(TEXT, b'4299["echo",1]')


Poke = Callable[[], None]


async def ws_attack(port: int, attack: bytes, poke: Poke) -> tuple[str, float, float]:
    """Connect to "/", send ``attack`` then an echo with ack 99 (then ``poke``); (outcome, start, end)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    frames = Frames(stream)
    async with stream:
        await stream.send_all(WS_HANDSHAKE)
        await frames.head()
        await frames.message()  # OPEN
        await stream.send_all(ws_frame(TEXT, b"40"))
        while (message := await frames.message()) is not None and not message.startswith(b"40"):
            pass
        outcome = "closed"
        start = trio.current_time()
        async with trio.open_nursery() as nursery:

            async def send() -> None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(attack + ECHO_FRAME)
                poke()

            nursery.start_soon(send)
            while (message := await frames.message()) is not None:
                if message == b"4399[1]":
                    outcome = "acked"
                    break
            end = trio.current_time()
            nursery.cancel_scope.cancel()
    return outcome, start, end


async def http_exchange(port: int, data: bytes, poke: Poke | None = None) -> tuple[int, bytes]:
    """Send ``data`` (ending with Connection: close; ``poke`` once sent), read to EOF; (status, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    async with stream, trio.open_nursery() as nursery:

        async def send() -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(data)
            if poke is not None:
                poke()

        nursery.start_soon(send)
        with contextlib.suppress(trio.BrokenResourceError):
            while chunk := await stream.receive_some(65536):
                received += chunk
        nursery.cancel_scope.cancel()
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body


def post_head(sid: str, length: int | None) -> bytes:
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    target = f"/socket.io/?EIO=4&transport=polling&sid={sid}".encode()
    return b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + framing + b"\r\n\r\n"


async def polling_attack(
    port: int, body: bytes, poke: Poke, *, chunked: bool = False
) -> tuple[str, float, float]:
    """Open a polling session on "/", then POST ``body``; (HTTP status or "closed", start, end)."""
    handshake = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    _status, opening = await http_exchange(port, handshake)
    sid = json.loads(opening[1:])["sid"]
    await http_exchange(port, post_head(sid, 2) + b"40")
    start = trio.current_time()
    status, _ = await http_exchange(port, post_head(sid, None if chunked else len(body)) + body, poke)
    end = trio.current_time()
    # Close the session, as the WebSocket attacker closes its connection: an idle session would keep
    # its last event's arguments alive until its ping timeout (see README.md).
    await http_exchange(port, post_head(sid, 1) + b"1")
    return (str(status) if status else "closed"), start, end


async def head_attack(port: int, head: bytes, poke: Poke) -> tuple[str, float, float]:
    start = trio.current_time()
    status, _ = await http_exchange(port, head, poke)
    return str(status), start, trio.current_time()


Attack = Callable[[int, Poke], Any]


def e2e_attacks(only: list[str]) -> list[tuple[str, str, Attack]]:
    """(shape, transport, (port, poke) -> the attack coroutine)."""
    attacks: list[tuple[str, str, Attack]] = []

    def add(name: str, transport: str, attack: Attack) -> None:
        if not only or any(word in name for word in only):
            attacks.append((name, transport, attack))

    for shape in SHAPES:
        if shape.kind == "socketio":
            messages = shape.build(ATTACK_SIZE)
            frames = b"".join(
                ws_frame(TEXT, m.encode()) if isinstance(m, str) else ws_frame(BINARY, m)
                for m in websocket_messages(messages)
            )
            body = polling_body(messages).encode()
            add(shape.name, "websocket", lambda port, poke, frames=frames: ws_attack(port, frames, poke))
            add(shape.name, "polling", lambda port, poke, body=body: polling_attack(port, body, poke))
        elif shape.kind == "payload":
            body = str(shape.build(ATTACK_SIZE)[0]).encode()
            add(shape.name, "polling", lambda port, poke, body=body: polling_attack(port, body, poke))
    for name, build in WS_SHAPES.items():
        data = build(ATTACK_SIZE)
        add(name, "websocket", lambda port, poke, data=data: ws_attack(port, data, poke))
    for name, build in HTTP_BODY_SHAPES.items():
        data = build(ATTACK_SIZE)
        add(name, "polling", lambda port, poke, data=data: polling_attack(port, data, poke, chunked=True))
    for name, build in HTTP_HEAD_SHAPES.items():
        data = build(MAX_REQUEST_HEAD_BYTES - 64)
        add(name, "http head", lambda port, poke, data=data: head_attack(port, data, poke))
    return attacks


class Control:
    """The control client: "echo" with an ack every CONTROL_PERIOD, and at once when poked (an attack's
    bytes are out, so that its echo waits behind the attack if anything does); records (start, RTT)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._poked = trio.Event()

    def poke(self) -> None:
        self._poked.set()

    async def run(self, port: int, task_status: Any) -> None:
        from trio_rooms.protocol import PacketType
        from trio_rooms.testing import open_test_client

        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with open_test_client(stream) as client:
            assert (await client.connect()).type is PacketType.CONNECT
            task_status.started()
            n = 0
            while True:
                start = trio.current_time()
                await client.emit("echo", n, ack_id=n)
                while (await client.receive()).ack_id != n:
                    pass
                self.samples.append((start, trio.current_time() - start))
                n += 1
                with trio.move_on_after(CONTROL_PERIOD):
                    await self._poked.wait()
                self._poked = trio.Event()


def worst_overlapping(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """The worst round trip of the control samples in flight during [start, end]."""
    return max((rtt for t, rtt in samples if t <= end and t + rtt >= start), default=0.0)


async def run_e2e(port: int, rounds: int, only: list[str]) -> dict[str, Any]:
    attacks = e2e_attacks(only)
    control = Control()
    samples = control.samples
    results: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(control.run, port)
        await trio.sleep(2.0)
        idle = [rtt for _, rtt in samples]
        for name, transport, attack in attacks:
            row: dict[str, Any] = {"shape": name, "transport": transport, "rounds": []}
            for _ in range(rounds):
                with trio.fail_after(60):
                    outcome, start, end = await attack(port, control.poke)
                await trio.sleep(2 * CONTROL_PERIOD)  # the sample in flight at the end is counted
                worst = worst_overlapping(samples, start, end)
                row["rounds"].append(
                    {"outcome": outcome, "attack_s": end - start, "control_worst_rtt_s": worst}
                )
            row["control_worst_rtt_s"] = max(r["control_worst_rtt_s"] for r in row["rounds"])
            row["attack_worst_s"] = max(r["attack_s"] for r in row["rounds"])
            results.append(row)
            print(
                f"  {name:32} {transport:10} control worst {row['control_worst_rtt_s'] * 1e3:7.1f} ms"
                f"  attack {row['attack_worst_s'] * 1e3:7.1f} ms  {[r['outcome'] for r in row['rounds']]}",
                file=sys.stderr,
                flush=True,
            )
        nursery.cancel_scope.cancel()
    return {
        "idle_control_rtt_s": {"max": max(idle), "median": sorted(idle)[len(idle) // 2]},
        "samples": len(samples),
        "attacks": results,
    }


def e2e_table(e2e: dict[str, Any]) -> str:
    idle = e2e["idle_control_rtt_s"]
    lines = [
        f"Control round trip with no attack: median {idle['median'] * 1e3:.1f} ms, "
        f"max {idle['max'] * 1e3:.1f} ms.",
        "",
        "| shape | transport | control worst RTT (ms) | under 100 ms | attack handled in (ms, worst) "
        "| outcome |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in e2e["attacks"]:
        worst = row["control_worst_rtt_s"]
        outcomes = "/".join(sorted({r["outcome"] for r in row["rounds"]}))
        met = "yes" if worst < TARGET_RTT else "NO"
        lines.append(
            f"| {row['shape']} | {row['transport']} | {worst * 1e3:.1f} | {met} "
            f"| {row['attack_worst_s'] * 1e3:.1f} | {outcomes} |"
        )
    return "\n".join(lines)


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(json.loads(line)["port"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("both", "sansio", "e2e"), default="both")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="sans-IO sizes in bytes")
    parser.add_argument("--only", default="", help="comma-separated words: shapes whose name holds one")
    parser.add_argument("--max-runs", type=int, default=15, help="sans IO: runs per figure at most (best of)")
    parser.add_argument("--rounds", type=int, default=3, help="end to end: attacks per shape and transport")
    parser.add_argument("--out", default=str(HERE / "results-adversarial.json"))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    only = [w for w in args.only.split(",") if w]
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    if args.part in ("both", "sansio"):
        print("(a) sans IO: ns per byte", file=sys.stderr)
        rows = run_sansio(sizes, only, args.max_runs)
        result["sansio"] = {"sizes": sizes, "rows": rows}
        print("## (a) Decoding time per byte (ns/B, best of a few runs)\n")
        print(sansio_table(rows, sizes) + "\n", flush=True)
    if args.part in ("both", "e2e"):
        print("(b) end to end", file=sys.stderr)
        proc, port = start_server()
        try:
            result["e2e"] = trio.run(run_e2e, port, args.rounds, only)
        finally:
            proc.terminate()
            proc.wait(10)
        print(f"## (b) End to end: attacks of {ATTACK_SIZE:,} bytes, control echo every 50 ms\n")
        print(e2e_table(result["e2e"]) + "\n", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"figures written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
