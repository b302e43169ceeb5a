"""The limit: the measured floor of a room broadcast on this machine, NOT a Socket.IO server.

A deliberately minimal, single-threaded server on the standard library only (one ``selectors`` loop,
epoll on Linux; no trio, no asyncio, no trio_rooms) that speaks just enough Engine.IO v4 / Socket.IO v5
over WebSocket for ``loadclient.mjs``, with the handlers of the other benchmark servers (server_trio.py):
``join``, ``bench``, and cheap ``bench-rooms``, ``bench-stats`` and ``bench-trace``.

What it measures: each broadcast is encoded ONCE (JSON and WebSocket header), then written to each
recipient with ONE non-blocking ``send(2)`` in a tight loop, from the broadcasting code itself (no
queue, no task). Only what the kernel does not take (a slow client) goes to that connection's output
buffer, flushed on EVENT_WRITE; while output is pending, later frames go behind it (order holds).
Nothing else is there: no polling, namespaces, binary packets, server heartbeat or limits but the
frame size. Prints ``{"server": "limit", "port": PORT, ...}`` on one line when it listens (127.0.0.1).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import heapq
import itertools
import json
import selectors
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPEN = '0{"sid":"%s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
COMPACT = (",", ":")

SEL = selectors.DefaultSelector()
ROOMS: dict[str, set[Conn]] = {}  # room -> its members (the connections themselves: no lookup by id)
CONNS: dict[str, Conn] = {}  # the Socket.IO sockets connected to "/", by sid
JOBS: list[tuple[float, int, Iterator[float]]] = []  # paced "bench" requests, by next due time
DEAD: list[Conn] = []  # connections whose send failed, closed after the broadcast that found them
NO_ONE: frozenset[Conn] = frozenset()
IDS = itertools.count(1)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def broadcast(targets: list[str], excluded: list[str], payload: bytes) -> None:
    """Frame the packet once, then send it to the union of ``targets`` minus ``excluded``."""
    recipients: AbstractSet[Conn]
    if len(targets) == 1 and not excluded:
        recipients = ROOMS.get(targets[0], NO_ONE)  # iterated in place: nothing changes it meanwhile
    else:
        recipients = set().union(*[ROOMS.get(r, NO_ONE) for r in targets])
        recipients.difference_update(*[ROOMS.get(r, NO_ONE) for r in excluded])
    send_all(recipients, text_frame(payload))
    reap()


def send_all(recipients: Iterable[Conn], data: bytes) -> None:
    """One non-blocking send per recipient, from right here; what the kernel does not take (or all
    of it, behind output still pending) waits in that connection's ``out``, so the order holds."""
    size = len(data)
    for c in recipients:
        if c.out:
            c.out += data
            continue
        try:
            sent = c.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:  # closed on our side (EBADF) or by the peer: closed after the broadcast
            DEAD.append(c)
            continue
        if sent != size:
            c.out += memoryview(data)[sent:]
            SEL.modify(c.sock, READ | WRITE, c)


def reap() -> None:
    while DEAD:
        DEAD.pop().close()


class Conn:
    __slots__ = ("closed", "frag", "inbuf", "joined", "out", "rooms", "send", "sid", "sock", "upgraded")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send: Callable[[bytes | bytearray], int] = sock.send
        self.sid = f"L{next(IDS):07d}"
        self.out = bytearray()  # output the kernel did not take yet
        self.inbuf = bytearray()
        self.frag: bytearray | None = None  # a fragmented text message being received
        self.rooms: set[str] = set()
        self.upgraded = self.joined = self.closed = False

    def write(self, data: bytes) -> None:
        send_all((self,), data)

    def flush(self) -> None:
        try:
            del self.out[: self.send(self.out)]
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if not self.out:
            SEL.modify(self.sock, READ, self)

    def emit_packet(self, text: str) -> None:
        self.write(text_frame(text.encode()))

    def ack(self, ack_id: str, value: Any) -> None:
        if ack_id:
            self.emit_packet(f"43{ack_id}{json.dumps([value], separators=COMPACT)}")

    def join(self, rooms: Iterable[str]) -> None:
        for r in rooms:
            ROOMS.setdefault(r, set()).add(self)
            self.rooms.add(r)

    def leave_all(self) -> None:
        for r in self.rooms:
            members = ROOMS[r]
            members.discard(self)
            if not members:
                del ROOMS[r]
        self.rooms.clear()
        CONNS.pop(self.sid, None)
        self.joined = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.leave_all()
            SEL.unregister(self.sock)
            self.sock.close()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.inbuf += data
        if not self.upgraded:
            self.handshake()
        if self.upgraded and not self.closed:
            self.read_frames()

    def handshake(self) -> None:
        end = self.inbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.inbuf) > 16384:
                self.close()
            return
        lines = self.inbuf[:end].decode("latin-1").split("\r\n")
        del self.inbuf[: end + 4]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        key = headers.get("sec-websocket-key")
        if key is None or not lines[0].startswith("GET /socket.io/") or "transport=websocket" not in lines[0]:
            self.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.close()
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        self.upgraded = True
        head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        self.write(head.encode() + text_frame((OPEN % self.sid).encode()))

    def read_frames(self) -> None:
        """The complete frames in ``inbuf`` (masked, 7/16/64-bit lengths)."""
        buf = self.inbuf
        while len(buf) >= 2 and not self.closed:
            b0, b1 = buf[0], buf[1]
            size, pos = b1 & 0x7F, 2
            if size >= 126:
                pos = 4 if size == 126 else 10
                if len(buf) < pos:
                    return
                size = int.from_bytes(buf[2:pos], "big")
            if size > 1_000_000:  # maxPayload
                self.close()
                return
            mask = bytes(buf[pos : pos + 4]) if b1 & 0x80 else b""
            pos += len(mask)
            if len(buf) < pos + size:
                return
            payload = bytes(buf[pos : pos + size])
            del buf[: pos + size]
            if mask and size:
                key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
                payload = (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")
            self.on_frame(b0 & 0x80, b0 & 0x0F, payload)

    def on_frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == 0x8:  # close: echo the status code, then close
            self.write(bytes((0x88, len(payload[:2]))) + payload[:2])
            self.close()
        elif opcode == 0x9:  # ping -> pong
            self.write(bytes((0x8A, len(payload[:125]))) + payload[:125])
        elif opcode == 0x0 and self.frag is not None:  # continuation
            self.frag += payload
            if fin:
                message, self.frag = bytes(self.frag), None
                self.on_packet(message.decode())
        elif opcode == 0x1:
            if fin:
                self.on_packet(payload.decode())
            else:
                self.frag = bytearray(payload)
        # 0xA pong, 0x2 binary: ignored

    def on_packet(self, text: str) -> None:
        """An Engine.IO packet: "4" a Socket.IO packet of "/" (no other namespace here)."""
        if text.startswith("42") and self.joined:  # EVENT: 42<ack id>[name, ...args]
            j = text.find("[")
            try:
                data = json.loads(text[j:])
                handler = HANDLERS.get(data[0])
                if handler is not None:
                    handler(self, text[2:j], data[1:])
            except (ValueError, LookupError, TypeError) as exc:  # a malformed request: say so, go on
                print(f"{self.sid}: {exc!r} in {text[:200]!r}", file=sys.stderr, flush=True)
        elif text.startswith("40"):  # CONNECT (auth, if any, ignored)
            if not self.joined:
                self.joined = True
                CONNS[self.sid] = self
                self.join((self.sid,))
            self.emit_packet(f'40{{"sid":"{self.sid}"}}')
        elif text.startswith("41"):  # DISCONNECT from "/"
            self.leave_all()
        elif text.startswith("2"):  # an Engine.IO ping from the client ("2" or "2probe"): pong
            self.emit_packet("3" + text[1:])
        elif text.startswith("1"):  # Engine.IO close
            self.close()
        # "3" pong, "43" ack, "5" upgrade, "6" noop: nothing to do


def bench(c: Conn, ack_id: str, req: dict[str, Any]) -> Iterator[float]:
    """One "bench" request; with ``rate`` > 0 it yields the due time of its next broadcast."""
    targets = [[t] if isinstance(t, str) else list(t) for t in req["targets"]]
    excluded: list[str] = list(req.get("except") or [])
    count, seq0, pad = int(req["count"]), int(req["seq0"]), str(req.get("pad", ""))
    rate = float(req.get("rate") or 0)
    start = time.monotonic()
    for i in range(count):
        if rate > 0 and i > 0:
            yield start + i / rate  # an absolute schedule: a late broadcast does not delay the next
        packet = "42" + json.dumps(["m", {"i": seq0 + i, "p": pad}], separators=COMPACT)  # encoded once
        broadcast(targets[i % len(targets)], excluded, packet.encode())
    c.ack(ack_id, {"sent": count})


def resume(job: Iterator[float]) -> None:
    """Run ``job`` up to its next pause, if any, and schedule it then."""
    due = next(job, None)
    if due is not None:
        heapq.heappush(JOBS, (due, next(IDS), job))


def on_join(c: Conn, ack_id: str, args: list[Any]) -> None:
    rooms = args[0] if args else []
    c.join([rooms] if isinstance(rooms, str) else rooms)
    c.ack(ack_id, True)


def on_bench_rooms(c: Conn, ack_id: str, args: list[Any]) -> None:
    req = args[0]
    others = [o for o in CONNS.values() if o is not c]
    owners = [c, *others[: max(0, int(req.get("sockets", 1)) - 1)]]
    count, prefix = int(req["count"]), str(req["prefix"])
    for k, owner in enumerate(owners):
        owner.join(f"{prefix}{i}" for i in range(k, count, len(owners)))
    c.ack(ack_id, {"rooms": len(ROOMS), "owners": len(owners)})


HANDLERS: dict[str, Callable[[Conn, str, list[Any]], None]] = {
    "join": on_join,
    "bench": lambda c, ack_id, args: resume(bench(c, ack_id, args[0])),
    "bench-rooms": on_bench_rooms,
    "bench-stats": lambda c, ack_id, args: c.ack(ack_id, {}),  # no counters here
    "bench-trace": lambda c, ack_id, args: c.ack(ack_id, {}),  # no trace here
}


def serve(lsock: socket.socket) -> None:
    SEL.register(lsock, READ, None)
    select = SEL.select
    while True:
        for key, events in select(max(0.0, JOBS[0][0] - time.monotonic()) if JOBS else None):
            c: Conn | None = key.data
            if c is None:  # the listening socket: accept all that wait
                while True:
                    try:
                        sock, _ = lsock.accept()
                    except OSError:  # BlockingIOError: no more (EMFILE...: again at the next readiness)
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    SEL.register(sock, READ, Conn(sock))
            elif not c.closed:
                if events & READ:
                    c.on_readable()
                if events & WRITE and c.out and not c.closed:
                    c.flush()
        now = time.monotonic()
        while JOBS and JOBS[0][0] <= now:  # the paced broadcasts that are due (late ones catch up)
            resume(heapq.heappop(JOBS)[2])
        reap()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    cli = parser.parse_args()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", cli.port))
    lsock.listen(4096)
    lsock.setblocking(False)
    versions = {"python": sys.version.split()[0]}
    print(json.dumps({"server": "limit", "port": lsock.getsockname()[1], "versions": versions}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        serve(lsock)


if __name__ == "__main__":
    main()
