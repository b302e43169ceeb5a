"""What a RedisAdapter does with the other servers' messages: requests run here, answers collected.

Rule: a message is handled by the subscriber task when it is cheap and order matters (broadcasts,
joins); anything that awaits other parties (acks, user handlers, publishing answers) runs in a task
of the adapter's nursery, bounded in number; a failure is logged and counted, never raised into the
subscriber.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from ...errors import AdapterError
from ...protocol.cluster.wire import Inbound, Op, Wire
from ...protocol.encoded import Encoded
from ...protocol.socketio import Packet
from ..base import BroadcastOptions, SocketId
from ..memory import InMemoryAdapter

__all__ = ["RedisInbound"]

logger = logging.getLogger("trio_rooms.redis")


class _Pending:
    """A request this server waits on: the answers of ``expected`` servers (or until a deadline)."""

    __slots__ = ("answers", "done", "expected", "kind", "received")

    def __init__(self, kind: str, expected: int) -> None:
        self.kind = kind
        self.expected = expected
        self.received = 0
        self.answers: list[Any] = []
        self.done = trio.Event()
        if expected <= 0:
            self.done.set()

    def add(self, answer: Any) -> None:
        self.received += 1
        self.answers.append(answer)
        if self.received >= self.expected:
            self.done.set()


class _AckState:
    """A broadcast with acks across servers: client counts per server, then the answers."""

    __slots__ = ("done", "expected_clients", "expected_servers", "responses", "servers")

    def __init__(self) -> None:
        self.responses: list[Any] = []
        self.expected_clients = 0
        self.servers = 0
        self.expected_servers: int | None = None
        self.done = trio.Event()

    def count(self, clients: int) -> None:
        self.servers += 1
        self.expected_clients += clients
        self.check()

    def answer(self, value: Any) -> None:
        self.responses.append(value)
        self.check()

    def gone(self) -> None:
        self.expected_clients -= 1
        self.check()

    def check(self) -> None:
        if (
            self.expected_servers is not None
            and self.servers >= self.expected_servers
            and len(self.responses) >= self.expected_clients
        ):
            self.done.set()


class RedisInbound(InMemoryAdapter):
    """The inbound half of RedisAdapter (its attributes are set by ``RedisAdapter.__init__``)."""

    uid: str
    wire: Wire
    request_timeout: float
    _tasks: trio.Nursery | None
    _handler_tasks: int
    _max_handler_tasks: int
    _pending: dict[str, _Pending]
    _acks: dict[str, _AckState]
    _counters: dict[str, int]

    async def _publish(self, message: tuple[str, bytes]) -> None:
        raise NotImplementedError

    async def _write_acked(
        self,
        targets: list[SocketId],
        packet: Packet,
        ack_id: int,
        opts: BroadcastOptions,
        gone: Callable[[], None],
    ) -> None:
        sockets = self.nsp.sockets

        def dropped(sid: SocketId) -> None:
            socket = sockets.get(sid)
            if socket is not None and socket.remove_ack_callback(ack_id):
                gone()

        frames = Encoded.of(dataclasses.replace(packet, ack_id=ack_id))
        await self._write_all(targets, frames, opts.flags.volatile, dropped)

    # -- messages from the other servers -----------------------------------------------------------
    async def _dispatch(self, msg: Inbound) -> None:
        op = msg.op
        if op == Op.BROADCAST:
            assert msg.packet is not None
            if len(msg.opts.rooms) == 1 and not (msg.opts.rooms & self.rooms.keys()):
                self._counters["ignored"] += 1  # a room channel message for a room absent here
                return
            await self.deliver(Encoded.of(msg.packet), msg.opts)
        elif op == Op.JOIN:
            await InMemoryAdapter.add_sockets(self, msg.opts, msg.rooms)
        elif op == Op.LEAVE:
            await InMemoryAdapter.del_sockets(self, msg.opts, msg.rooms)
        elif op in (Op.SOCKET_JOIN, Op.SOCKET_LEAVE):
            socket = self.nsp.sockets.get(SocketId(msg.sid or ""))
            if socket is None:
                return
            if op == Op.SOCKET_JOIN:
                socket.join(msg.rooms)
            else:
                socket.leave(msg.rooms[0])
            self._spawn(self._respond, msg, Op.RESPONSE, {})
        elif op in (
            Op.DISCONNECT,
            Op.SOCKET_DISCONNECT,
            Op.FETCH,
            Op.BROADCAST_WITH_ACK,
            Op.SERVER_SIDE_EMIT,
        ):
            if msg.request_id is not None and (
                msg.request_id in self._pending or msg.request_id in self._acks
            ):
                self._counters["ignored"] += 1  # our own request, on a format without uid
                return
            self._spawn(self._handle_request, msg)
        elif op == Op.SOCKET_IDS:
            ids = sorted(self.local_targets(BroadcastOptions(frozenset(msg.rooms))))
            self._spawn(self._respond, msg, Op.RESPONSE, {"sockets": ids})
        elif op == Op.ALL_ROOMS:
            if msg.request_id not in self._pending:
                self._spawn(self._respond, msg, Op.RESPONSE, {"rooms": sorted(self.rooms)})
        elif op == Op.HEARTBEAT:
            return
        else:
            self._on_response(msg)
            return
        self._counters["handled"] += 1

    def _on_response(self, msg: Inbound) -> None:
        request_id = msg.request_id or ""
        state = self._acks.get(request_id)
        if state is not None:
            if msg.op == Op.RESPONSE_CLIENT_COUNT:
                state.count(msg.value)
            elif msg.op == Op.RESPONSE_ACK:
                state.answer(msg.value)
            return
        pending = self._pending.get(request_id)
        if pending is None:
            self._counters["ignored"] += 1  # late (timed out) or for another server
            return
        value = msg.value
        if pending.kind == "emit":
            if msg.op == Op.RESPONSE_SERVER_SIDE_EMIT:
                pending.add(value)
        elif isinstance(value, dict):
            field = "rooms" if pending.kind == "rooms" else "sockets"
            items = value.get(field)
            if isinstance(items, list):
                pending.add(items)
            else:
                self._counters["invalid"] += 1

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        tasks = self._tasks
        if tasks is None or self._handler_tasks >= self._max_handler_tasks:
            self._counters["dropped_overload"] += 1
            return
        self._handler_tasks += 1

        async def task() -> None:
            try:
                await fn(*args)
            except AdapterError as exc:
                logger.info("redis adapter %s: could not answer: %s", self.uid, exc)
            except Exception:
                logger.exception("redis adapter %s: request handling failed", self.uid)
            finally:
                self._handler_tasks -= 1

        tasks.start_soon(task)

    async def _respond(self, to: Inbound, op: Op, body: dict[str, Any]) -> None:
        if to.request_id is not None:
            await self._publish(self.wire.respond(to, op, body))
        else:
            await trio.lowlevel.checkpoint()

    async def _handle_request(self, msg: Inbound) -> None:
        op = msg.op
        if op == Op.DISCONNECT:
            await InMemoryAdapter.disconnect_sockets(self, msg.opts, msg.close)
        elif op == Op.SOCKET_DISCONNECT:
            socket = self.nsp.sockets.get(SocketId(msg.sid or ""))
            if socket is not None:
                await socket.disconnect(msg.close)
                await self._respond(msg, Op.RESPONSE, {})
        elif op == Op.FETCH:
            sockets = [
                {"id": s.id, "handshake": s.handshake.to_json(), "rooms": sorted(s.rooms), "data": s.data}
                for s in await InMemoryAdapter.fetch_sockets(self, msg.opts)
            ]
            await self._respond(msg, Op.RESPONSE, {"sockets": sockets})
        elif op == Op.SERVER_SIDE_EMIT:
            await self._run_server_side_handler(msg)
        elif op == Op.BROADCAST_WITH_ACK:
            await self._answer_ack_broadcast(msg)

    async def _run_server_side_handler(self, msg: Inbound) -> None:
        event, *args = msg.value
        handler = self.nsp.server_side_handler(event)
        if handler is None:
            logger.debug("redis adapter %s: no handler for server-side event %r", self.uid, event)
            await trio.lowlevel.checkpoint()
            return
        try:
            result = await handler(*args)
        except Exception:
            logger.exception("server-side handler for %r failed", event)
            return
        if msg.request_id is not None:
            await self._respond(msg, Op.RESPONSE_SERVER_SIDE_EMIT, {"data": result})

    async def _answer_ack_broadcast(self, msg: Inbound) -> None:
        """Deliver another server's broadcast with acks here; publish our count, then each answer."""
        assert msg.packet is not None
        timeout = msg.opts.flags.timeout or self.request_timeout
        send, receive = trio.open_memory_channel[tuple[bool, Any]](math.inf)
        ack_id = self.nsp.next_ack_id()
        targets = list(self.local_targets(msg.opts))
        sockets = self.nsp.sockets
        missing = len(targets)
        dropped = 0

        def gone() -> None:
            send.send_nowait((False, None))

        def on_drop() -> None:
            nonlocal dropped
            dropped += 1

        try:
            for sid in targets:
                sockets[sid].add_ack_callback(ack_id, lambda value: send.send_nowait((True, value)), gone)
            await self._write_acked(targets, msg.packet, ack_id, msg.opts, on_drop)
            missing -= dropped
            await self._respond(msg, Op.RESPONSE_CLIENT_COUNT, {"clientCount": missing})
            with trio.move_on_after(timeout):
                while missing > 0:
                    answered, value = await receive.receive()
                    missing -= 1
                    if answered:
                        await self._respond(msg, Op.RESPONSE_ACK, {"packet": value})
        finally:
            for sid in targets:
                socket = sockets.get(sid)
                if socket is not None:
                    socket.remove_ack_callback(ack_id)
