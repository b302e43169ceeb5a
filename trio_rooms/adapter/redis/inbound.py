"""What a cluster adapter does with the other servers' messages: commands run here, replies resolved.

Rule: a message is handled by the receiving task when it is cheap and order matters (broadcasts,
joins); anything that awaits other parties (acks, user handlers, publishing replies) runs in a task
of the handler's nursery, bounded in number; a failure is logged and counted, never raised into the
receiving task. Every dependency comes in through the constructor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from ...errors import AdapterError
from ...protocol.cluster.messages import MessageError
from ...protocol.cluster.model import (
    AdapterClose,
    AllRooms,
    AllRoomsResponse,
    Broadcast,
    BroadcastAck,
    BroadcastClientCount,
    BroadcastWithAck,
    DisconnectSockets,
    Envelope,
    FetchSockets,
    FetchSocketsResponse,
    Heartbeat,
    Reply,
    ServerSideEmit,
    ServerSideEmitResponse,
    SocketActionDone,
    SocketDisconnect,
    SocketIds,
    SocketIdsResponse,
    SocketInfo,
    SocketJoin,
    SocketLeave,
    SocketsJoin,
    SocketsLeave,
)
from ...protocol.cluster.wire import Wire
from ...protocol.encoded import Encoded
from ...types import BroadcastOptions
from ..base import NamespaceView
from ..memory import InMemoryAdapter
from .requests import Requests, Resolution

__all__ = ["InboundHandler", "Publish"]

logger = logging.getLogger("trio_rooms.redis")

#: ``publish((channel, data))``: sends one message to the other servers. Raises: AdapterError.
Publish = Callable[[tuple[str, bytes]], Awaitable[None]]

_COUNTERS: Final = ("received", "ignored", "invalid", "handled", "dropped_overload")


class InboundHandler:
    """Receives the other servers' messages for one namespace: decodes, runs, answers, resolves.

    Args:
        namespace: the namespace (its sockets, ack ids and server-side handlers).
        local: this server's rooms and deliveries.
        wire: the format (decodes messages, encodes replies; its ``uid`` is ours).
        requests: our own requests waiting for replies.
        publish: sends a reply.
        request_timeout: how long to collect acks of a broadcast that says no timeout.
        max_tasks: commands handled at once in tasks (more are dropped, counted).
        name: who handles, for the logs.
    """

    def __init__(
        self,
        namespace: NamespaceView,
        local: InMemoryAdapter,
        wire: Wire,
        requests: Requests,
        publish: Publish,
        *,
        request_timeout: float,
        max_tasks: int,
        name: str,
    ) -> None:
        self._nsp = namespace
        self._local = local
        self._wire = wire
        self._requests = requests
        self._publish = publish
        self._request_timeout = request_timeout
        self._max_tasks = max_tasks
        self._name = name
        self._tasks: trio.Nursery | None = None
        self._running = 0
        self._counters = dict.fromkeys(_COUNTERS, 0)

    def stats(self) -> dict[str, int]:
        """Counters: received, ignored (our own messages, other namespaces, rooms absent here, late
        replies), invalid (undecodable or malformed), handled, dropped_overload; gauge: handler_tasks."""
        return {**self._counters, "handler_tasks": self._running}

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the nursery of the handling tasks until cancelled (before, commands are dropped).

        Cancellation: the handling tasks are cancelled.
        """
        async with trio.open_nursery() as tasks:
            self._tasks = tasks
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._tasks = None
                tasks.cancel_scope.cancel()

    async def receive(self, channel: bytes, data: bytes) -> None:
        """Decode and handle one message from ``channel``; never raises."""
        self._counters["received"] += 1
        try:
            envelope = self._wire.decode(channel, data, self._requests.expected_reply)
        except MessageError as exc:
            self._counters["invalid"] += 1
            logger.debug("redis adapter %s: invalid message on %r: %s", self._name, channel, exc)
            return
        if envelope is None or (envelope.uid is not None and envelope.uid == self._wire.uid):
            self._counters["ignored"] += 1
            return
        try:
            await self.handle(envelope)
        except Exception:
            self._counters["invalid"] += 1
            logger.exception("redis adapter %s: message on %r failed", self._name, channel)

    async def handle(self, envelope: Envelope) -> None:
        """Run a command of another server here (answering it when it asks), or resolve a reply."""
        local, sockets, sender = self._local, self._nsp.sockets, envelope.uid
        match envelope.message:
            case Broadcast(packet=packet, opts=opts):
                if len(opts.rooms) == 1 and not (opts.rooms & local.rooms.keys()):
                    self._counters["ignored"] += 1  # a room channel message for a room absent here
                    return
                await local.deliver(Encoded.of(packet, keep_packet=True), opts)
            case SocketsJoin(opts=opts, rooms=rooms):
                await local.add_sockets(opts, rooms)
            case SocketsLeave(opts=opts, rooms=rooms):
                await local.del_sockets(opts, rooms)
            case (
                SocketJoin(sid=sid, room=room, request_id=request_id)
                | SocketLeave(sid=sid, room=room, request_id=request_id)
            ):
                socket = sockets.get(sid)
                if socket is None:
                    return
                if isinstance(envelope.message, SocketJoin):
                    socket.join(room)
                else:
                    socket.leave(room)
                if request_id is not None:
                    self._spawn(self._reply, sender, SocketActionDone(request_id))
            case DisconnectSockets(opts=opts, close=close):
                self._spawn(local.disconnect_sockets, opts, close)
            case (
                SocketDisconnect(request_id=request_id)
                | FetchSockets(request_id=request_id)
                | BroadcastWithAck(request_id=request_id)
                | ServerSideEmit(request_id=request_id)
            ) if request_id is not None and request_id in self._requests:
                self._counters["ignored"] += 1  # our own request, on a format without uid
                return
            case SocketDisconnect() as command:
                self._spawn(self._disconnect_socket, sender, command)
            case FetchSockets() as command:
                self._spawn(self._fetch_sockets, sender, command)
            case BroadcastWithAck() as command:
                self._spawn(self._answer_broadcast_with_ack, sender, command)
            case ServerSideEmit() as command:
                self._spawn(self._run_server_side_handler, sender, command)
            case SocketIds(request_id=request_id, rooms=rooms):
                ids = tuple(sorted(local.local_targets(BroadcastOptions(rooms))))
                self._spawn(self._reply, sender, SocketIdsResponse(request_id, ids))
            case AllRooms(request_id=request_id):
                if request_id not in self._requests:
                    self._spawn(self._reply, sender, AllRoomsResponse(request_id, tuple(sorted(local.rooms))))
            case Heartbeat() | AdapterClose():
                return
            case (
                FetchSocketsResponse()
                | SocketIdsResponse()
                | AllRoomsResponse()
                | SocketActionDone()
                | ServerSideEmitResponse()
                | BroadcastClientCount()
                | BroadcastAck()
            ) as reply:
                self._resolve(reply)
                return
        self._counters["handled"] += 1

    def _resolve(self, reply: Reply) -> None:
        match self._requests.resolve(reply):
            case Resolution.TAKEN:
                if isinstance(reply, FetchSocketsResponse) and reply.skipped:
                    self._counters["invalid"] += reply.skipped  # entries that describe no socket
            case Resolution.UNKNOWN:
                self._counters["ignored"] += 1  # late (timed out) or for another server
            case Resolution.MISFIT:
                self._counters["invalid"] += 1

    # -- tasks -------------------------------------------------------------------------------------
    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        tasks = self._tasks
        if tasks is None or self._running >= self._max_tasks:
            self._counters["dropped_overload"] += 1
            return
        self._running += 1

        async def task() -> None:
            try:
                await fn(*args)
            except AdapterError as exc:
                logger.info("redis adapter %s: could not answer: %s", self._name, exc)
            except Exception:
                logger.exception("redis adapter %s: request handling failed", self._name)
            finally:
                self._running -= 1

        tasks.start_soon(task)

    async def _reply(self, to: str | None, reply: Reply) -> None:
        await self._publish(self._wire.encode_reply(reply, to))

    async def _disconnect_socket(self, sender: str | None, command: SocketDisconnect) -> None:
        socket = self._nsp.sockets.get(command.sid)
        if socket is None:
            await trio.lowlevel.checkpoint()
            return
        await socket.disconnect(command.close)
        if command.request_id is not None:
            await self._reply(sender, SocketActionDone(command.request_id))

    async def _fetch_sockets(self, sender: str | None, command: FetchSockets) -> None:
        sockets = self._nsp.sockets
        found = tuple(
            SocketInfo(sid, s.handshake, frozenset(s.rooms), s.data)
            for sid in self._local.local_targets(command.opts)
            if (s := sockets.get(sid)) is not None
        )
        await self._reply(sender, FetchSocketsResponse(command.request_id, found))

    async def _run_server_side_handler(self, sender: str | None, command: ServerSideEmit) -> None:
        handler = self._nsp.server_side_handler(command.event)
        if handler is None:
            logger.debug("redis adapter %s: no handler for server-side event %r", self._name, command.event)
            await trio.lowlevel.checkpoint()
            return
        try:
            result = await handler(*command.args)
        except Exception:
            logger.exception("server-side handler for %r failed", command.event)
            return
        if command.request_id is not None:
            await self._reply(sender, ServerSideEmitResponse(command.request_id, result))

    async def _answer_broadcast_with_ack(self, sender: str | None, command: BroadcastWithAck) -> None:
        """Deliver another server's broadcast with acks here; publish our count, then each answer."""
        opts, request_id = command.opts, command.request_id
        timeout = opts.flags.timeout or self._request_timeout
        send, receive = trio.open_memory_channel[tuple[bool, Any]](math.inf)
        ack_id = self._nsp.next_ack_id()
        targets = list(self._local.local_targets(opts))
        sockets = self._nsp.sockets
        missing = len(targets)
        dropped = 0

        def answer(value: Any) -> None:
            send.send_nowait((True, value))

        def gone() -> None:
            send.send_nowait((False, None))

        def not_taken() -> None:
            nonlocal dropped
            dropped += 1

        try:
            for sid in targets:
                sockets[sid].add_ack_callback(ack_id, answer, gone)
            await self._local.deliver_acked(targets, command.packet, ack_id, opts.flags.volatile, not_taken)
            missing -= dropped
            await self._reply(sender, BroadcastClientCount(request_id, missing))
            with trio.move_on_after(timeout):
                while missing > 0:
                    answered, value = await receive.receive()
                    missing -= 1
                    if answered:
                        await self._reply(sender, BroadcastAck(request_id, value))
        finally:
            for sid in targets:
                socket = sockets.get(sid)
                if socket is not None:
                    socket.remove_ack_callback(ack_id)
