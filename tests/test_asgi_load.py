"""1000 WebSocket clients of an ASGI-served trio_rooms, in overlapping rooms: a run of sequenced
broadcasts to unions of those rooms reaches each recipient exactly once, in emission order.

The server is benchmarks/server_asgi.py (``trio_rooms.ASGIApp`` with the benchmark handlers) under
Hypercorn's trio worker in a real subprocess (``python -m hypercorn -k trio``). The clients are lean
raw WebSocket clients (wsproto over trio TCP) in this process, speaking Engine.IO / Socket.IO by hand.
The room layout is the benchmark's (loadclient.mjs): client c joins "a<c // 100>" and
"b<((c + 50) % N) // 100>", so every room has 100 members and each "b" room overlaps two "a" rooms by
50; broadcast k goes to the union of [a_i, b_i, b_(i+1)] (i = k mod 10): 200 recipients, 300
memberships. Bounded: the whole test runs under ``trio.fail_after``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
from helpers.asgi_harness import ROOT, hypercorn, require_hypercorn
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, Request, TextMessage

N = 1000
ROOMS = N // 100
BROADCASTS = 200  # 40,000 deliveries
GUARD = 180.0
CONNECT_CONCURRENCY = 100


def rooms_of(c: int) -> list[str]:
    return [f"a{c // 100}", f"b{((c + 50) % N) // 100}"]


TARGETS = [[f"a{i}", f"b{i}", f"b{(i + 1) % ROOMS}"] for i in range(ROOMS)]


def expected_for(c: int) -> list[int]:
    mine = set(rooms_of(c))
    return [k for k in range(BROADCASTS) if mine & set(TARGETS[k % ROOMS])]


class Tally:
    """Deliveries received by every client, and an event once ``target`` were."""

    def __init__(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.done = trio.Event()

    def add(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


class LeanClient:
    """One raw WebSocket client: connects to "/", joins its rooms, records the "m" sequence numbers."""

    def __init__(self, index: int, port: int, tally: Tally) -> None:
        self.index = index
        self.port = port
        self.tally = tally
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.stream: trio.SocketStream | None = None
        self.seqs: list[int] = []
        self.acks: dict[int, Any] = {}
        self.ack_event = trio.Event()
        self.closed = False

    async def _send(self, text: str) -> None:
        assert self.stream is not None
        await self.stream.send_all(self.ws.send(Message(data=text)))

    async def _messages(self) -> Any:
        assert self.stream is not None
        parts: list[str] = []
        while True:
            data = await self.stream.receive_some(65536)
            if not data:
                self.closed = True
                return
            self.ws.receive_data(bytes(data))
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        yield "".join(parts)
                        parts = []
                elif isinstance(event, Ping):
                    await self.stream.send_all(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed = True
                    return
                elif isinstance(event, AcceptConnection):
                    yield None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        target = "/socket.io/?EIO=4&transport=websocket"
        await self.stream.send_all(self.ws.send(Request(host=f"127.0.0.1:{self.port}", target=target)))
        started = False
        async for message in self._messages():
            if message is None:
                continue
            if message.startswith("0{"):
                await self._send("40")
            elif message.startswith("40{"):
                await self._send('421["join",' + json.dumps(rooms_of(self.index)) + "]")
            elif message == "2":
                await self._send("3")
            elif message.startswith('42["m",'):
                self.seqs.append(json.loads(message[2:])[1]["i"])
                self.tally.add()
            elif message.startswith("43"):
                ack_id = int(message[2 : message.index("[")])
                self.acks[ack_id] = json.loads(message[message.index("[") :])
                self.ack_event.set()
                if ack_id == 1 and not started:
                    started = True
                    task_status.started()

    async def ask(self, ack_id: int, event: str, payload: Any) -> Any:
        self.ack_event = trio.Event()
        await self._send(f"42{ack_id}" + json.dumps([event, payload]))
        while ack_id not in self.acks:
            await self.ack_event.wait()
            self.ack_event = trio.Event()
        return self.acks[ack_id]


async def test_1000_asgi_websocket_clients_get_union_broadcasts_once_in_order(tmp_path: Path) -> None:
    require_hypercorn()
    with trio.fail_after(GUARD):
        log = tmp_path / "hypercorn.log"
        expected = {c: expected_for(c) for c in range(N)}
        tally = Tally(sum(len(seqs) for seqs in expected.values()))
        assert tally.target == BROADCASTS * 200
        async with hypercorn("server_asgi:app", cwd=ROOT / "benchmarks", log=log) as server:
            clients = [LeanClient(c, server.port, tally) for c in range(N)]
            async with trio.open_nursery() as nursery:
                limit = trio.CapacityLimiter(CONNECT_CONCURRENCY)

                async def start(client: LeanClient) -> None:
                    async with limit:
                        await nursery.start(client.run)

                async with trio.open_nursery() as connecting:
                    for client in clients:
                        connecting.start_soon(start, client)
                request = {"targets": TARGETS, "count": BROADCASTS, "seq0": 0, "rate": 0, "pad": ""}
                answer = await clients[0].ask(2, "bench", request)
                assert answer == [{"sent": BROADCASTS}]
                with trio.move_on_after(60):
                    await tally.done.wait()
                await trio.sleep(0.5)  # anything late or twice would arrive now
                wrong = {c: client.seqs for c, client in enumerate(clients) if client.seqs != expected[c]}
                lost = [c for c, client in enumerate(clients) if client.closed]
                nursery.cancel_scope.cancel()
            assert lost == []
            assert not wrong, f"{len(wrong)} clients got a wrong sequence, e.g. {next(iter(wrong.items()))}"
            assert await server.stop() == 0
    assert "Traceback" not in server.log_text()
