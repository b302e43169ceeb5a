"""Protocol conformance: every MUST and SHOULD of the Engine.IO v4 and Socket.IO v5 specs, checked
on real TCP (127.0.0.1, port 0) with raw HTTP (h11) and raw WebSocket frames (wsproto), never with a
Socket.IO client library. Timings are the specs' test-suite timings (pingInterval 300 ms,
pingTimeout 200 ms); time is real, so timings are asserted as windows with a tolerance.

tests/CONFORMANCE.md maps each MUST/SHOULD of the specs to the test that checks it.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, Final

import h11
import pytest
import trio
from helpers.asgi_harness import require_hypercorn, serve_asgi
from helpers.raw_clients import (
    EIO_PATH,
    SIO_PATH,
    HttpClient,
    Response,
    WsClient,
    WsClosed,
    WsRejected,
    assert_engine_error,
    get,
    open_polling,
    polling,
    post,
    request,
    sio_client,
    upgrade,
    websocket,
    ws_session,
)

import trio_rooms
from trio_rooms.engine import EngineServer, EngineSession, HttpRequest

PING_INTERVAL: Final = 0.3
PING_TIMEOUT: Final = 0.2
#: The specs' test-suite timings; a short close_timeout keeps shutdowns with polling sessions quick.
TIMINGS: Final[dict[str, Any]] = {
    "ping_interval": PING_INTERVAL,
    "ping_timeout": PING_TIMEOUT,
    "close_timeout": 0.5,
}
#: Real time: a scheduled event may come this much late (loaded CI machines), never early.
LATE: Final = 0.25
#: "At once" checks allow this much (a loaded machine can pause a test for a few hundred ms); their
#: servers use SLOW_PINGS, so that no heartbeat can answer or close within it instead.
PROMPT: Final = 1.0
SLOW_PINGS: Final[dict[str, Any]] = {"ping_interval": 5.0, "ping_timeout": 5.0}
EARLY: Final = 0.03
GUARD: Final = 10  # seconds: the fail_after of every test


def within(elapsed: float, expected: float) -> bool:
    """``elapsed`` is ``expected`` seconds, allowing scheduling lateness (real time)."""
    return expected - EARLY <= elapsed <= expected + LATE


# ------------------------------------------------------------------------------------------------
# Servers
# ------------------------------------------------------------------------------------------------


#: Each test runs on each front door: the native server (``server.serve``) and the ASGI one
#: (``trio_rooms.ASGIApp`` under Hypercorn's trio worker, in process). Under ASGI a few tests check
#: what the ASGI server owns (raw HTTP/1.1 and socket behaviour): CONFORMANCE.md ("Under ASGI") lists
#: them and what differs.
FRONT_DOORS: Final = ("native", "asgi")
_front_door = "native"


@pytest.fixture(autouse=True, params=FRONT_DOORS)
def front_door(request: pytest.FixtureRequest) -> Iterator[str]:
    """The front door ``serving`` serves with (a parameter of every test)."""
    global _front_door
    door = str(request.param)
    if door == "asgi":
        require_hypercorn()
    _front_door = door
    try:
        yield door
    finally:
        _front_door = "native"


async def serve_port(
    server: trio_rooms.Server | EngineServer, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve on 127.0.0.1, port 0, through the test's front door; report the port; until cancelled."""
    if _front_door == "asgi":
        await serve_asgi(server, task_status=task_status)
        return
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        task_status.started(listeners[0].socket.getsockname()[1])


@asynccontextmanager
async def serving(server: trio_rooms.Server | EngineServer) -> AsyncIterator[int]:
    """Serve through the test's front door (``serve_port``); yield the port; shut down on exit."""
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_port, server)
        nursery.cancel_scope.cancel()


def echo_engine(**options: Any) -> EngineServer:
    """The Engine.IO test-suite server: every message is sent back as it came."""
    engine = EngineServer(**{**TIMINGS, **options})

    @engine.on("connection")
    async def echo(session: EngineSession) -> None:
        async for message in session:
            if message == "close-me":
                await session.close()
                return
            await session.send(message)

    return engine


def reference_server(**options: Any) -> trio_rooms.Server:
    """The Socket.IO test-suite server (socket.io-protocol, "Test suite")."""
    server = trio_rooms.Server(**{**TIMINGS, "cors_allowed_origins": "*", **options})

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("message")
        async def message(*args: Any) -> None:
            await socket.emit("message-back", *args)

        @socket.on("message-with-ack")
        async def message_with_ack(*args: Any) -> tuple[Any, ...]:
            return tuple(args)

        @socket.on("close-me")
        async def close_me() -> None:
            await socket.disconnect(close=True)

        @socket.on("leave-me")
        async def leave_me() -> None:
            await socket.disconnect()

        await socket.emit("auth", socket.handshake.auth)

    @server.of("/custom").on("connection")
    async def on_custom(socket: trio_rooms.Socket) -> None:
        await socket.emit("auth", socket.handshake.auth)

    return server


# ================================================================================================
# Engine.IO v4: handshake
# ================================================================================================


async def test_eio_polling_handshake_open_packet() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            response = await request(port, "GET", polling())
    assert response.status == 200
    assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    assert response.text.startswith("0")
    value = json.loads(response.text[1:])
    assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(value["sid"], str) and value["sid"]
    assert value["upgrades"] == ["websocket"]
    assert value["pingInterval"] == 300  # exact milliseconds, sub-second values included
    assert value["pingTimeout"] == 200
    assert value["maxPayload"] == 1_000_000


async def test_eio_websocket_handshake_open_packet() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port, ws_session(port) as (_client, value):
            assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
            assert isinstance(value["sid"], str) and value["sid"]
            assert value["upgrades"] == []
            assert (value["pingInterval"], value["pingTimeout"], value["maxPayload"]) == (300, 200, 1_000_000)


async def test_eio_session_ids_are_distinct_and_unguessable() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sids = [await open_polling(port) for _ in range(20)]
    assert len(set(sids)) == 20
    assert all(len(sid) >= 20 and re.fullmatch(r"[A-Za-z0-9_-]+", sid) for sid in sids)


ERRORS: Final = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}


@pytest.mark.parametrize(
    ("method", "query", "code"),
    [
        ("GET", "transport=polling", 5),  # EIO missing
        ("GET", "EIO=abc&transport=polling", 5),
        ("GET", "EIO=3&transport=polling", 5),
        ("GET", "EIO=4", 0),  # transport missing: never a default transport
        ("GET", "EIO=4&transport=abc", 0),
        ("GET", "EIO=4&transport=", 0),
        ("POST", "EIO=4&transport=polling", 2),  # a handshake is a GET
        ("PUT", "EIO=4&transport=polling", 2),
        ("GET", "EIO=4&transport=polling&sid=unknown", 1),
        ("POST", "EIO=4&transport=polling&sid=unknown", 1),
        ("GET", "EIO=4&transport=websocket", 3),  # websocket without the upgrade headers
    ],
)
async def test_eio_error_answers(method: str, query: str, code: int) -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            body = "4hello" if method in ("POST", "PUT") else ""
            response = await request(port, method, f"{EIO_PATH}?{query}", body)
    assert_engine_error(response, 400, code, ERRORS[code])


async def test_eio_bad_method_on_a_session() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            response = await request(port, "PUT", polling(sid), "4x")
    assert_engine_error(response, 400, 2, ERRORS[2])


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("transport=websocket", 5),
        ("EIO=abc&transport=websocket", 5),
        ("EIO=4", 0),
        ("EIO=4&transport=abc", 0),
        ("EIO=4&transport=websocket&sid=unknown", 1),
    ],
)
async def test_eio_websocket_with_bad_query_is_refused(query: str, code: int) -> None:
    """ "If a mandatory query parameter is missing, then the server MUST close the WebSocket
    connection": the upgrade itself is refused with the JSON error, so no WebSocket opens."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            with pytest.raises(WsRejected) as refused:
                await WsClient.connect(port, f"{EIO_PATH}?{query}")
    assert refused.value.status == 400
    assert json.loads(refused.value.body) == {"code": code, "message": ERRORS[code]}


async def test_eio_other_paths_get_404() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            response = await request(port, "GET", "/elsewhere?EIO=4&transport=polling")
    assert response.status == 404


# ================================================================================================
# Engine.IO v4: long-polling messages
# ================================================================================================


async def test_eio_polling_one_text_packet() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            pushed = await post(port, sid, "4hello")
            assert (pushed.status, pushed.text) == (200, "ok")
            polled = await get(port, sid)
    assert polled.status == 200
    assert polled.headers["content-type"] == "text/plain; charset=UTF-8"
    assert polled.text == "4hello"


async def test_eio_polling_several_text_packets() -> None:
    """Several packets in one POST; the answer of one GET carries several packets, in order."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            pushed = await post(port, sid, "4test1\x1e4test2\x1e4test3")
            assert (pushed.status, pushed.text) == (200, "ok")
            await trio.sleep(0.05)  # the three echoes are queued (well before the first ping)
            polled = await get(port, sid)
    assert polled.text == "4test1\x1e4test2\x1e4test3"


async def test_eio_polling_text_and_binary_packets() -> None:
    """Binary is "b" + base64 in both directions; a POST without Content-Type is plain text."""
    seen: list[str | bytes] = []
    engine = EngineServer(**TIMINGS)

    @engine.on("connection")
    async def record(session: EngineSession) -> None:
        async for message in session:
            seen.append(message)
            await session.send(message)

    with trio.fail_after(GUARD):
        async with serving(engine) as port:
            sid = await open_polling(port)
            pushed = await post(port, sid, "4hello\x1ebAQIDBA==")
            assert (pushed.status, pushed.text) == (200, "ok")
            await trio.sleep(0.05)
            polled = await get(port, sid)
    assert seen == ["hello", b"\x01\x02\x03\x04"]
    assert polled.text == "4hello\x1ebAQIDBA=="
    assert polled.headers["content-type"] == "text/plain; charset=UTF-8"  # base64: the body is text


@pytest.mark.parametrize("body", ["abc", "", "4a\x1e", "b!!!notbase64", "9", "5", "0", b"\x04\xff\xfe"])
async def test_eio_polling_invalid_packet_closes_session(body: str | bytes) -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            pushed = await post(port, sid, body)
            polled = await get(port, sid)
    assert_engine_error(pushed, 400, 3, ERRORS[3])
    assert polled.status == 400


async def test_eio_polling_get_held_until_a_packet() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            start = trio.current_time()
            answers: list[tuple[float, Response]] = []

            async def poll() -> None:
                response = await get(port, sid)
                answers.append((trio.current_time() - start, response))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(0.1)
                assert answers == []  # nothing to send yet: the GET is held
                await post(port, sid, "4late")
    elapsed, response = answers[0]
    assert response.text == "4late"
    assert 0.1 <= elapsed < 0.1 + LATE


async def test_eio_polling_duplicate_get_closes_session() -> None:
    """A second GET while one is pending: 400, the session closes, the pending GET gets "1"."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine(**SLOW_PINGS)) as port:
            sid = await open_polling(port)
            first: list[Response] = []

            async def poll() -> None:
                first.append(await get(port, sid))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(0.05)
                start = trio.current_time()
                second = await get(port, sid)
            assert trio.current_time() - start < PROMPT  # the pending GET was answered at once
            after = await get(port, sid)
    assert_engine_error(second, 400, 3, ERRORS[3])
    assert (first[0].status, first[0].text) == (200, "1")
    assert after.status == 400


async def test_eio_polling_concurrent_post_closes_session() -> None:
    """A second POST while one is still being received: 400 and the session closes."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            slow = await trio.open_tcp_stream("127.0.0.1", port)
            head = (
                f"POST {polling(sid)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n4hel"
            ).encode()
            await slow.send_all(head)  # the body is incomplete: this POST stays active
            await trio.sleep(0.05)
            second = await post(port, sid, "4world")
            after = await get(port, sid)
            await trio.aclose_forcefully(slow)
    assert_engine_error(second, 400, 3, ERRORS[3])
    assert after.status == 400


async def test_eio_polling_cancelled_get_closes_session() -> None:
    """The reference test suite: a GET whose connection the client aborts ends the session."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            client = await HttpClient.open(port)
            out = client.h11.send(h11.Request(method="GET", target=polling(sid), headers=[("host", "x")]))
            await client.stream.send_all((out or b"") + (client.h11.send(h11.EndOfMessage()) or b""))
            await trio.sleep(0.05)
            await client.aclose()
            await trio.sleep(0.05)
            after = await get(port, sid)
    assert after.status == 400


async def test_eio_polling_keep_alive_several_requests_on_one_connection() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            client = await HttpClient.open(port)
            try:
                opened = await client.request("GET", polling())
                sid = json.loads(opened.text[1:])["sid"]
                answers = [opened]
                for word in ("one", "two", "three"):
                    answers.append(await client.request("POST", polling(sid), "4" + word))
                    answers.append(await client.request("GET", polling(sid)))
            finally:
                await client.aclose()
    assert [a.status for a in answers] == [200] * 7
    assert [a.text for a in answers[1:]] == ["ok", "4one", "ok", "4two", "ok", "4three"]
    assert all("close" not in a.headers.get("connection", "") for a in answers)


async def test_eio_pipelined_requests_are_answered_in_order_or_closed() -> None:
    """h11 layer: requests pipelined on one connection are each answered completely, in order
    (or the connection closes cleanly after the answers it gave); never a mixed-up answer."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            one = f"GET {polling()} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            await stream.send_all(one + one)
            received = b""
            with trio.move_on_after(0.5):
                while len(re.findall(rb"\r\n\r\n0\{", received)) < 2:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    received += chunk
            await stream.aclose()
    client = h11.Connection(h11.CLIENT)
    client.receive_data(received)
    answered = 0
    for _ in range(2):
        client.send(h11.Request(method="GET", target=polling(), headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        event = client.next_event()
        if event is h11.NEED_DATA:
            break
        assert isinstance(event, h11.Response) and event.status_code == 200
        data = client.next_event()
        assert isinstance(data, h11.Data) and bytes(data.data).startswith(b"0{")
        assert isinstance(client.next_event(), h11.EndOfMessage)
        answered += 1
        client.start_next_cycle()
    assert answered >= 1


async def test_eio_h11_limits() -> None:
    """Malformed, oversized heads and too many headers get 4xx answers, never a hang."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            for raw in (
                b"garbage\r\n\r\n",
                f"GET {polling()} HTTP/1.1\r\nHost: x\r\nX-Big: {'v' * 70_000}\r\n\r\n".encode(),
                (
                    f"GET {polling()} HTTP/1.1\r\nHost: x\r\n".encode()
                    + b"".join(b"X-%d: v\r\n" % i for i in range(200))
                    + b"\r\n"
                ),
            ):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(raw)
                received = b""
                while chunk := await stream.receive_some(65536):
                    received += chunk
                await stream.aclose()
                assert re.match(rb"HTTP/1\.1 4\d\d ", received), received[:80]


# ================================================================================================
# Engine.IO v4: WebSocket messages
# ================================================================================================


async def test_eio_websocket_text_and_binary_frames() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port, ws_session(port) as (client, _open):
            await client.send("4hello")
            assert await client.recv() == "4hello"
            await client.send(b"\x01\x02\x03\x04")  # binary: as is, no "b", no base64, no type byte
            assert await client.recv() == b"\x01\x02\x03\x04"


async def test_eio_websocket_invalid_packet_closes() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine(**SLOW_PINGS)) as port, ws_session(port) as (client, _open):
            await client.send("abc")
            start = trio.current_time()
            _code, seen = await client.wait_closed()
            assert seen == []
            assert trio.current_time() - start < PROMPT


# ================================================================================================
# Engine.IO v4: heartbeat
# ================================================================================================


async def test_eio_polling_heartbeat_ping_every_interval() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            start = trio.current_time()
            sid = await open_polling(port)
            times: list[float] = []
            for _ in range(3):
                polled = await get(port, sid)
                times.append(trio.current_time() - start)
                assert (polled.status, polled.text) == (200, "2")
                pushed = await post(port, sid, "3")
                assert (pushed.status, pushed.text) == (200, "ok")
            assert (await post(port, sid, "4still-here")).status == 200
    # Each ping comes pingInterval after the previous pong... or the previous ping.
    assert within(times[0], PING_INTERVAL)
    for before, after in itertools.pairwise(times):
        assert PING_INTERVAL - EARLY <= after - before <= PING_INTERVAL + LATE


async def test_eio_websocket_heartbeat_ping_every_interval() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port, ws_session(port) as (client, _open):
            start = trio.current_time()
            times: list[float] = []
            for _ in range(3):
                assert await client.recv() == "2"
                times.append(trio.current_time() - start)
                await client.send("3")
            await client.send("4alive")
            assert await client.recv_app() == "4alive"
    assert within(times[0], PING_INTERVAL)
    for before, after in itertools.pairwise(times):
        assert within(after - before, PING_INTERVAL)


async def test_eio_polling_ping_timeout_without_any_get() -> None:
    """The pong deadline counts from the moment the ping is queued, with no GET to carry it:
    the session ends at pingInterval + pingTimeout and a later GET gets 400."""
    engine = EngineServer(**TIMINGS)
    ended: list[tuple[float, str]] = []

    @engine.on("connection")
    async def watch(session: EngineSession) -> None:
        reason = await session.wait_closed()
        ended.append((trio.current_time(), str(reason)))

    with trio.fail_after(GUARD):
        async with serving(engine) as port:
            start = trio.current_time()
            sid = await open_polling(port)
            await trio.sleep(PING_INTERVAL + PING_TIMEOUT + 0.05)
            polled = await get(port, sid)
    assert_engine_error(polled, 400, 1, ERRORS[1])
    assert [reason for _, reason in ended] == ["ping timeout"]
    assert within(ended[0][0] - start, PING_INTERVAL + PING_TIMEOUT)


async def test_eio_polling_ping_timeout_with_a_get_pending() -> None:
    """A GET takes the ping; the pong never comes; the next (pending) GET gets a close packet at
    the deadline and a GET after the deadline gets 400."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            start = trio.current_time()
            sid = await open_polling(port)
            assert (await get(port, sid)).text == "2"
            held = await get(port, sid)
            closed_at = trio.current_time() - start
            after = await get(port, sid)
    assert (held.status, held.text) == (200, "1")
    assert within(closed_at, PING_INTERVAL + PING_TIMEOUT)
    assert after.status == 400


async def test_eio_websocket_ping_timeout() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port, ws_session(port) as (client, _open):
            start = trio.current_time()
            _code, seen = await client.wait_closed(pong=False)
            elapsed = trio.current_time() - start
    assert seen == ["2"]
    assert within(elapsed, PING_INTERVAL + PING_TIMEOUT)


# ================================================================================================
# Engine.IO v4: closing
# ================================================================================================


async def test_eio_polling_client_close_answers_pending_get_with_noop() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            held: list[Response] = []

            async def poll() -> None:
                held.append(await get(port, sid))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(0.05)
                pushed = await post(port, sid, "1")
            after = await get(port, sid)
    assert (pushed.status, pushed.text) == (200, "ok")
    assert (held[0].status, held[0].text) == (200, "6")
    assert after.status == 400


async def test_eio_polling_server_close_answers_pending_get_with_close() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            held: list[Response] = []

            async def poll() -> None:
                held.append(await get(port, sid))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(0.05)
                await post(port, sid, "4close-me")
            after = await get(port, sid)
    assert (held[0].status, held[0].text) == (200, "1")
    assert after.status == 400


async def test_eio_polling_server_close_without_pending_get_is_collected_by_next_get() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            await post(port, sid, "4bye\x1e4close-me")
            await trio.sleep(0.05)
            last = await get(port, sid)
            after = await get(port, sid)
    assert last.packets == ["4bye", "1"]
    assert after.status == 400


async def test_eio_websocket_client_close_packet() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine(**SLOW_PINGS)) as port, ws_session(port) as (client, _open):
            await client.send("1")
            start = trio.current_time()
            _code, seen = await client.wait_closed()
            assert seen == [] and trio.current_time() - start < PROMPT


# ================================================================================================
# Engine.IO v4: upgrade
# ================================================================================================


async def test_eio_upgrade_probe_noop_and_upgrade() -> None:
    """2probe -> 3probe; a GET during the upgrade gets a noop at once; 5 completes it."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine(**SLOW_PINGS)) as port:
            sid = await open_polling(port)
            client = await WsClient.connect(port, websocket(sid))
            try:
                await client.send("2probe")
                assert await client.recv() == "3probe"
                start = trio.current_time()
                polled = await get(port, sid)
                assert (polled.status, polled.text) == (200, "6")
                assert trio.current_time() - start < PROMPT  # promptly, not at the next ping
                await client.send("5")
                await client.send("4hello")
                assert await client.recv_app() == "4hello"
            finally:
                await client.aclose()


async def test_eio_upgrade_pending_get_gets_noop() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine(**SLOW_PINGS)) as port:
            sid = await open_polling(port)
            held: list[tuple[float, Response]] = []

            async def poll() -> None:
                response = await get(port, sid)
                held.append((trio.current_time(), response))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(0.05)
                client = await WsClient.connect(port, websocket(sid))
                await client.send("2probe")
                assert await client.recv() == "3probe"
                probed = trio.current_time()
            await client.send("5")
            await client.send("4hello")
            assert await client.recv_app() == "4hello"
            await client.aclose()
    at, response = held[0]
    assert (response.status, response.text) == (200, "6")
    assert at - probed < PROMPT


async def test_eio_upgrade_loses_and_duplicates_no_packet() -> None:
    """The server sends numbered packets continuously while the client upgrades; collected from
    the GETs and then from the WebSocket, every number arrives exactly once, in order."""
    count = 250
    engine = EngineServer(**TIMINGS)

    @engine.on("connection")
    async def numbers(session: EngineSession) -> None:
        async for message in session:
            if message == "start":
                for i in range(count):
                    await session.send(str(i))
                    await trio.sleep(0.002)

    received: list[int] = []
    with trio.fail_after(GUARD):
        async with serving(engine) as port:
            sid = await open_polling(port)
            paused = trio.Event()
            polls = 0

            async def collect_by_polling() -> None:
                nonlocal polls
                conn = await HttpClient.open(port)
                try:
                    while not paused.is_set():
                        response = await conn.request("GET", polling(sid))
                        polls += 1
                        assert response.status == 200
                        for packet in response.packets:
                            if packet == "2":
                                assert (await post(port, sid, "3")).status == 200
                            elif packet[0] == "4":
                                received.append(int(packet[1:]))
                            else:
                                assert packet == "6"
                finally:
                    await conn.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect_by_polling)
                await post(port, sid, "4start")
                await trio.sleep(0.15)
                client = await WsClient.connect(port, websocket(sid))
                await client.send("2probe")
                assert await client.recv() == "3probe"
                paused.set()  # the client pauses polling; its pending GET ends with a noop
            by_polling = len(received)
            await client.send("5")
            while len(received) < count:
                message = await client.recv_app()
                assert isinstance(message, str) and message[0] == "4", message
                received.append(int(message[1:]))
            await client.aclose()
    assert received == list(range(count))
    assert 0 < by_polling < count and polls > 1


async def test_eio_polling_after_upgrade_gets_400() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            client = await upgrade(port, sid)
            try:
                polled = await get(port, sid)
                pushed = await post(port, sid, "4x")
                await client.send("4hello")
                assert await client.recv_app() == "4hello"
            finally:
                await client.aclose()
    assert_engine_error(polled, 400, 3, ERRORS[3])
    assert_engine_error(pushed, 400, 3, ERRORS[3])


async def test_eio_second_websocket_for_upgraded_sid_is_closed() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine()) as port:
            sid = await open_polling(port)
            client = await upgrade(port, sid)
            try:
                second = await WsClient.connect(port, websocket(sid))  # accepted (101) ...
                _code, seen = await second.wait_closed(pong=False)  # ... then closed
                assert seen == []
                await second.aclose()
                await client.send("4hello")
                assert await client.recv_app() == "4hello"
            finally:
                await client.aclose()


async def test_eio_upgrade_timeout_keeps_polling() -> None:
    """No "5" within upgrade_timeout: the WebSocket is closed and the session stays on polling."""
    with trio.fail_after(GUARD):
        async with serving(echo_engine(upgrade_timeout=0.2, ping_interval=5.0)) as port:
            sid = await open_polling(port)
            client = await WsClient.connect(port, websocket(sid))
            await client.send("2probe")
            assert await client.recv() == "3probe"
            start = trio.current_time()
            _code, _seen = await client.wait_closed(pong=False)
            assert within(trio.current_time() - start, 0.2)
            await client.aclose()
            assert (await post(port, sid, "4still")).text == "ok"
            assert (await get(port, sid)).text == "4still"


# ================================================================================================
# Engine.IO v4: max_payload
# ================================================================================================


async def test_eio_polling_max_payload() -> None:
    """A POST body over maxPayload gets 413 (as the reference server) and closes the session;
    a body of exactly maxPayload bytes is accepted. The refusal is counted."""
    engine = echo_engine(max_payload=1000)
    with trio.fail_after(GUARD):
        async with serving(engine) as port:
            sid = await open_polling(port)
            exact = await post(port, sid, "4" + "x" * 999)
            too_big = await post(port, sid, "4" + "y" * 1000)
            refused = engine.counters.refused_requests
            after = await get(port, sid)
    assert (exact.status, exact.text) == (200, "ok")
    assert too_big.status == 413
    assert refused == 1
    assert after.status == 400 or after.packets[-1] == "1"


async def test_eio_websocket_max_payload_closes_with_1009() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine(max_payload=1000)) as port, ws_session(port) as (client, value):
            assert value["maxPayload"] == 1000
            await client.send("4" + "x" * 999)
            assert await client.recv_app() == "4" + "x" * 999
            await client.send("4" + "y" * 1000)
            code, _seen = await client.wait_closed()
    assert code == 1009


# ================================================================================================
# Engine.IO v4: transports, CORS, allow_request, proxies
# ================================================================================================


async def test_eio_websocket_only_refuses_polling() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine(transports=("websocket",))) as port:
            refused = await request(port, "GET", polling())
            async with ws_session(port) as (_client, value):
                assert value["upgrades"] == []
    assert_engine_error(refused, 400, 0, ERRORS[0])


async def test_eio_polling_only_advertises_no_upgrade_and_refuses_websocket() -> None:
    with trio.fail_after(GUARD):
        async with serving(echo_engine(transports=("polling",))) as port:
            opened = await request(port, "GET", polling())
            sid = json.loads(opened.text[1:])["sid"]
            with pytest.raises(WsRejected) as refused:
                await WsClient.connect(port, websocket(sid))
    assert json.loads(opened.text[1:])["upgrades"] == []
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["code"] == 0


async def test_cors_default_is_same_origin() -> None:
    """Default: an Origin that does not match the Host is refused (403, code 4); the same origin
    and requests without Origin are allowed."""
    server = trio_rooms.Server(**TIMINGS)
    with trio.fail_after(GUARD):
        async with serving(server) as port:
            target = polling(path=SIO_PATH)
            foreign = await request(port, "GET", target, headers=[("origin", "http://evil.example")])
            same = await request(port, "GET", target, headers=[("origin", f"http://127.0.0.1:{port}")])
            none = await request(port, "GET", target)
            with pytest.raises(WsRejected) as ws_refused:
                await WsClient.connect(port, websocket(path=SIO_PATH), [("origin", "http://evil.example")])
    assert_engine_error(foreign, 403, 4, ERRORS[4])
    assert "access-control-allow-origin" not in foreign.headers
    assert same.status == 200 and same.headers["access-control-allow-origin"] == f"http://127.0.0.1:{port}"
    assert none.status == 200 and "access-control-allow-origin" not in none.headers
    assert ws_refused.value.status == 403


@pytest.mark.parametrize("credentials", [None, True, False])
async def test_cors_star_list_and_credentials(
    credentials: bool | None, caplog: pytest.LogCaptureFixture
) -> None:
    """``"*"`` answers the literal ``*`` and never allows credentials, whatever ``cors_credentials``
    says (a warning when it says True): echoing any Origin, ``null`` included, with credentials
    would let any page make credentialed requests (issue 11, bug 7). Echoing an origin with
    credentials takes an explicit list or callable."""
    star_server = trio_rooms.Server(**TIMINGS, cors_allowed_origins="*", cors_credentials=credentials)
    warned = [r for r in caplog.records if "cors_credentials" in r.getMessage()]
    assert len(warned) == (1 if credentials else 0)
    with trio.fail_after(GUARD):
        async with serving(star_server) as port:
            target = polling(path=SIO_PATH)
            stars = [
                await request(port, "GET", target, headers=[("origin", origin)])
                for origin in ("http://a.example", "null")
            ]
            preflight = await request(
                port,
                "OPTIONS",
                target,
                headers=[("origin", "null"), ("access-control-request-method", "POST")],
            )
        listed = trio_rooms.Server(
            **TIMINGS, cors_allowed_origins=["http://a.example", "http://b.example"], cors_credentials=False
        )
        async with serving(listed) as port:
            target = polling(path=SIO_PATH)
            allowed = await request(port, "GET", target, headers=[("origin", "http://b.example")])
            refused = await request(port, "GET", target, headers=[("origin", "http://c.example")])
    for answer in (*stars, preflight):
        assert answer.status in (200, 204)
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
    assert allowed.status == 200 and allowed.headers["access-control-allow-origin"] == "http://b.example"
    assert "Origin" in allowed.headers["vary"]
    assert "access-control-allow-credentials" not in allowed.headers
    assert_engine_error(refused, 403, 4, ERRORS[4])


async def test_cors_preflight() -> None:
    with trio.fail_after(GUARD):
        async with serving(trio_rooms.Server(**TIMINGS, cors_allowed_origins=["http://a.example"])) as port:
            target = polling(path=SIO_PATH)
            ok = await request(
                port,
                "OPTIONS",
                target,
                headers=[
                    ("origin", "http://a.example"),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
            )
            refused = await request(port, "OPTIONS", target, headers=[("origin", "http://c.example")])
            # The session's requests carry the CORS headers too.
            sid = await open_polling(port, SIO_PATH, headers=[("origin", "http://a.example")])
            pushed = await request(
                port, "POST", polling(sid, SIO_PATH), "40", headers=[("origin", "http://a.example")]
            )
    assert ok.status == 204 and ok.body == b""
    assert ok.headers["access-control-allow-origin"] == "http://a.example"
    assert {m.strip() for m in ok.headers["access-control-allow-methods"].split(",")} >= {"GET", "POST"}
    assert ok.headers["access-control-allow-headers"] == "content-type"
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert refused.status == 403
    assert pushed.status == 200 and pushed.headers["access-control-allow-origin"] == "http://a.example"


async def test_allow_request_refusal_is_403_json() -> None:
    seen: list[str] = []

    async def allow(request: HttpRequest) -> bool:
        seen.append(request.query.get("transport", ""))
        return request.query.get("token") == "good"

    with trio.fail_after(GUARD):
        async with serving(trio_rooms.Server(**TIMINGS, allow_request=allow)) as port:
            refused = await request(port, "GET", polling(path=SIO_PATH))
            allowed = await request(port, "GET", polling(path=SIO_PATH) + "&token=good")
            with pytest.raises(WsRejected) as ws_refused:
                await WsClient.connect(port, websocket(path=SIO_PATH))
    assert_engine_error(refused, 403, 4, ERRORS[4])
    assert allowed.status == 200
    assert ws_refused.value.status == 403
    assert json.loads(ws_refused.value.body) == {"code": 4, "message": ERRORS[4]}
    assert seen == ["polling", "polling", "websocket"]


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (("127.0.0.1",), "203.0.113.7", "203.0.113.7"),
        (("127.0.0.0/8",), "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the right-most untrusted hop
        ((), "203.0.113.7", "127.0.0.1"),  # no trusted proxy: the header is not believed
    ],
)
async def test_trusted_proxy_forwarded_address(
    trusted: tuple[str, ...], forwarded: str, expected: str
) -> None:
    server = trio_rooms.Server(**TIMINGS, trusted_proxies=trusted)
    addresses: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        addresses.append(socket.handshake.address)

    with trio.fail_after(GUARD):
        async with serving(server) as port:
            client = await WsClient.connect(port, websocket(path=SIO_PATH), [("x-forwarded-for", forwarded)])
            await client.recv()
            await client.send("40")
            assert str(await client.recv_app()).startswith("40{")
            await client.aclose()
            sid = await open_polling(port, SIO_PATH, headers=[("x-forwarded-for", forwarded)])
            await post(port, sid, "40", SIO_PATH)
            assert (await get(port, sid, SIO_PATH)).text.startswith("40{")
    assert addresses == [expected, expected]


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (("127.0.0.1",), "203.0.113.7", "203.0.113.7"),
        ((), "203.0.113.7", "127.0.0.1"),  # no trusted proxy: the peer
    ],
)
async def test_allow_request_sees_the_client_address(
    trusted: tuple[str, ...], forwarded: str, expected: str
) -> None:
    # As Node's allowRequest (req.socket.remoteAddress): the address socket.handshake.address gets,
    # so that a request can be refused by its address; the refused one's connection_error sees it.
    seen: list[str] = []
    handshakes: list[str] = []
    refused_addresses: list[str] = []

    async def allow(request: HttpRequest) -> bool:
        seen.append(request.address)
        return request.query.get("blocked") is None

    server = trio_rooms.Server(**TIMINGS, trusted_proxies=trusted, allow_request=allow)
    server.engine.on("connection_error", lambda err: refused_addresses.append(err.request.address))

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        handshakes.append(socket.handshake.address)

    forwarded_for = [("x-forwarded-for", forwarded)]
    with trio.fail_after(GUARD):
        async with serving(server) as port:
            client = await WsClient.connect(port, websocket(path=SIO_PATH), forwarded_for)
            await client.recv()
            await client.send("40")
            assert str(await client.recv_app()).startswith("40{")
            await client.aclose()
            sid = await open_polling(port, SIO_PATH, headers=forwarded_for)
            await post(port, sid, "40", SIO_PATH)
            assert (await get(port, sid, SIO_PATH)).text.startswith("40{")
            refused = await request(port, "GET", polling(path=SIO_PATH) + "&blocked=1", headers=forwarded_for)
    assert_engine_error(refused, 403, 4, ERRORS[4])
    assert handshakes == [expected, expected]
    assert seen == [expected, expected, expected]
    assert refused_addresses == [expected]


# ================================================================================================
# Socket.IO v5
# ================================================================================================


async def test_sio_connect_main_namespace() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port, ws_session(port, SIO_PATH) as (client, opened):
            await client.send("40")
            connected = await client.recv_app()
            auth = await client.recv_app()
    assert isinstance(connected, str) and connected.startswith("40")
    handshake = json.loads(connected[2:])
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)
    assert handshake["sid"] != opened["sid"]  # the socket id is not the Engine.IO sid
    assert auth == '42["auth",{}]'


async def test_sio_connect_with_payload_and_custom_namespace() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port, ws_session(port, SIO_PATH) as (client, opened):
            await client.send('40{"token":"123"}')
            main = await client.recv_app()
            assert await client.recv_app() == '42["auth",{"token":"123"}]'
            await client.send("40/custom,")
            custom = await client.recv_app()
            assert await client.recv_app() == '42/custom,["auth",{}]'
        async with serving(reference_server()) as port, ws_session(port, SIO_PATH) as (client, _):
            await client.send('40/custom,{"token":"abc"}')
            assert str(await client.recv_app()).startswith("40/custom,{")
            assert await client.recv_app() == '42/custom,["auth",{"token":"abc"}]'
    assert isinstance(custom, str) and custom.startswith("40/custom,")
    sids = {json.loads(str(main)[2:])["sid"], json.loads(custom[len("40/custom,") :])["sid"], opened["sid"]}
    assert len(sids) == 3  # one fresh id per namespace socket, none equal to the Engine.IO sid


async def test_sio_unknown_namespace() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port, ws_session(port, SIO_PATH) as (client, _):
            await client.send("40/random")
            assert await client.recv_app() == '44/random,{"message":"Invalid namespace"}'
            # The connection itself stays usable.
            await client.send("40")
            assert str(await client.recv_app()).startswith("40{")


async def test_sio_connect_error_from_middleware() -> None:
    server = reference_server()

    @server.use
    async def refuse(socket: trio_rooms.Socket) -> None:
        if socket.handshake.auth.get("token") != "ok":
            raise trio_rooms.ConnectionRefused("Not authorized", {"retry": False})

    with trio.fail_after(GUARD):
        async with serving(server) as port, ws_session(port, SIO_PATH) as (client, _):
            await client.send("40")
            assert await client.recv_app() == '44{"message":"Not authorized","data":{"retry":false}}'
            await client.send('40{"token":"ok"}')
            assert str(await client.recv_app()).startswith("40{")


async def test_sio_invalid_first_packet_closes_at_once() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server(**SLOW_PINGS)) as port:
            for first in ("4abc", '42["message"]', "43", "431[]", b"\x01"):
                async with ws_session(port, SIO_PATH) as (client, _):
                    await client.send(first)
                    start = trio.current_time()
                    _code, seen = await client.wait_closed()
                    assert seen == [], first
                    assert trio.current_time() - start < PROMPT, first


async def test_sio_disconnect_as_first_packet_closes_at_once() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server(**SLOW_PINGS)) as port, ws_session(port, SIO_PATH) as (client, _):
            await client.send("41")
            with trio.move_on_after(PROMPT):
                _code, seen = await client.wait_closed()
                assert seen == []
                return
    raise AssertionError("the connection stayed open after a DISCONNECT sent before any CONNECT")


async def test_sio_connect_timeout() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server(connect_timeout=0.4)) as port:
            async with ws_session(port, SIO_PATH) as (client, _):
                start = trio.current_time()
                _code, _seen = await client.wait_closed()
                assert within(trio.current_time() - start, 0.4)
            sid = await open_polling(port, SIO_PATH)
            start = trio.current_time()
            while (response := await get(port, sid, SIO_PATH)).text == "2":
                await post(port, sid, "3", SIO_PATH)
            assert response.text == "1"
            assert within(trio.current_time() - start, 0.4)


async def test_sio_disconnect_from_client() -> None:
    server = reference_server()
    reasons: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("disconnect")
        async def gone(reason: str) -> None:
            reasons.append(reason)

    with trio.fail_after(GUARD):
        async with serving(server) as port, sio_client(port) as client:
            await client.send("41")
            assert await client.recv() == "2"  # nothing else: no answer to a DISCONNECT
            await client.send("3")
            assert reasons == ["client namespace disconnect"]
            # Connect then disconnect a custom namespace; the main one keeps working.
            await client.send("40")
            assert str(await client.recv_app()).startswith("40{")
            assert await client.recv_app() == '42["auth",{}]'
            await client.send("40/custom,")
            assert str(await client.recv_app()).startswith("40/custom,{")
            assert await client.recv_app() == '42/custom,["auth",{}]'
            await client.send("41/custom,")
            await client.send('42["message","message to main namespace"]')
            assert await client.recv_app() == '42["message-back","message to main namespace"]'


async def test_sio_disconnect_from_server() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port, sio_client(port) as client:
            await client.send('42["leave-me"]')
            assert await client.recv_app() == "41"
            await client.send('42["message"]')  # the namespace is gone: an event there is malformed
            _code, seen = await client.wait_closed()
            assert seen == []


async def test_sio_disconnect_close_answers_pending_get_with_close() -> None:
    """``socket.disconnect(close=True)``: DISCONNECT, then the pending GET ends with a close."""
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port:
            sid = await open_polling(port, SIO_PATH)
            await post(port, sid, "40", SIO_PATH)
            answer = await get(port, sid, SIO_PATH)
            packets = answer.packets
            if len(packets) == 1:
                packets += (await get(port, sid, SIO_PATH)).packets
            assert packets[0].startswith("40{") and packets[1] == '42["auth",{}]'
            held: list[Response] = []

            async def poll() -> None:
                held.append(await get(port, sid, SIO_PATH))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(0.05)
                await post(port, sid, '42["close-me"]', SIO_PATH)
            after = await get(port, sid, SIO_PATH)
    assert held[0].packets == ["41", "1"]
    assert after.status == 400


async def test_sio_event_plain_text() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port, sio_client(port) as client:
            await client.send('42["message",1,"2",{"3":[true]}]')
            assert await client.recv_app() == '42["message-back",1,"2",{"3":[true]}]'


async def test_sio_binary_event() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port, sio_client(port) as client:
            await client.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
            await client.send(b"\x01\x02\x03")
            await client.send(b"\x04\x05\x06")
            assert await client.recv_app() == (
                '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
            )
            assert await client.recv_app() == b"\x01\x02\x03"
            assert await client.recv_app() == b"\x04\x05\x06"


async def test_sio_ack_and_binary_ack() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port, sio_client(port) as client:
            await client.send('42456["message-with-ack",1,"2",{"3":[false]}]')
            assert await client.recv_app() == '43456[1,"2",{"3":[false]}]'
            await client.send('42457["message-with-ack"]')
            assert await client.recv_app() == "43457[]"  # an ACK payload is an array, possibly empty
            await client.send(
                '452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
            )
            await client.send(b"\x01\x02\x03")
            await client.send(b"\x04\x05\x06")
            assert await client.recv_app() == (
                '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
            )
            assert await client.recv_app() == b"\x01\x02\x03"
            assert await client.recv_app() == b"\x04\x05\x06"


async def test_sio_server_emit_with_ack_answered_by_ack_and_binary_ack() -> None:
    server = reference_server()
    answers: list[Any] = []
    both_answered = trio.Event()

    @server.of("/admin").on("connection")
    async def on_admin(socket: trio_rooms.Socket) -> None:
        @socket.on("ask")
        async def ask() -> None:
            answers.append(await socket.emit_with_ack("question", "first", timeout=2))
            answers.append(await socket.emit_with_ack("question", "second", timeout=2))
            both_answered.set()

    with trio.fail_after(GUARD):
        async with serving(server) as port, sio_client(port) as client:
            await client.send("40/admin,")
            assert str(await client.recv_app()).startswith("40/admin,{")
            await client.send('42/admin,["ask"]')
            first = str(await client.recv_app())
            match = re.fullmatch(r'42/admin,(\d+)\["question","first"\]', first)
            assert match is not None, first
            await client.send(f'43/admin,{match[1]}["bar"]')
            second = str(await client.recv_app())
            match = re.fullmatch(r'42/admin,(\d+)\["question","second"\]', second)
            assert match is not None, second
            await client.send(f'461-/admin,{match[1]}["bar",{{"_placeholder":true,"num":0}}]')
            await client.send(b"\x01\x02\x03\x04")
            with trio.move_on_after(1):
                await both_answered.wait()
    assert answers == ["bar", ("bar", b"\x01\x02\x03\x04")]


@pytest.mark.parametrize(
    "malformed",
    [
        '42{"a":1}',  # EVENT payload is not an array
        "42[]",  # EVENT payload is an empty array
        '42"foo"',
        "42",  # no payload
        "43{}",  # ACK payload is not an array
        '4312{"a":1}',
        "47",  # unknown packet type
        "4abc",
        '42/nope,["message"]',  # an event for a namespace that is not connected
        "40",  # a second CONNECT to the same namespace
        '42abc["message"]',  # bad ack id
        '451-["message",{"_placeholder":true,"num":3}]',  # placeholder out of range
    ],
)
async def test_sio_malformed_packet_closes_connection(malformed: str) -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server(**SLOW_PINGS)) as port, sio_client(port) as client:
            await client.send(malformed)
            if malformed.startswith("451-"):
                await client.send(b"\x00")
            start = trio.current_time()
            _code, seen = await client.wait_closed()
            assert seen == []
            assert trio.current_time() - start < PROMPT


RESERVED: Final = ("connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener")


async def test_sio_reserved_event_names_cannot_be_emitted() -> None:
    server = reference_server()
    refused: list[str] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        for name in (
            "connect",
            "connect_error",
            "disconnect",
            "disconnecting",
            "newListener",
            "removeListener",
        ):
            try:
                await socket.emit(name)
            except ValueError:
                refused.append(name)
        await socket.emit("done")

    with trio.fail_after(GUARD):
        async with serving(server) as port, sio_client(port) as client:
            assert await client.recv_app() == '42["done"]'  # nothing reserved went out before it
    assert refused == [
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    ]
    with pytest.raises(ValueError):
        await server.emit("disconnect")


def test_sio_namespace_names_cannot_contain_a_comma() -> None:
    server = trio_rooms.Server(**TIMINGS)
    try:
        server.of("/a,b")
    except ValueError:
        return
    raise AssertionError('Server.of("/a,b") was accepted')


async def test_sio_sample_session_polling_then_websocket() -> None:
    """The specs' sample session, byte for byte where the spec fixes the bytes."""
    server = reference_server()
    events: list[tuple[str, Any]] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        @socket.on("hello")
        async def hello() -> None:
            events.append(("hello", None))

        @socket.on("world")
        async def world() -> None:
            events.append(("world", None))

        @socket.on("hey-me")
        async def hey_me() -> None:
            await socket.emit("hey", "Jude")

    @server.of("/admin").on("connection")
    async def on_admin(socket: trio_rooms.Socket) -> None:
        @socket.on("tellme")
        async def tellme() -> bytes:
            return b"\x01\x02"

    with trio.fail_after(GUARD):
        async with serving(server) as port:
            opened = await request(port, "GET", polling(path=SIO_PATH) + "&t=N8hyd6w")
            assert opened.status == 200 and opened.headers["content-type"] == "text/plain; charset=UTF-8"
            sid = json.loads(opened.text[1:])["sid"]
            assert (await post(port, sid, "40", SIO_PATH)).text == "ok"
            packets: list[str] = []
            while len(packets) < 2:
                packets += (await get(port, sid, SIO_PATH)).packets
            assert re.fullmatch(r'40\{"sid":"[^"]+"\}', packets[0])
            assert packets[1] == '42["auth",{}]'
            await post(port, sid, '42["hey-me"]', SIO_PATH)
            assert (await get(port, sid, SIO_PATH)).text == '42["hey","Jude"]'
            pushed = await post(port, sid, '42["hello"]\x1e42["world"]', SIO_PATH)
            assert (pushed.status, pushed.text) == (200, "ok")
            client = await upgrade(port, sid, SIO_PATH)
            try:
                await client.send("40/admin,")
                assert re.fullmatch(r'40/admin,\{"sid":"[^"]+"\}', str(await client.recv_app()))
                await client.send('42/admin,1["tellme"]')
                assert await client.recv_app() == '461-/admin,1[{"_placeholder":true,"num":0}]'
                assert await client.recv_app() == b"\x01\x02"
                assert await client.recv() == "2"
                await client.send("3")
                await client.send("1")
                _code, seen = await client.wait_closed()
                assert seen == []
            finally:
                await client.aclose()
    assert events == [("hello", None), ("world", None)]


async def test_sio_namespace_socket_id_is_not_engine_sid_over_polling() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port:
            sid = await open_polling(port, SIO_PATH)
            await post(port, sid, "40", SIO_PATH)
            connected = (await get(port, sid, SIO_PATH)).packets[0]
    socket_id = json.loads(connected[2:])["sid"]
    assert socket_id != sid and len(socket_id) >= 20


async def test_sio_binary_over_polling_is_base64() -> None:
    with trio.fail_after(GUARD):
        async with serving(reference_server()) as port:
            sid = await open_polling(port, SIO_PATH)
            await post(port, sid, "40", SIO_PATH)
            packets: list[str] = []
            while len(packets) < 2:
                packets += (await get(port, sid, SIO_PATH)).packets
            body = (
                '451-["message",{"_placeholder":true,"num":0}]\x1eb'
                + base64.b64encode(b"\xff\x00\x10").decode()
            )
            assert (await post(port, sid, body, SIO_PATH)).text == "ok"
            packets = []
            while len(packets) < 2:
                packets += [p for p in (await get(port, sid, SIO_PATH)).packets if p != "2"]
    assert packets == ['451-["message-back",{"_placeholder":true,"num":0}]', "b/wAQ"]


async def test_server_close_during_upgrade_reaches_the_client_on_the_websocket() -> None:
    """A server-decided close between 3probe and 5: the DISCONNECT goes out on the new WebSocket,
    where the client now listens, then the WebSocket is closed."""
    server = reference_server()
    with trio.fail_after(GUARD):
        async with serving(server) as port:
            sid = await open_polling(port, SIO_PATH)
            assert (await post(port, sid, "40", SIO_PATH)).text == "ok"
            assert (await get(port, sid, SIO_PATH)).text.startswith("40")
            client = await WsClient.connect(port, websocket(sid, SIO_PATH))
            try:
                await client.send("2probe")
                assert await client.recv() == "3probe"
                await server.disconnect_sockets(close=True)
                await client.send("5")
                received = []
                with pytest.raises(WsClosed):
                    while True:
                        received.append(await client.recv())
                assert "41" in received
            finally:
                await client.aclose()


async def test_server_shutdown_closes_each_websocket_with_1001() -> None:
    """On shutdown every WebSocket, direct or upgraded from polling, gets close code 1001 ("going
    away"), after the DISCONNECT of its namespaces (issue 11, bug 6: it was 1000)."""
    server = reference_server(**SLOW_PINGS)
    with trio.fail_after(GUARD):
        serving_scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[int]) -> None:
            with serving_scope:
                await serve_port(server, task_status=task_status)

        async with trio.open_nursery() as nursery:
            port = await nursery.start(run)
            codes: list[tuple[str, int]] = []
            async with ws_session(port, SIO_PATH) as (direct, _):
                await direct.send("40")
                assert str(await direct.recv_app()).startswith("40{")
                sid = await open_polling(port, SIO_PATH)
                assert (await post(port, sid, "40", SIO_PATH)).status == 200
                upgraded = await upgrade(port, sid, SIO_PATH)
                try:
                    serving_scope.cancel()
                    for name, client in (("direct", direct), ("upgraded", upgraded)):
                        code, _seen = await client.wait_closed()
                        codes.append((name, code))
                finally:
                    await upgraded.aclose()
            assert codes == [("direct", 1001), ("upgraded", 1001)]
