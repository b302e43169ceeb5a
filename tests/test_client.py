"""Our Trio Client against our own Server on real TCP (127.0.0.1, port 0), over each transport set.

End to end, never interop: the client and the server share ``protocol/`` (the golden vectors of
``tests/protocol`` guard against a shared mistake). Real sockets, so real time: every test runs under
``trio.fail_after`` and timing assertions keep a tolerance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio_websocket

import trio_rooms
from trio_rooms._backoff import Backoff
from trio_rooms.client import Client, open_client
from trio_rooms.protocol import EnginePacket, EnginePacketType, encode_ws, open_packet

TRANSPORTS = [
    pytest.param(("websocket",), id="websocket"),
    pytest.param(("polling", "websocket"), id="polling+upgrade"),
    pytest.param(("polling",), id="polling"),
]
FAST = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2, "wait_timeout": 3.0, "timeout": 3.0}


class Serving:
    """A Server on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self, server: trio_rooms.Server, nursery: trio.Nursery) -> None:
        self.server = server
        self.nursery = nursery
        self.port = 0
        self._scope = trio.CancelScope()
        self._done = trio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._scope, self._done = trio.CancelScope(), trio.Event()
        listeners = await self.nursery.start(self._serve, self._scope, self._done)
        self.port = listeners[0].socket.getsockname()[1]

    async def _serve(
        self, scope: trio.CancelScope, done: trio.Event, *, task_status: trio.TaskStatus[Any]
    ) -> None:
        try:
            with scope:
                await self.server.serve("127.0.0.1", self.port, task_status=task_status)
        finally:
            done.set()

    async def stop(self) -> None:
        self._scope.cancel()
        await self._done.wait()


@asynccontextmanager
async def serving(server: trio_rooms.Server) -> AsyncIterator[Serving]:
    async with trio.open_nursery() as nursery:
        running = Serving(server, nursery)
        await running.start()
        yield running
        nursery.cancel_scope.cancel()


def connect(url: str, transports: tuple[str, ...], **options: Any) -> AbstractAsyncContextManager[Client]:
    return open_client(url, transports=transports, **{**FAST, **options})


def recorder() -> tuple[trio.MemorySendChannel[Any], trio.MemoryReceiveChannel[Any]]:
    return trio.open_memory_channel[Any](100)


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    with trio.fail_after(timeout):
        while True:
            if predicate():
                return
            await trio.sleep(0.01)


def echo_server() -> trio_rooms.Server:
    """A server whose sockets echo events back, answer acks, and remember their ids."""
    server = trio_rooms.Server()
    server.ids = []  # type: ignore[attr-defined]

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        server.ids.append(socket.id)  # type: ignore[attr-defined]

        @socket.on("echo")
        async def echo(*args: Any) -> None:
            await socket.emit("echoed", *args)

        @socket.on("answer")
        async def answer(*args: Any) -> Any:
            if not args:
                return None
            return args[0] if len(args) == 1 else tuple(args)

    return server


# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_connect_gives_the_namespace_id(transports: tuple[str, ...]) -> None:
    server = echo_server()
    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, transports) as client:
            assert isinstance(client, Client)
            assert client.connected
            assert client.id is not None and client.id in server.ids  # type: ignore[attr-defined]
            await until(lambda: client.transport == transports[-1])


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_emit_reaches_the_server_and_handlers_run_in_order(transports: tuple[str, ...]) -> None:
    server = echo_server()
    send, receive = recorder()
    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, transports) as client:

            @client.on("echoed")
            async def echoed(*args: Any) -> None:
                await send.send(args)

            for n in range(20):
                await client.emit("echo", n, {"n": [n]})
            for n in range(20):
                assert await receive.receive() == (n, {"n": [n]})


@pytest.mark.parametrize("transports", TRANSPORTS)
@pytest.mark.parametrize(
    ("args", "expected"), [((), None), ((1,), 1), ((1, "two"), (1, "two")), (([1, 2],), [1, 2])]
)
async def test_ack_from_the_server(transports: tuple[str, ...], args: tuple[Any, ...], expected: Any) -> None:
    server = echo_server()
    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, transports) as client:
            assert await client.emit_with_ack("answer", *args) == expected


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_ack_from_the_client(transports: tuple[str, ...]) -> None:
    server = trio_rooms.Server()
    answers: list[Any] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        answers.append(await socket.emit_with_ack("none", timeout=5))
        answers.append(await socket.emit_with_ack("one", 7, timeout=5))
        answers.append(await socket.emit_with_ack("two", "a", timeout=5))

    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, transports) as client:

            @client.on("none")
            async def none() -> None:
                return None

            @client.on("one")
            async def one(value: int) -> int:
                return value * 2

            @client.on("two")
            async def two(value: str) -> tuple[str, str]:
                return value, value.upper()

            await until(lambda: len(answers) == 3)
    assert answers == [None, 14, ("a", "A")]


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_many_packets_both_ways_across_the_upgrade(transports: tuple[str, ...]) -> None:
    """Emitted right after connecting, while a polling session upgrades: none lost, none reordered."""
    server = trio_rooms.Server()
    got: list[int] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("n")
        async def n(value: int, blob: bytes) -> None:
            assert blob == b"x" * (value % 3)
            got.append(value)

        for value in range(300):
            await socket.emit("n", value)

    received: list[int] = []
    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, transports) as client:

            @client.on("n")
            async def n(value: int) -> None:
                received.append(value)

            for value in range(300):
                await client.emit("n", value, b"x" * (value % 3))
            await until(lambda: len(got) == 300 and len(received) == 300)
            assert client.transport == transports[-1]
    assert got == list(range(300)) and received == list(range(300))


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_heartbeat_keeps_the_connection(transports: tuple[str, ...]) -> None:
    server = trio_rooms.Server(ping_interval=0.1, ping_timeout=0.1)
    reasons: list[str] = []
    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, transports) as client:

            @client.on("disconnect")
            async def disconnect(reason: str) -> None:
                reasons.append(reason)

            first_id = client.id
            await trio.sleep(0.8)  # eight pings, each answered
            assert client.id == first_id and not reasons


async def test_a_failed_upgrade_stays_on_polling() -> None:
    """A proxy that refuses every WebSocket request: the probe fails, the session goes on polling."""
    server = echo_server()
    refused: list[bytes] = []

    async def pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await sink.aclose()

    async with serving(server) as running:

        async def proxy(client_stream: trio.SocketStream) -> None:
            first = await client_stream.receive_some(65536)
            if b"transport=websocket" in first.split(b"\r\n", 1)[0]:
                refused.append(first.split(b"\r\n", 1)[0])
                await client_stream.send_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                await client_stream.aclose()
                return
            upstream = await trio.open_tcp_stream("127.0.0.1", running.port)
            await upstream.send_all(first)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pipe, client_stream, upstream)
                nursery.start_soon(pipe, upstream, client_stream)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(partial(trio.serve_tcp, proxy, 0, host="127.0.0.1"))
                url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
                async with connect(url, ("polling", "websocket")) as client:
                    await until(lambda: bool(refused))
                    assert await client.emit_with_ack("answer", "still") == "still"
                    assert client.transport == "polling"
                    assert b"&sid=" in refused[0]  # it was the upgrade's probe
                nursery.cancel_scope.cancel()


async def test_ack_timeout() -> None:
    server = trio_rooms.Server()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("slow")
        async def slow() -> None:
            await trio.sleep(10)

    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, ("websocket",)) as client:
            start = trio.current_time()
            with pytest.raises(trio_rooms.AckTimeout):
                await client.emit_with_ack("slow", timeout=0.2)
            assert 0.19 <= trio.current_time() - start < 2


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_binary_both_ways(transports: tuple[str, ...]) -> None:
    server = trio_rooms.Server()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("upload")
        async def upload(meta: dict[str, Any], blob: bytes) -> tuple[str, bytes]:
            await socket.emit("download", {"parts": [blob[::-1], b""]}, meta["name"])
            return meta["name"], bytes(reversed(meta["inner"]["data"]))

    send, receive = recorder()
    payload = bytes(range(256)) * 40
    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, transports) as client:

            @client.on("download")
            async def download(data: dict[str, Any], name: str) -> None:
                await send.send((data, name))

            meta = {"name": "f.bin", "inner": {"data": b"\x00\x01\x02"}}
            answer = await client.emit_with_ack("upload", meta, payload)
            assert answer == ("f.bin", b"\x02\x01\x00")
            assert await receive.receive() == ({"parts": [payload[::-1], b""]}, "f.bin")


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_room_broadcast_reaches_members_only(transports: tuple[str, ...]) -> None:
    server = trio_rooms.Server()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        socket.join(socket.handshake.auth["room"])

    inbox: dict[str, list[Any]] = {"red": [], "blue": []}
    with trio.fail_after(10):
        async with (
            serving(server) as running,
            connect(running.url, transports, auth={"room": "red"}) as red,
            connect(running.url, transports, auth={"room": "blue"}) as blue,
        ):
            for name, client in (("red", red), ("blue", blue)):

                @client.on("news")
                async def news(text: str, name: str = name) -> None:
                    inbox[name].append(text)

            await server.to("red").emit("news", "for red")
            await server.emit("news", "for all")
            await until(lambda: len(inbox["red"]) == 2 and len(inbox["blue"]) == 1)
            await trio.sleep(0.05)
    assert inbox == {"red": ["for red", "for all"], "blue": ["for all"]}


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_auth_and_middleware_refusal(transports: tuple[str, ...]) -> None:
    server = trio_rooms.Server()
    seen: list[dict[str, Any]] = []

    @server.use
    async def check(socket: trio_rooms.Socket) -> None:
        seen.append(socket.handshake.auth)
        if socket.handshake.auth.get("token") != "secret":
            raise trio_rooms.ConnectionRefused("unauthorized", {"hint": "token"})

    with trio.fail_after(10):
        async with serving(server) as running:
            with pytest.raises(trio_rooms.NamespaceRejected) as refused:
                async with connect(running.url, transports, auth={"token": "nope"}):
                    pytest.fail("connected without the token")
            assert (refused.value.message, refused.value.data) == ("unauthorized", {"hint": "token"})
            async with connect(running.url, transports, auth={"token": "secret"}) as client:
                assert client.connected
    assert seen == [{"token": "nope"}, {"token": "secret"}]


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_namespaces(transports: tuple[str, ...]) -> None:
    server = trio_rooms.Server()
    admin = server.of("/admin")
    ids: list[str] = []

    @admin.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        ids.append(socket.id)

        @socket.on("whoami")
        async def whoami() -> str:
            return socket.nsp.name

    with trio.fail_after(10):
        async with serving(server) as running:
            async with connect(running.url, transports, namespace="/admin") as client:
                assert client.id == ids[0]
                assert await client.emit_with_ack("whoami") == "/admin"
            with pytest.raises(trio_rooms.NamespaceRejected, match="Invalid namespace"):
                async with connect(running.url, transports, namespace="/nope"):
                    pass


@pytest.mark.parametrize("transports", TRANSPORTS)
@pytest.mark.parametrize("close", [False, True])
async def test_server_disconnect_does_not_reconnect(transports: tuple[str, ...], close: bool) -> None:
    server = echo_server()
    reasons: list[str] = []
    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, transports) as client:

            @client.on("disconnect")
            async def disconnect(reason: str) -> None:
                reasons.append(reason)

            # Past the upgrade: a close during it loses the DISCONNECT on the server side (reported).
            await until(lambda: client.transport == transports[-1])
            await server.disconnect_sockets(close=close)
            await until(lambda: bool(reasons))
            await trio.sleep(0.5)  # several reconnection delays: no new connection may appear
            assert reasons == ["io server disconnect"]
            assert not client.connected and client.id is None
            assert len(server.ids) == 1  # type: ignore[attr-defined]
            with pytest.raises(trio_rooms.Disconnected, match="io server disconnect"):
                await client.emit("echo", 1)


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_conn_close_is_a_forced_close_the_client_reconnects_after(transports: tuple[str, ...]) -> None:
    # Node's socket.conn.close(), as the Socket docstring tells it: the connection ends at once, its
    # socket disconnects with "forced close", and the client comes back (a new socket: recovery is
    # off); another client's connection, here to another namespace, is untouched.
    server = trio_rooms.Server()
    sockets: list[trio_rooms.Socket] = []
    reasons: list[tuple[str, str]] = []
    for name in ("/", "/chat"):

        @server.of(name).on("connection")
        async def on_connection(socket: trio_rooms.Socket) -> None:
            sockets.append(socket)

            @socket.on("disconnect")
            async def disconnect(reason: str) -> None:
                reasons.append((socket.nsp.name, reason))

    with trio.fail_after(10):
        async with (
            serving(server) as running,
            connect(running.url, transports) as client,
            connect(running.url, transports, namespace="/chat") as chat,
        ):
            await until(lambda: len(sockets) == 2 and client.transport == transports[-1])
            first = sockets[0]
            assert first.conn.transport == transports[-1]
            first.conn.close()
            await until(lambda: len(reasons) == 1)
            assert reasons == [("/", "forced close")]
            await until(lambda: len(sockets) == 3 and client.connected)
            assert sockets[2].id != first.id and not first.connected
            assert chat.connected  # another connection: untouched


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_reconnects_after_the_transport_drops_and_flushes_buffered_emits(
    transports: tuple[str, ...],
) -> None:
    server = trio_rooms.Server()
    ids: list[str] = []
    received: list[Any] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        ids.append(socket.id)

        @socket.on("note")
        async def note(n: int) -> None:
            received.append((socket.id, n))

        @socket.on("answer")
        async def answer(n: int) -> int:
            return n + 1

    events: list[Any] = []
    errors: list[Any] = []
    with trio.fail_after(15):
        async with serving(server) as running, connect(running.url, transports) as client:

            @client.on("disconnect")
            async def disconnect(reason: str) -> None:
                events.append(("disconnect", reason))

            @client.on("connect")
            async def connected() -> None:
                events.append(("connect", client.id))

            @client.on("connect_error")
            async def connect_error(error: Any) -> None:
                errors.append(error)

            first_id = client.id
            await running.stop()  # the server goes away: the transport drops without DISCONNECT
            await until(lambda: len(events) == 2)
            assert not client.connected
            for n in range(5):
                await client.emit("note", n)  # buffered while reconnecting
            async with trio.open_nursery() as nursery:
                answers: list[Any] = []

                async def ask() -> None:
                    answers.append(await client.emit_with_ack("answer", 41, timeout=5))

                nursery.start_soon(ask)
                await until(lambda: len(errors) >= 2)  # attempts fail while the server is away
                await running.start()  # back on the same port
            await until(lambda: client.connected and len(received) == 5)
            assert answers == [42]
            assert client.id is not None and client.id != first_id
            assert ids == [first_id, client.id]
            assert received == [(client.id, n) for n in range(5)]
            assert events[0] == ("connect", first_id)  # registered at the top of the block: seen
            assert events[1][0] == "disconnect" and events[1][1] in ("transport close", "transport error")
            await until(lambda: len(events) == 3)
            assert events[2] == ("connect", client.id)
            await client.emit("note", 5)
            await until(lambda: len(received) == 6)
    assert all(isinstance(error, trio_rooms.Disconnected) for error in errors)


async def test_reconnection_gives_up_after_reconnection_attempts() -> None:
    server = echo_server()
    errors: list[Any] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            running = Serving(server, nursery)
            await running.start()
            async with connect(running.url, ("websocket",), reconnection_attempts=2) as client:

                @client.on("connect_error")
                async def connect_error(error: Any) -> None:
                    errors.append(error)

                await running.stop()
                with trio.fail_after(5):
                    while True:  # buffered while reconnecting; refused once the client gave up
                        try:
                            await client.emit("echo", 1)
                        except trio_rooms.Disconnected as exc:
                            assert "could not connect" in str(exc)
                            break
                        await trio.sleep(0.02)
                assert len(errors) == 2
            nursery.cancel_scope.cancel()


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for _ in range(200):
        backoff = Backoff(1.0, 5.0, 0.5)
        delays = [backoff.next_delay() for _ in range(6)]
        for attempt, delay in enumerate(delays):
            nominal = 2.0**attempt
            assert min(5.0, nominal * 0.5) <= delay <= min(5.0, nominal * 1.5)
    assert [Backoff(1.0, 5.0, 0.0).next_delay() for _ in range(1)] == [1.0]
    steady = Backoff(1.0, 5.0, 0.0)
    assert [steady.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_send_buffer_is_bounded() -> None:
    server = echo_server()
    reasons: list[str] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            running = Serving(server, nursery)
            await running.start()
            async with connect(running.url, ("websocket",), max_buffered_packets=3) as client:

                @client.on("disconnect")
                async def disconnect(reason: str) -> None:
                    reasons.append(reason)

                await running.stop()
                await until(lambda: bool(reasons))
                for n in range(3):
                    await client.emit("echo", n)
                with pytest.raises(trio_rooms.Disconnected, match="send buffer is full"):
                    await client.emit("echo", 3)
                # An emit_with_ack whose packet is still buffered times out and leaves the buffer.
                with pytest.raises(trio_rooms.Disconnected):
                    await client.emit_with_ack("answer", 1, timeout=0.1)
            nursery.cancel_scope.cancel()


async def test_dead_server_is_a_ping_timeout() -> None:
    """A server that sends OPEN (pingInterval 100 ms, pingTimeout 100 ms) and never pings."""

    async def silent(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        opening = open_packet("s1", upgrades=[], ping_interval_ms=100, ping_timeout_ms=100, max_payload=1000)
        await ws.send_message(encode_ws(opening))
        message = await ws.get_message()  # the CONNECT
        assert message == "40"
        await ws.send_message(encode_ws(EnginePacket(EnginePacketType.MESSAGE, '0{"sid":"abc"}')))
        await trio.sleep_forever()

    reasons: list[str] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(trio_websocket.serve_websocket, silent, "127.0.0.1", 0, None)
            url = f"http://127.0.0.1:{server.port}"
            async with connect(url, ("websocket",), reconnection=False) as client:

                @client.on("disconnect")
                async def disconnect(reason: str) -> None:
                    reasons.append(reason)

                start = trio.current_time()
                assert client.id == "abc"
                await until(lambda: bool(reasons))
                assert 0.15 <= trio.current_time() - start < 1.0
                assert reasons == ["ping timeout"]
                with pytest.raises(trio_rooms.Disconnected, match="ping timeout"):
                    await client.emit("x")
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_leaving_the_block_disconnects_cleanly(transports: tuple[str, ...]) -> None:
    server = echo_server()
    reasons: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("disconnect")
        async def gone(reason: str) -> None:
            reasons.append(reason)

    with trio.fail_after(10):
        async with serving(server) as running:
            async with connect(running.url, transports) as client:
                await until(lambda: client.transport == transports[-1])
            assert not client.connected
            await until(lambda: bool(reasons) and server.stats()["connections"] == 0)
            assert reasons == ["client namespace disconnect"]
            with pytest.raises(trio_rooms.Disconnected):
                await client.emit("echo")


async def test_explicit_disconnect_runs_the_disconnect_handler() -> None:
    server = echo_server()
    reasons: list[str] = []
    with trio.fail_after(10):
        async with serving(server) as running, connect(running.url, ("websocket",)) as client:

            @client.on("disconnect")
            async def disconnect(reason: str) -> None:
                reasons.append(reason)

            await client.disconnect()
            await client.disconnect()  # idempotent
            assert reasons == ["io client disconnect"]
            assert not client.connected


@pytest.mark.parametrize("reconnection", [False, True])
async def test_cannot_connect_raises_disconnected(reconnection: bool) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    errors: list[Any] = []
    with trio.fail_after(10):
        start = trio.current_time()
        with pytest.raises(trio_rooms.Disconnected, match="could not connect"):
            async with connect(
                f"http://127.0.0.1:{port}", ("websocket",), reconnection=reconnection, wait_timeout=0.5
            ):
                pytest.fail("connected to nothing")
        assert trio.current_time() - start < 2
    assert not errors


async def test_body_exceptions_come_out_bare() -> None:
    server = echo_server()
    with trio.fail_after(10):
        async with serving(server) as running:
            with pytest.raises(KeyError):
                async with connect(running.url, ("websocket",)):
                    raise KeyError("mine")


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="transports"):
        Client("http://localhost", transports=("carrier-pigeon",))
    with pytest.raises(ValueError, match="namespace="):
        Client("http://localhost/admin")
    with pytest.raises(TypeError, match="auth"):
        Client("http://localhost", auth="token")  # type: ignore[arg-type]
    client = Client("http://localhost")
    with pytest.raises(ValueError, match="reserved"):
        client.on("newListener")
    with pytest.raises(TypeError, match="async def"):
        client.on("x")(lambda: None)  # type: ignore[type-var]


@pytest.mark.parametrize("transports", [("polling",), ("polling", "websocket"), ("websocket",)])
async def test_a_server_shutting_down_closes_each_transport_cleanly(transports: tuple[str, ...]) -> None:
    """Cancelling ``serve`` answers a held long-polling GET with the close packet (as Node's server
    does), and closes a WebSocket with its close frame: the client is told "transport close", never
    "transport error", however it is connected."""
    server = trio_rooms.Server()
    reasons: list[str] = []
    serving = trio.CancelScope()

    async def serve(task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
        with serving:
            await server.serve("127.0.0.1", 0, task_status=task_status)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve)
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            async with trio_rooms.open_client(url, transports=transports, reconnection=False) as client:
                gone = trio.Event()

                @client.on("disconnect")
                async def on_disconnect(reason: Any) -> None:
                    reasons.append(str(reason))
                    gone.set()

                await until(lambda: client.transport is not None and client.transport.value == transports[-1])
                await trio.sleep(0.05)  # a GET is held (polling) or the WebSocket is idle
                serving.cancel()
                await gone.wait()
    assert reasons == ["transport close"]
