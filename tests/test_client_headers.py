"""The Trio Client's extra HTTP headers and query (``headers=``, ``query=``; socket.io-client's
``extraHeaders`` and ``query``): sent with every Engine.IO request, across the upgrade and
reconnections, seen by the server's ``allow_request``, middleware and Engine.IO ``headers`` hook, on
real TCP (127.0.0.1, port 0); and refused up front when HTTP cannot carry them or they are the
client's own.

Real sockets, so real time: every I/O test runs under ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from helpers.serving import serving_url
from test_client_hooks import FAST, GUARD, TRANSPORTS

import trio_rooms
from trio_rooms.client import Client, open_client
from trio_rooms.client.http import MAX_EXTRA_FIELDS, MAX_EXTRAS_SIZE, request_extras

KEY = "k-123"
# A value that needs percent-encoding in a query string (space, "&", "=", "%", "+", "#", "/").
TOKEN = "a b&c=d%e+f#g/h"


@dataclass(frozen=True)
class Seen:
    """One Engine.IO request, as the server's ``headers`` hook saw it."""

    method: str
    websocket: bool
    sid: str | None
    key: str | None
    query: dict[str, str]


class Gate:
    """A server that admits a session only with the API key header and the token, and records every
    request its Engine.IO ``headers`` hook sees and every handshake its middleware sees."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.allowed: list[tuple[str | None, str | None]] = []
        self.handshakes: list[tuple[str | None, str | None]] = []
        self.server = trio_rooms.Server(allow_request=self.allow_request)
        self.server.engine.on("headers", self.record)

        @self.server.use
        async def middleware(socket: trio_rooms.Socket) -> None:
            await trio.lowlevel.checkpoint()
            handshake = socket.handshake
            self.handshakes.append((handshake.headers.get("x-api-key"), handshake.query.get("token")))

        @self.server.on("connection")
        async def on_connection(socket: trio_rooms.Socket) -> None:
            @socket.on("echo")
            async def echo(*args: Any) -> tuple[Any, ...]:
                return args

            @socket.on("drop")
            async def drop() -> None:
                # Close the connection under the client (no DISCONNECT packet): it reconnects.
                socket._session.close(trio_rooms.DisconnectReason.TRANSPORT_CLOSE)
                await trio.lowlevel.checkpoint()

    async def allow_request(self, request: trio_rooms.HttpRequest) -> bool:
        await trio.lowlevel.checkpoint()
        key, token = request.header("x-api-key"), request.query.get("token")
        self.allowed.append((key, token))
        return key == KEY and token == TOKEN

    def record(self, headers: dict[str, Any], request: trio_rooms.HttpRequest) -> None:
        self.requests.append(
            Seen(
                request.method,
                request.wants_websocket(),
                request.query.get("sid"),
                request.header("x-api-key"),
                dict(request.query),
            )
        )


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (polled; the test's ``fail_after`` bounds the wait)."""
    for _ in range(2000):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("the condition never held")


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_headers_and_query_reach_every_request_across_upgrade_and_reconnection(
    transports: tuple[str, ...],
) -> None:
    """The server's ``allow_request`` admits the client by its header and query; its middleware
    finds them in ``socket.handshake``; its ``headers`` hook sees them on every request (polling
    GETs and POSTs, the WebSocket handshake or upgrade), before and after a reconnection."""
    gate = Gate()
    with trio.fail_after(GUARD):
        async with serving_url(gate.server) as url:
            with pytest.raises(trio_rooms.Disconnected):  # without them: refused (403)
                async with open_client(url, transports=transports, reconnection=False):
                    pytest.fail("admitted without the key")
            assert gate.allowed == [(None, None)]
            extras: dict[str, Any] = {"headers": {"X-Api-Key": KEY}, "query": {"token": TOKEN}}
            async with open_client(url, transports=transports, **extras, **FAST) as client:
                reconnected = trio.Event()

                @client.on("connect")
                async def on_connect() -> None:
                    if len(gate.handshakes) == 2:
                        reconnected.set()

                for n in range(3):
                    assert await client.emit_with_ack("echo", n) == n
                if "websocket" in transports:
                    await eventually(lambda: client.transport == "websocket")
                await client.emit("drop")
                await reconnected.wait()
                for n in range(3):
                    assert await client.emit_with_ack("echo", n) == n
                if "websocket" in transports:
                    await eventually(lambda: client.transport == "websocket")
    assert gate.allowed[1:] == [(KEY, TOKEN), (KEY, TOKEN)]  # one new session per connection
    assert gate.handshakes == [(KEY, TOKEN), (KEY, TOKEN)]
    requests = gate.requests
    assert requests, "the headers hook saw no request"
    for seen in requests:
        assert seen.key == KEY, seen
        assert seen.query["token"] == TOKEN and seen.query["EIO"] == "4", seen
    sessions = {seen.sid for seen in requests if seen.sid is not None}
    if transports == ("websocket",):
        assert [seen.websocket for seen in requests] == [True, True]  # one per connection
    else:
        assert len(sessions) == 2  # the same headers after the reconnection
        assert {seen.method for seen in requests} == {"GET", "POST"}
        upgrades = [seen for seen in requests if seen.websocket]
        if "websocket" in transports:  # the upgrade request of each session
            assert sorted(seen.sid or "" for seen in upgrades) == sorted(sessions)
        else:
            assert upgrades == []


async def test_the_options_are_copied_when_the_client_is_made() -> None:
    """The mappings are read once: changing them later changes nothing."""
    gate = Gate()
    headers, query = {"X-Api-Key": KEY}, {"token": TOKEN}
    with trio.fail_after(GUARD):
        async with serving_url(gate.server) as url:
            client = Client(url, headers=headers, query=query, **FAST)
            headers["X-Api-Key"] = query["token"] = "changed"
            async with client:
                assert await client.emit_with_ack("echo", 1) == 1
    assert gate.handshakes == [(KEY, TOKEN)]


BAD_HEADERS: list[Any] = [
    pytest.param({"X-Key": "a\r\nInjected: 1"}, id="CRLF in a value"),
    pytest.param({"X-Key": "a\nb"}, id="LF in a value"),
    pytest.param({"X-Key": "a\x00b"}, id="NUL in a value"),
    pytest.param({"X-Key": "caf\u00e9"}, id="non-ASCII value"),
    pytest.param({"X-K\u00e9y": "a"}, id="non-ASCII name"),
    pytest.param({"X-Key\r\n": "a"}, id="CRLF in a name"),
    pytest.param({"X Key": "a"}, id="space in a name"),
    pytest.param({"X:Key": "a"}, id="colon in a name"),
    pytest.param({"": "a"}, id="empty name"),
    pytest.param({"X-Key": " padded"}, id="leading space"),
    pytest.param({"X-Key": "a", "x-key": "b"}, id="twice in two cases"),
    *(
        pytest.param({name: "x"}, id=f"owned {name}")
        for name in (
            "Host",
            "content-length",
            "Content-Type",
            "Transfer-Encoding",
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Key",
            "sec-websocket-protocol",
            "Accept",
        )
    ),
]
BAD_QUERIES: list[Any] = [
    pytest.param({"token": "a\r\nb"}, id="CRLF"),
    pytest.param({"token": "\x00"}, id="NUL"),
    pytest.param({"token": "caf\u00e9"}, id="non-ASCII value"),
    pytest.param({"t\u00f6ken": "a"}, id="non-ASCII name"),
    pytest.param({"": "a"}, id="empty name"),
    *(pytest.param({name: "x"}, id=f"reserved {name}") for name in ("EIO", "transport", "sid", "t")),
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_bad_headers_are_refused_up_front(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Client("http://127.0.0.1:1", headers=headers)


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_query_parameters_are_refused_up_front(query: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Client("http://127.0.0.1:1", query=query)


def test_types_and_bounds() -> None:
    """Not a mapping of str to str: TypeError; more than the size or field bounds: ValueError; the
    bounds themselves are accepted."""
    for bad in ({"X-Key": 1}, {1: "a"}, [("X-Key", "a")], "X-Key: a"):
        with pytest.raises(TypeError):
            Client("http://127.0.0.1:1", headers=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Client("http://127.0.0.1:1", query=bad)  # type: ignore[arg-type]
    name = "X-Big"
    fits = {name: "v" * (MAX_EXTRAS_SIZE - len(name) - 4)}
    assert request_extras(fits, None) == ((*fits.items(),), "")
    with pytest.raises(ValueError, match="bytes"):
        Client("http://127.0.0.1:1", headers={name: "v" * (MAX_EXTRAS_SIZE - len(name) - 3)})
    half = MAX_EXTRAS_SIZE // 2
    with pytest.raises(ValueError, match="bytes"):  # together: headers and query
        Client("http://127.0.0.1:1", headers={name: "v" * half}, query={"q": "v" * half})
    many = {f"X-{n}": "v" for n in range(MAX_EXTRA_FIELDS)}
    assert len(request_extras(many, None)[0]) == MAX_EXTRA_FIELDS
    with pytest.raises(ValueError, match="at most"):
        Client("http://127.0.0.1:1", headers={**many, "X-One-More": "v"})
    with pytest.raises(ValueError, match="at most"):
        Client("http://127.0.0.1:1", query={f"q{n}": "v" for n in range(MAX_EXTRA_FIELDS + 1)})
    assert request_extras(None, {"token": TOKEN, "a": ""}) == ((), "&token=a%20b%26c%3Dd%25e%2Bf%23g%2Fh&a=")
