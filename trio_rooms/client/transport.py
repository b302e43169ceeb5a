"""The client's Engine.IO v4 session: WebSocket (trio-websocket), long-polling (h11), the upgrade.

Rule: every packet is framed by ``protocol/`` (no codec here); every connect, read, write and queue
is bounded in size and time; every failure ends the session as ``EngineClosed(reason)``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
from collections.abc import Sequence
from typing import Final

import trio
import trio_websocket

from .._util import unwrap_group
from ..errors import RemoteProtocolError
from ..protocol import engineio as eio
from ..protocol.engineio import EnginePacket, EnginePacketType, OpenInfo
from ..types import Transport
from .http import EngineClosed, HttpConnection, Target, TransportOptions
from .state import ClientDisconnectReason

__all__ = ["Engine", "PollingTransport", "WebSocketTransport"]

logger = logging.getLogger("trio_rooms.client")

#: Engine.IO packets queued for sending (each item is one Socket.IO packet with its attachments).
OUTBOUND_SIZE: Final = 256
#: Messages received and not yet taken by the Socket.IO layer; then reading pauses.
INBOUND_SIZE: Final = 64
#: Extra seconds a polling GET may take past pingInterval + pingTimeout.
GET_SLACK: Final = 5.0


class PollingTransport:
    """HTTP long-polling: one keep-alive connection for GETs, one for POSTs."""

    name: Final = Transport.POLLING

    def __init__(self, target: Target, options: TransportOptions) -> None:
        self._target = target
        self._options = options
        self._get = HttpConnection(target, options)
        self._post = HttpConnection(target, options)
        self.sid: str | None = None
        self.get_timeout = options.connect_timeout

    async def handshake(self) -> list[EnginePacket]:
        """Open the session: the GET without sid, answered with an OPEN packet (and maybe more)."""
        return await self._poll(self._target.target(self.name))

    async def _poll(self, path: str) -> list[EnginePacket]:
        status, body = await self._get.request("GET", path, b"", timeout=self.get_timeout)
        if status != 200:
            raise EngineClosed(
                ClientDisconnectReason.TRANSPORT_ERROR, f"GET answered {status}: {body[:200]!r}"
            )
        try:
            return eio.decode_payload(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise EngineClosed(
                ClientDisconnectReason.PARSE_ERROR, "a polling body that is not UTF-8"
            ) from None
        except RemoteProtocolError as exc:
            raise EngineClosed(ClientDisconnectReason.PARSE_ERROR, exc.message) from None

    async def receive(self) -> list[EnginePacket]:
        """One long-polling GET."""
        return await self._poll(self._target.target(self.name, self.sid))

    async def send(self, packets: Sequence[EnginePacket]) -> None:
        """One POST carrying ``packets``."""
        body = eio.encode_payload(packets).encode("utf-8")
        path = self._target.target(self.name, self.sid)
        status, answer = await self._post.request("POST", path, body, timeout=self._options.request_timeout)
        if status != 200:
            raise EngineClosed(
                ClientDisconnectReason.TRANSPORT_ERROR, f"POST answered {status}: {answer[:200]!r}"
            )

    async def aclose(self) -> None:
        """Close both HTTP connections."""
        await self._get.aclose()
        await self._post.aclose()


class WebSocketTransport:
    """WebSocket (trio-websocket): one Engine.IO packet per message."""

    name: Final = Transport.WEBSOCKET

    def __init__(self, ws: trio_websocket.WebSocketConnection, options: TransportOptions) -> None:
        self.ws = ws
        self._options = options

    @classmethod
    async def connect(
        cls, nursery: trio.Nursery, target: Target, options: TransportOptions, sid: str | None = None
    ) -> WebSocketTransport:
        """Open the WebSocket; a task in ``nursery`` hosts trio-websocket's reader task.

        Raises:
            EngineClosed: "transport error" when the connection or the handshake fails.
        """
        context = (options.ssl_context or ssl.create_default_context()) if target.secure else None
        ws = await nursery.start(_host_websocket, target.ws_url(sid), context, options)
        return cls(ws, options)

    async def receive(self) -> list[EnginePacket]:
        """The next message, as one packet."""
        try:
            message = await self.ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            code = exc.reason.code if exc.reason is not None else None
            clean = code in (1000, 1001, 1005)
            raise EngineClosed(
                ClientDisconnectReason.TRANSPORT_CLOSE if clean else ClientDisconnectReason.TRANSPORT_ERROR
            ) from None
        try:
            return [eio.decode_ws(message)]
        except RemoteProtocolError as exc:
            raise EngineClosed(ClientDisconnectReason.PARSE_ERROR, exc.message) from None

    async def send(self, packets: Sequence[EnginePacket]) -> None:
        """One message per packet."""
        try:
            for packet in packets:
                await self.ws.send_message(eio.encode_ws(packet))
        except trio_websocket.ConnectionClosed:
            raise EngineClosed(ClientDisconnectReason.TRANSPORT_CLOSE) from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise EngineClosed.from_error(ClientDisconnectReason.TRANSPORT_ERROR, exc) from None

    async def aclose(self) -> None:
        """Close handshake, bounded by the close timeout (never raises)."""
        errors = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
        timeout = self._options.close_timeout
        with trio.CancelScope(shield=True), trio.move_on_after(timeout), contextlib.suppress(*errors):
            await self.ws.aclose()


_Transport = PollingTransport | WebSocketTransport
_WS_ERRORS: Final = (
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio_websocket.HandshakeError,
    trio_websocket.ConnectionClosed,
)


def _connection_error(exc: BaseException) -> BaseException | None:
    """``exc`` (or a leaf of it) if it is, or only holds, connection errors; else None."""
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(_WS_ERRORS)
        leaf: BaseException | None = matched
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        return leaf if rest is None else None
    return exc if isinstance(exc, _WS_ERRORS) else None


async def _host_websocket(
    url: str,
    ssl_context: ssl.SSLContext | None,
    options: TransportOptions,
    *,
    task_status: trio.TaskStatus[trio_websocket.WebSocketConnection],
) -> None:
    """Own trio-websocket's reader task, so that its errors (a refused handshake raises there too)
    end here and never in the session's nursery."""
    started = False
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.connect_websocket_url(
                nursery,
                url,
                ssl_context,
                extra_headers=[(name.encode(), value.encode()) for name, value in options.headers],
                message_queue_size=4,
                max_message_size=options.max_message_size,
            )
            started = True
            task_status.started(ws)
    except BaseException as exc:
        error = _connection_error(exc)
        if error is None:
            raise
        if not started:
            raise EngineClosed.from_error(ClientDisconnectReason.TRANSPORT_ERROR, error) from None
        logger.debug("websocket %s ended: %r", url, error)


# ---------------------------------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------------------------------


class Engine:
    """One Engine.IO client session: handshake, heartbeat, optional upgrade, bounded queues both ways.

    Start it with ``await nursery.start(engine.run)`` (which raises ``EngineClosed`` when the
    handshake fails); then ``send``/``receive`` until ``receive`` raises ``EngineClosed``.
    """

    def __init__(self, target: Target, options: TransportOptions) -> None:
        self._target = target
        self._options = options
        self.info: OpenInfo | None = None
        self.reason: ClientDisconnectReason | None = None
        self._transport: _Transport | None = None
        self._upgraded: WebSocketTransport | None = None
        self._probe: WebSocketTransport | None = None
        self._scope = trio.CancelScope()
        self._write_lock = trio.Lock()
        self._out_send, self._out_recv = trio.open_memory_channel[list[EnginePacket]](OUTBOUND_SIZE)
        self._in_send, self._in_recv = trio.open_memory_channel[str | bytes](INBOUND_SIZE)
        self._close_written = trio.Event()
        self._finished = trio.Event()
        self._running = False
        self._ping_deadline = math.inf
        self._carry: list[EnginePacket] | None = None

    @property
    def transport(self) -> Transport | None:
        """The current transport's name, or None before the handshake."""
        return None if self._transport is None else self._transport.name

    def close(self, reason: ClientDisconnectReason) -> None:
        """End the session now (synchronous; the first reason is kept)."""
        if self.reason is None:
            self.reason = reason
        self._scope.cancel()
        self._close_written.set()  # wakes aclose(): nothing more will be written

    async def aclose(
        self, reason: ClientDisconnectReason = ClientDisconnectReason.IO_CLIENT_DISCONNECT
    ) -> None:
        """Flush what is queued, write a CLOSE packet, then end (bounded by the close timeout).

        Cancellation: the session ends at once, without the CLOSE packet if it was not written.
        """
        if not self._running:
            self.close(reason)
            return
        if self.reason is None:
            self.reason = reason
            with trio.move_on_after(self._options.close_timeout):
                try:
                    await self._out_send.send([eio.CLOSE])
                    await self._close_written.wait()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        self.close(reason)
        with trio.move_on_after(self._options.close_timeout * 2):
            await self._finished.wait()  # the transports' own closing (WebSocket close handshake)

    async def send(self, messages: Sequence[str | bytes]) -> None:
        """Queue messages (one Socket.IO packet and its attachments), waiting for queue space.

        Raises:
            EngineClosed: the session has ended.
        """
        packets = [EnginePacket(EnginePacketType.MESSAGE, message) for message in messages]
        if self.reason is not None:
            raise EngineClosed(self.reason)
        try:
            await self._out_send.send(packets)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise EngineClosed(self.reason or ClientDisconnectReason.TRANSPORT_CLOSE) from None

    async def receive(self) -> str | bytes:
        """The next message; messages received before the end are all delivered first.

        Raises:
            EngineClosed: the session has ended.
        """
        try:
            return await self._in_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise EngineClosed(self.reason or ClientDisconnectReason.TRANSPORT_CLOSE) from None

    # -- the session's tasks -----------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Handshake (raises ``EngineClosed`` before ``started``), then serve until closed.

        Cancellation: transports are closed (bounded); the reason becomes "io client disconnect".
        """
        self._running = True
        try:
            with unwrap_group():
                await self._run(task_status)
        finally:
            self._finished.set()

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as ws_tasks:  # trio-websocket's reader tasks
            try:
                with self._scope:
                    initial = await self._handshake(ws_tasks)
                    async with trio.open_nursery() as tasks:
                        tasks.start_soon(self._reader, initial)
                        tasks.start_soon(self._writer)
                        tasks.start_soon(self._watchdog)
                        assert self.info is not None
                        if (
                            self.transport is Transport.POLLING
                            and Transport.WEBSOCKET in self._options.transports
                            and Transport.WEBSOCKET in self.info.upgrades
                        ):
                            tasks.start_soon(self._upgrade, ws_tasks)
                        task_status.started()
            finally:
                if self.reason is None:
                    self.reason = ClientDisconnectReason.IO_CLIENT_DISCONNECT
                self._in_send.close()
                self._out_recv.close()
                with trio.CancelScope(shield=True):
                    for transport in (self._transport, self._probe):
                        if transport is not None:
                            await transport.aclose()
                ws_tasks.cancel_scope.cancel()
            if self.info is None:  # the handshake was cancelled by close(): report it as a failure
                raise EngineClosed(self.reason)

    async def _handshake(self, ws_tasks: trio.Nursery) -> list[EnginePacket]:
        options = self._options
        try:
            with trio.fail_after(options.connect_timeout):
                if options.transports[0] == Transport.POLLING:
                    polling = PollingTransport(self._target, options)
                    self._transport = polling
                    packets = await polling.handshake()
                else:
                    ws = await WebSocketTransport.connect(ws_tasks, self._target, options)
                    self._transport = ws
                    packets = await ws.receive()
        except trio.TooSlowError:
            raise EngineClosed(
                ClientDisconnectReason.TRANSPORT_ERROR, "the Engine.IO handshake timed out"
            ) from None
        if not packets or packets[0].type is not EnginePacketType.OPEN:
            raise EngineClosed(ClientDisconnectReason.PARSE_ERROR, "the first packet is not OPEN")
        try:
            info = eio.parse_open(str(packets[0].data))
        except RemoteProtocolError as exc:
            raise EngineClosed(ClientDisconnectReason.PARSE_ERROR, exc.message) from None
        if isinstance(self._transport, PollingTransport):
            self._transport.sid = info.sid
            self._transport.get_timeout = (info.ping_interval_ms + info.ping_timeout_ms) / 1000 + GET_SLACK
        self.info = info
        self._ping_deadline = trio.current_time() + (info.ping_interval_ms + info.ping_timeout_ms) / 1000
        return packets[1:]

    async def _reader(self, initial: list[EnginePacket]) -> None:
        try:
            for packet in initial:
                await self._handle(packet)
            while True:
                transport = self._transport
                assert transport is not None
                for packet in await transport.receive():
                    await self._handle(packet)
                if self._upgraded is not None and transport is not self._upgraded:
                    await self._complete_upgrade(self._upgraded)
        except EngineClosed as exc:
            if exc.detail:
                logger.debug("engine %s: %s", self.info and self.info.sid, exc)
            self.close(exc.reason)

    async def _handle(self, packet: EnginePacket) -> None:
        kind = packet.type
        if kind is EnginePacketType.MESSAGE:
            await self._in_send.send(packet.data)
        elif kind is EnginePacketType.PING:
            assert self.info is not None
            interval = (self.info.ping_interval_ms + self.info.ping_timeout_ms) / 1000
            self._ping_deadline = trio.current_time() + interval
            await self._out_send.send([eio.PONG])
        elif kind is EnginePacketType.CLOSE:
            raise EngineClosed(ClientDisconnectReason.TRANSPORT_CLOSE)
        elif kind is not EnginePacketType.NOOP:
            raise EngineClosed(ClientDisconnectReason.PARSE_ERROR, f"unexpected {kind.name} packet")

    def _next_batch(self, first: list[EnginePacket]) -> list[EnginePacket]:
        """``first`` plus what else is queued, up to the server's maxPayload (polling only)."""
        batch = list(first)
        if self.transport is not Transport.POLLING:
            return batch
        assert self.info is not None
        budget = self.info.max_payload - sum(_size(p) for p in batch)
        while True:
            try:
                item = self._out_recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return batch
            cost = sum(_size(p) for p in item)
            if cost > budget or eio.CLOSE in item:  # as engine.io-client: the close goes in its own POST
                self._carry = item
                return batch
            budget -= cost
            batch.extend(item)

    async def _writer(self) -> None:
        try:
            while True:
                item, self._carry = self._carry, None
                if item is None:
                    item = await self._out_recv.receive()
                batch = self._next_batch(item)
                async with self._write_lock:
                    transport = self._transport
                    assert transport is not None
                    with trio.fail_after(self._options.request_timeout):
                        await transport.send(batch)
                if eio.CLOSE in batch:
                    self._close_written.set()
        except EngineClosed as exc:
            self.close(exc.reason)
        except trio.TooSlowError:
            self.close(ClientDisconnectReason.TRANSPORT_ERROR)
        except trio.EndOfChannel:
            pass

    async def _watchdog(self) -> None:
        while True:
            await trio.sleep_until(self._ping_deadline)
            if trio.current_time() >= self._ping_deadline:
                self.close(ClientDisconnectReason.PING_TIMEOUT)
                return

    async def _upgrade(self, ws_tasks: trio.Nursery) -> None:
        """Probe a WebSocket for the session; on ``3probe``, hand it to the reader to switch."""
        assert self.info is not None
        try:
            with trio.fail_after(self._options.upgrade_timeout):
                probe = self._probe = await WebSocketTransport.connect(
                    ws_tasks, self._target, self._options, self.info.sid
                )
                await probe.send([eio.PROBE_PING])
                answer = await probe.receive()
            if answer != [eio.PROBE_PONG]:
                raise EngineClosed(ClientDisconnectReason.PARSE_ERROR, f"probe answered {answer!r}")
        except (EngineClosed, trio.TooSlowError) as exc:
            logger.info("engine %s: upgrade to websocket failed (%s); staying on polling", self.info.sid, exc)
            if self._probe is not None:
                await self._probe.aclose()
                self._probe = None
            return
        # The server now answers the pending GET with a noop: the reader switches after it.
        self._upgraded = probe

    async def _complete_upgrade(self, ws: WebSocketTransport) -> None:
        """Polling is paused (no GET in flight); wait for any POST, send ``5``, switch to ``ws``."""
        async with self._write_lock:
            await ws.send([eio.UPGRADE])
            old, self._transport, self._probe = self._transport, ws, None
        if old is not None:
            await old.aclose()
        logger.debug("engine %s: upgraded to websocket", self.info and self.info.sid)


def _size(packet: EnginePacket) -> int:
    data = packet.data
    return 2 + (len(data) * 4 // 3 + 4 if isinstance(data, bytes) else len(data.encode("utf-8")))
