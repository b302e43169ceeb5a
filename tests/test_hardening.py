"""Faults found by an outside attack (issue 11), each pinned by a regression test over real sockets on
127.0.0.1: what a client can make the server do with an ordinary disconnect, namespace floods, odd
polling requests, slow consumers, shutdown close codes, CORS and slow requests."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

import pytest
import trio
from helpers.serving import serving_port
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request

import trio_rooms
from trio_rooms.namespace import ParentNamespace
from trio_rooms.protocol import PacketType
from trio_rooms.testing import open_test_client

pytestmark = pytest.mark.filterwarnings("error")


async def http_exchange(port: int, request: bytes, *, read_until_close: bool = True) -> bytes:
    """Send raw bytes, return what the server answered (until it closes, or the first answer)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        received = b""
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return received
            received += data
            if not read_until_close and b"\r\n\r\n" in received:
                head, _, body = received.partition(b"\r\n\r\n")
                match = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
                if match and len(body) >= int(match.group(1)):
                    return received


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (polled every 5 ms)."""
    with trio.fail_after(timeout):
        while True:
            if predicate():
                return
            await trio.sleep(0.005)


def get(path: str, *headers: str, close: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_polling_session(port: int) -> str:
    answer = await http_exchange(port, get("/socket.io/?EIO=4&transport=polling"), read_until_close=False)
    body = answer.partition(b"\r\n\r\n")[2]
    assert body.startswith(b"0{"), answer
    sid = json.loads(body[1:])["sid"]
    assert isinstance(sid, str)
    return sid


def ws_upgrade_bytes(ws: WSConnection, path: str = "/socket.io/?EIO=4&transport=websocket") -> bytes:
    return ws.send(Request(host="127.0.0.1", target=path))


# -- 1. CONNECT then an immediate close: never a traceback ---------------------------------------------
@pytest.mark.parametrize("ending", ["close-frame", "eof", "garbage"])
async def test_connect_then_close_in_one_read_logs_no_traceback(
    ending: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client sending CONNECT and its goodbye (a close frame, EOF, or garbage) in one read: an
    ordinary disconnect, with no error logged."""
    server = trio_rooms.Server()
    gone = trio.Event()

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("disconnect")
        async def disconnect(reason: str) -> None:
            gone.set()

    caplog.set_level(logging.INFO, logger="trio_rooms")
    with trio.fail_after(10):
        async with serving_port(server) as port:
            for _ in range(20):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                ws = WSConnection(ConnectionType.CLIENT)
                await stream.send_all(ws_upgrade_bytes(ws))
                buffer = b""
                while not any(isinstance(e, AcceptConnection) for e in ws.events()):
                    data = await stream.receive_some(65536)
                    assert data
                    ws.receive_data(data)
                    buffer += data
                tail = ws.send(Message(data="40"))
                if ending == "close-frame":
                    tail += ws.send(CloseConnection(code=1000))
                elif ending == "garbage":
                    tail += b"\xff" * 64
                await stream.send_all(tail)
                await stream.aclose()
            await until(lambda: not server.engine.sessions)
            await trio.sleep(0.05)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


def task_count() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(child) for nursery in task.child_nurseries for child in nursery.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


# -- 2. dynamic child namespaces are bounded and, with the option, cleaned up -------------------------
async def test_child_namespaces_cost_no_task_and_are_bounded() -> None:
    server = trio_rooms.Server(max_child_namespaces=20)
    parent = server.of(re.compile(r"/room-\d+"))
    assert isinstance(parent, ParentNamespace)

    @parent.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        pass

    with trio.fail_after(10):
        async with serving_port(server) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with open_test_client(stream) as client:
                before = task_count()
                for n in range(20):
                    answer = await client.connect(f"/room-{n}")
                    assert answer.type is PacketType.CONNECT, answer
                    await client.send(trio_rooms.protocol.Packet(PacketType.DISCONNECT, f"/room-{n}"))
                refused = await client.connect("/room-20")
                assert refused.type is PacketType.CONNECT_ERROR
                assert refused.data == {"message": "Too many namespaces"}
                # Still connected: an admitted child works.
                assert (await client.connect("/room-3")).type is PacketType.CONNECT
                await until(lambda: server.stats()["sockets"].get("/room-3") == 1)
                # 20 children exist (no cleanup by default), and they cost no task of their own:
                # only /room-3's socket runs now (its task and its handlers' nursery task).
                assert len(parent.children) == 20
                assert task_count() - before <= 2
            stats = server.stats()
            assert stats["refused_child_namespaces"] == 1


async def test_cleanup_empty_child_namespaces_removes_them_with_their_adapter() -> None:
    server = trio_rooms.Server(cleanup_empty_child_namespaces=True, max_child_namespaces=5)
    parent = server.of(re.compile(r"/room-\d+"))
    assert isinstance(parent, ParentNamespace)
    refused = 0

    @parent.use
    async def only_even(socket: trio_rooms.Socket) -> None:
        if int(socket.nsp.name.rpartition("-")[2]) % 2:
            raise trio_rooms.ConnectionRefused("odd")

    with trio.fail_after(10):
        async with serving_port(server) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with open_test_client(stream) as client:
                # 300 children, at most 5 at a time: each is removed once its socket left (or was
                # refused by the middleware), so the bound is never reached.
                for n in range(300):
                    answer = await client.connect(f"/room-{n}")
                    if n % 2:
                        assert answer.type is PacketType.CONNECT_ERROR
                        assert answer.data == {"message": "odd"}
                        refused += 1
                    else:
                        assert answer.type is PacketType.CONNECT, answer
                        await client.send(trio_rooms.protocol.Packet(PacketType.DISCONNECT, f"/room-{n}"))
                    await until(lambda: not parent.children)
                assert (await client.connect("/room-8")).type is PacketType.CONNECT
                await until(lambda: "/room-8" in server.stats()["sockets"])
            # The client left: its namespace is gone too.
            await until(lambda: not parent.children)
            assert set(server.stats()["sockets"]) == {"/"}
            assert server.stats()["refused_child_namespaces"] == 0
            assert refused == 150


# -- 3. CONNECTs to unknown namespaces never take a slot ----------------------------------------------
async def test_burst_of_connects_to_unknown_namespaces_is_refused_one_by_one() -> None:
    server = trio_rooms.Server(max_namespaces=4)
    with trio.fail_after(10):
        async with serving_port(server) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with open_test_client(stream) as client:
                # 100 CONNECTs to namespaces nobody serves, in one write: each is refused at once,
                # and none counts towards max_namespaces.
                await client.send_raw_many([f"40/nobody-{n}," for n in range(100)])
                for n in range(100):
                    answer = await client.receive()
                    assert answer.type is PacketType.CONNECT_ERROR
                    assert (answer.nsp, answer.data) == (f"/nobody-{n}", {"message": "Invalid namespace"})
                assert (await client.connect("/")).type is PacketType.CONNECT


# -- 4. an empty POST is a bad request at once, whatever the connection header -----------------------
@pytest.mark.parametrize("connection", ["close", "keep-alive"])
@pytest.mark.parametrize("length", ["Content-Length: 0", None])
async def test_empty_post_is_refused_at_once(connection: str, length: str | None) -> None:
    server = trio_rooms.Server()  # request_timeout 10 s: the guard below is shorter
    with trio.fail_after(5):
        async with serving_port(server) as port:
            sid = await open_polling_session(port)
            lines = [
                f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1",
                "Host: 127.0.0.1",
                f"Connection: {connection}",
                "Content-Type: text/plain;charset=UTF-8",
            ]
            if length is not None:
                lines.append(length)
            answer = await http_exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode())
            assert answer.startswith(b"HTTP/1.1 400 "), answer
            assert answer.endswith(b'{"code":3,"message":"Bad request"}')
            # The session ended, as after any malformed POST.
            target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
            again = await http_exchange(port, get(target, close=True))
            assert again.startswith(b"HTTP/1.1 400 ") and b'"code":1' in again, again


# -- 5. a slow consumer is counted once --------------------------------------------------------------
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_slow_consumer_of_unicast_emits_is_counted_once(transport: str) -> None:
    server = trio_rooms.Server(max_queued_bytes=32 * 1024, send_timeout=0.3)
    outcome: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("disconnect")
        async def gone(reason: str) -> None:
            outcome.append(reason)

        try:
            for n in range(100_000):
                await socket.emit("n", n, "x" * 4000)
        except trio_rooms.Disconnected as exc:
            outcome.append(f"emit: {exc.reason}")

    with trio.fail_after(10):
        async with serving_port(server) as port:
            if transport == "websocket":
                sock = trio.socket.socket()
                sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
                await sock.connect(("127.0.0.1", port))
                stream = trio.SocketStream(sock)
                client_cm = open_test_client(stream)
                client = await client_cm.__aenter__()
                await client.send(trio_rooms.protocol.Packet(PacketType.CONNECT))
                # ... and never read again.
            else:
                sid = await open_polling_session(port)
                post = (
                    f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Length: 2\r\nConnection: close\r\n\r\n40"
                ).encode()
                assert (await http_exchange(port, post)).startswith(b"HTTP/1.1 200 ")
                # ... and never GET again.
            await until(lambda: len(outcome) >= 2)
            await trio.sleep(0.2)  # the connection's close (and its close frame) is done
            assert sorted(outcome) == ["emit: slow consumer", "slow consumer"]
            assert server.stats()["slow_consumers_closed"] == 1
            if transport == "websocket":
                await client_cm.__aexit__(None, None, None)


# -- 10. requests cut for being too slow are counted --------------------------------------------------
async def test_requests_cut_for_being_too_slow_are_counted() -> None:
    server = trio_rooms.Server(request_timeout=0.3, idle_timeout=0.3, upgrade_timeout=0.3)
    with trio.fail_after(10):
        async with serving_port(server) as port:
            # A head that never ends (slowloris), a WebSocket handshake that never ends, and a
            # connection that sends nothing at all.
            head = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
            for partial in (head, b"GET /sock", b""):
                assert await http_exchange(port, partial) in (b"", b"HTTP/1.1 408 ")  # cut, then closed
            # A POST body trickled past the deadline: 408.
            sid = await open_polling_session(port)
            post = (
                f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Length: 10\r\n\r\n40"
            ).encode()
            assert (await http_exchange(port, post)).startswith(b"HTTP/1.1 408 ")
            # An upgrade whose probe never comes.
            sid = await open_polling_session(port)
            ws = WSConnection(ConnectionType.CLIENT)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                target = f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
                await stream.send_all(ws_upgrade_bytes(ws, target))
                while await stream.receive_some(65536):
                    pass  # accepted, then closed at the upgrade deadline
            # A keep-alive connection idle between requests is not a slow request.
            idle = await trio.open_tcp_stream("127.0.0.1", port)
            async with idle:
                await idle.send_all(get("/socket.io/?EIO=4&transport=polling"))
                while await idle.receive_some(65536):
                    pass  # answered, then closed after idle_timeout
            assert server.stats()["timed_out_requests"] == 5


# -- the soak's finding: keep-alive answers say how long the server keeps an idle connection ----------
async def test_keep_alive_answers_announce_the_idle_timeout() -> None:
    """A client's pool (Node's http.Agent) closes an idle connection before the server does only if
    the server says when: without ``Keep-Alive: timeout``, a request sent as the server closes the
    connection fails ("socket hang up"), which the soak benchmark hit."""
    server = trio_rooms.Server(idle_timeout=30.0)
    with trio.fail_after(5):
        async with serving_port(server) as port:
            answer = await http_exchange(
                port, get("/socket.io/?EIO=4&transport=polling"), read_until_close=False
            )
            closing = await http_exchange(port, get("/socket.io/?EIO=4&transport=polling", close=True))
    assert re.search(rb"\r\nkeep-alive: timeout=30\r\n", answer, re.IGNORECASE), answer
    assert not re.search(rb"\r\nkeep-alive:", closing, re.IGNORECASE), closing
