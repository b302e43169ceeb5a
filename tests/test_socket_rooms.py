"""A socket's rooms: the set operators of ``socket.rooms``, and rooms joined (or left) in middleware,
before the socket is connected: kept once it connects, dropped when it is refused.

Our Trio Client against our Server on real TCP (127.0.0.1, port 0), each test under ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from helpers.serving import serving_url

import trio_rooms
from trio_rooms.client import Client, open_client
from trio_rooms.client.state import ClientDisconnectReason

FAST: dict[str, Any] = {"transports": ("websocket",), "reconnection_delay": 0.2, "randomization_factor": 0.0}


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - polls state another task changes
            await trio.sleep(0.01)


def adapter_rooms(server: trio_rooms.Server) -> set[str]:
    return set(server.of("/").adapter.rooms)


# -- the set operators --------------------------------------------------------------------------------


async def test_rooms_set_operators_give_frozensets() -> None:
    server = trio_rooms.Server()
    results: dict[str, Any] = {}

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        socket.join(["a", "b"])
        rooms = socket.rooms
        results.update(
            own=socket.id,
            minus=rooms - {socket.id},
            rminus={"a", "z"} - rooms,
            and_=rooms & {"a", "z"},
            or_=rooms | {"z"},
            xor=rooms ^ {"a", "z"},
            equal=rooms == {socket.id, "a", "b"},
            disjoint=rooms.isdisjoint({"z"}),
        )

    with trio.fail_after(10):
        async with serving_url(server) as url, open_client(url, **FAST):
            await until(lambda: bool(results))
    own = results.pop("own")
    assert results == {
        "minus": frozenset({"a", "b"}),
        "rminus": frozenset({"z"}),
        "and_": frozenset({"a"}),
        "or_": frozenset({own, "a", "b", "z"}),
        "xor": frozenset({own, "b", "z"}),
        "equal": True,
        "disjoint": True,
    }
    for name in ("minus", "rminus", "and_", "or_", "xor"):
        assert type(results[name]) is frozenset, name


# -- joining in middleware ----------------------------------------------------------------------------


async def test_rooms_joined_in_middleware_are_kept_once_connected() -> None:
    server = trio_rooms.Server()
    seen: dict[str, Any] = {}
    news: list[str] = []

    @server.use
    async def first(socket: trio_rooms.Socket) -> None:
        socket.join(["vip", "gone"])
        socket.leave("gone")  # undone before it connects: never joined
        seen["in middleware"] = set(socket.rooms)

    @server.use
    async def second(socket: trio_rooms.Socket) -> None:
        socket.join("team")

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        seen["connected"] = (socket.id, set(socket.rooms))

        @socket.on("disconnecting")
        async def on_disconnecting(reason: str) -> None:
            seen["disconnecting"] = set(socket.rooms)

        @socket.on("disconnect")
        async def on_disconnect(reason: str) -> None:
            socket.join("late")  # after a disconnect: nothing happens
            seen["disconnect"] = set(socket.rooms)

    with trio.fail_after(10):
        async with serving_url(server) as url:
            async with open_client(url, **FAST) as client:

                @client.on("news")
                async def on_news(text: str) -> None:
                    news.append(text)

                await until(lambda: "connected" in seen)
                await server.to("vip").emit("news", "for vip")
                await server.to("gone").emit("news", "for gone")
                await server.to("team").emit("news", "for team")
                await until(lambda: len(news) == 2)
                own = client.id
                assert own is not None
            await until(lambda: "disconnect" in seen)
            assert adapter_rooms(server) == set()
    assert news == ["for vip", "for team"]
    assert seen == {
        "in middleware": {"vip"},
        "connected": (own, {own, "vip", "team"}),
        "disconnecting": {own, "vip", "team"},
        "disconnect": set(),
    }


@pytest.mark.parametrize("refusal", [trio_rooms.ConnectionRefused("no"), RuntimeError("broken")])
async def test_a_refused_connection_leaves_no_room(refusal: Exception) -> None:
    server = trio_rooms.Server()
    later: list[trio_rooms.Socket] = []

    @server.use
    async def join_then_refuse(socket: trio_rooms.Socket) -> None:
        socket.join(["vip", socket.handshake.auth["room"]])
        later.append(socket)
        raise refusal

    with trio.fail_after(10):
        async with serving_url(server) as url:
            for room in ("red", "blue"):
                with pytest.raises(trio_rooms.NamespaceRejected):
                    async with open_client(url, **FAST, auth={"room": room}):
                        pytest.fail("connected though refused")
            await until(lambda: len(later) == 2 and not any(s.connected for s in later))
            await trio.sleep(0.05)
            assert adapter_rooms(server) == set()
            assert server.of("/").adapter.sids == {}
            for socket in later:  # a refused socket joins nothing afterwards either
                socket.join("after")
                assert set(socket.rooms) == set()
            assert adapter_rooms(server) == set()


async def test_middleware_of_a_recovered_socket_sees_and_changes_its_rooms() -> None:
    recovery = trio_rooms.ConnectionStateRecovery(max_disconnection_duration=10.0, skip_middlewares=False)
    server = trio_rooms.Server(connection_state_recovery=recovery)
    in_middleware: list[tuple[bool, set[str]]] = []
    connected: list[tuple[bool, set[str]]] = []
    gone = trio.Event()

    @server.use
    async def middleware(socket: trio_rooms.Socket) -> None:
        in_middleware.append((socket.recovered, set(socket.rooms)))
        if socket.recovered:
            socket.leave("first")
            socket.join("again")
        else:
            socket.join("first")

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        if not socket.recovered:
            socket.join("handler")
        connected.append((socket.recovered, set(socket.rooms)))

        @socket.on("disconnect")
        async def on_disconnect(reason: str) -> None:
            gone.set()

    with trio.fail_after(20):
        async with serving_url(server) as url, open_client(url, **FAST) as client:
            ticks: list[int] = []

            @client.on("tick")
            async def on_tick(n: int) -> None:
                ticks.append(n)

            own = client.id
            assert own is not None
            await until(lambda: len(connected) == 1)
            await server.to("first").emit("tick", 0)  # the client has an offset to recover from
            await until(lambda: ticks == [0])
            await drop(client)
            await gone.wait()
            await until(lambda: client.connected and len(connected) == 2)
            assert client.recovered and client.id == own
            assert adapter_rooms(server) == {own, "handler", "again"}
    assert in_middleware == [(False, set()), (True, {own, "first", "handler"})]
    assert connected == [(False, {own, "first", "handler"}), (True, {own, "handler", "again"})]


async def drop(client: Client) -> None:
    """Close the client's transport abruptly (a recoverable "transport close" on the server)."""
    engine = client._engine
    assert engine is not None
    engine.close(ClientDisconnectReason.TRANSPORT_CLOSE)
    await trio.lowlevel.checkpoint()
