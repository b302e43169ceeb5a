"""Prometheus metrics (issue 16): ``Server(metrics=...)`` answers ``GET /metrics`` on the native front
door and through ``ASGIApp`` under a real Hypercorn, scraped over real HTTP and parsed with
``prometheus_client``'s own parser: every metric present with its type, and moving as clients connect,
join, receive broadcasts and acks, and send malformed packets. Plus the policy (403), two servers in
one process, and the counting itself (once per broadcast, exact) on the in-memory adapter.

Real sockets on 127.0.0.1, so real time: every I/O test runs under ``trio.fail_after``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from helpers.asgi_harness import require_hypercorn, serve_asgi
from helpers.fakes import FakeNamespace
from helpers.raw_clients import SIO_PATH, WsClient, open_polling, post, request, websocket
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

import trio_rooms
from trio_rooms.adapter.memory import YIELD_EVERY, InMemoryAdapter
from trio_rooms.metrics import ServerCollector
from trio_rooms.protocol.encoded import Encoded
from trio_rooms.protocol.socketio import event_packet
from trio_rooms.stats import ACK_BUCKETS, Counters
from trio_rooms.types import BroadcastOptions, SocketId

GUARD = 30.0

#: Every metric of a server, by family name (the parser drops a counter's ``_total``), with its type.
TYPES = {
    "trio_rooms_connections": "gauge",
    "trio_rooms_sockets": "gauge",
    "trio_rooms_rooms": "gauge",
    "trio_rooms_queued_bytes": "gauge",
    "trio_rooms_connections_opened": "counter",
    "trio_rooms_deliveries": "counter",
    "trio_rooms_bytes_sent": "counter",
    "trio_rooms_slow_consumers_closed": "counter",
    "trio_rooms_volatile_dropped": "counter",
    "trio_rooms_protocol_errors": "counter",
    "trio_rooms_refused_requests": "counter",
    "trio_rooms_timed_out_requests": "counter",
    "trio_rooms_refused_child_namespaces": "counter",
    "trio_rooms_adapter_errors": "counter",
    "trio_rooms_ack_seconds": "histogram",
}


class Scrape:
    """One scrape, parsed by ``prometheus_client.parser``."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def types(self) -> dict[str, str]:
        return {name: family.type for name, family in self.families.items()}

    def value(self, sample: str, **labels: str) -> float:
        for family in self.families.values():
            for found in family.samples:
                if found.name == sample and found.labels == labels:
                    return float(found.value)
        raise KeyError(f"no sample {sample}{labels}")


async def scrape(port: int, headers: tuple[tuple[str, str], ...] = ()) -> Scrape:
    response = await request(port, "GET", "/metrics", headers=headers)
    assert response.status == 200, response
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4"), response.headers
    found = Scrape(response.text)
    assert found.types() == TYPES
    return found


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while True:
            if predicate():
                return
            await trio.sleep(0.005)


@asynccontextmanager
async def native(server: trio_rooms.Server) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def asgi(server: trio_rooms.Server) -> AsyncIterator[int]:
    require_hypercorn()
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_asgi, server)
        nursery.cancel_scope.cancel()


Door = Callable[[trio_rooms.Server], Any]
DOORS = [pytest.param(native, id="native"), pytest.param(asgi, id="asgi")]


def frame_size(event: str, *args: Any) -> int:
    """The bytes a delivery of this event counts (its WebSocket frames)."""
    return len(Encoded.of(event_packet("/", event, list(args))).frames)


# -- end to end, on both doors ----------------------------------------------------------------------
@pytest.mark.parametrize("door", DOORS)
async def test_every_metric_moves_as_clients_act(door: Door) -> None:
    server = trio_rooms.Server(metrics=True, max_queued_bytes=4096, upgrade_timeout=0.3)
    server.of("/slow")
    sockets: list[trio_rooms.Socket] = []

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        sockets.append(socket)

        @socket.on("join")
        async def join(room: str) -> str:
            socket.join(room)
            return "joined"

    stats = server.stats
    with trio.fail_after(GUARD):
        async with door(server) as port:
            m = await scrape(port)
            assert m.value("trio_rooms_connections") == 0
            assert m.value("trio_rooms_sockets", namespace="/") == 0
            assert m.value("trio_rooms_sockets", namespace="/slow") == 0
            assert m.value("trio_rooms_deliveries_total") == 0
            assert m.value("trio_rooms_ack_seconds_count") == 0
            url = f"http://127.0.0.1:{port}"
            headlines: list[str] = []
            async with (
                trio_rooms.open_client(url, transports=("websocket",), reconnection=False) as a,
                trio_rooms.open_client(url, transports=("websocket",), reconnection=False) as b,
            ):
                for client in (a, b):

                    @client.on("headline")
                    async def headline(text: str) -> None:
                        headlines.append(text)

                    @client.on("question")
                    async def question() -> int:
                        return 42

                await until(lambda: stats()["sockets"]["/"] == 2)
                # Connect: two sessions, two sockets, their own rooms, two CONNECT packets delivered.
                m = await scrape(port)
                assert m.value("trio_rooms_connections") == 2
                assert m.value("trio_rooms_connections_opened_total") == 2
                assert m.value("trio_rooms_sockets", namespace="/") == 2
                assert m.value("trio_rooms_rooms", namespace="/") == 2
                assert m.value("trio_rooms_deliveries_total") == 2
                sent = m.value("trio_rooms_bytes_sent_total")
                assert sent > 0

                # Join: one room more; the two ACKs are deliveries too.
                assert await a.emit_with_ack("join", "news") == "joined"
                assert await b.emit_with_ack("join", "news") == "joined"
                m = await scrape(port)
                assert m.value("trio_rooms_rooms", namespace="/") == 3
                assert m.value("trio_rooms_deliveries_total") == 4
                sent = m.value("trio_rooms_bytes_sent_total")

                # A broadcast: two deliveries, two frames' bytes.
                await server.to("news").emit("headline", "x" * 100)
                await until(lambda: len(headlines) == 2)
                m = await scrape(port)
                assert m.value("trio_rooms_deliveries_total") == 6
                assert m.value("trio_rooms_bytes_sent_total") - sent == 2 * frame_size("headline", "x" * 100)

                # Acks: a broadcast with acks is one round trip; a socket's own is one more.
                assert await server.timeout(5).emit_with_ack("question") == [42, 42]
                assert await sockets[0].emit_with_ack("question") == 42
                m = await scrape(port)
                assert m.value("trio_rooms_ack_seconds_count") == 2
                assert m.value("trio_rooms_ack_seconds_bucket", le="+Inf") == 2
                assert 0 < m.value("trio_rooms_ack_seconds_sum") < 10
                assert m.value("trio_rooms_deliveries_total") == 9

                # Malformed packets: a broken Socket.IO packet, an Engine.IO packet type that is none.
                for bad in ('42["unterminated', "9"):
                    raw = await WsClient.connect(port, websocket(path=SIO_PATH))
                    await raw.recv()  # the open packet
                    await raw.send(bad)
                    await raw.wait_closed()
                await until(lambda: stats()["protocol_errors"] == 2)
                m = await scrape(port)
                assert m.value("trio_rooms_protocol_errors_total") == 2

                # A refused request (Engine.IO 3).
                refused = await request(port, "GET", f"{SIO_PATH}?EIO=3&transport=polling")
                assert refused.status == 400
                assert (await scrape(port)).value("trio_rooms_refused_requests_total") == 1

                # A polling client that never polls: its queue grows, then volatile packets are
                # dropped, then it is closed as a slow consumer.
                sid = await open_polling(port, SIO_PATH)
                assert (await post(port, sid, "40/slow,", SIO_PATH)).status == 200
                await until(lambda: stats()["sockets"]["/slow"] == 1)
                m = await scrape(port)
                assert m.value("trio_rooms_sockets", namespace="/slow") == 1
                assert m.value("trio_rooms_queued_bytes") > 0
                slow = server.of("/slow")
                await slow.emit("big", "y" * 5000)
                assert (await scrape(port)).value("trio_rooms_queued_bytes") > 5000
                await slow.volatile.emit("dropped", 1)
                await slow.emit("overflow", 1)
                m = await scrape(port)
                assert m.value("trio_rooms_volatile_dropped_total") == 1
                assert m.value("trio_rooms_slow_consumers_closed_total") == 1
                assert m.value("trio_rooms_deliveries_total") == 11  # the CONNECT to /slow and "big"

                # An upgrade whose probe never comes: cut by upgrade_timeout.
                sid = await open_polling(port, SIO_PATH)
                probe = await WsClient.connect(port, websocket(sid, SIO_PATH))
                await until(lambda: stats()["timed_out_requests"] == 1)
                assert (await scrape(port)).value("trio_rooms_timed_out_requests_total") == 1
                await probe.aclose()
            # The clients left.
            await until(lambda: stats()["sockets"]["/"] == 0)
            m = await scrape(port)
            assert m.value("trio_rooms_sockets", namespace="/") == 0
            assert m.value("trio_rooms_rooms", namespace="/") == 0
            assert m.value("trio_rooms_connections_opened_total") == 6
            assert m.value("trio_rooms_refused_child_namespaces_total") == 0
            assert m.value("trio_rooms_adapter_errors_total") == 0


@pytest.mark.parametrize("door", DOORS)
async def test_a_refused_scrape_gets_403(door: Door) -> None:
    def policy(request: trio_rooms.HttpRequest) -> bool:
        return request.address == "127.0.0.1" and request.header("authorization") == "Bearer secret"

    server = trio_rooms.Server(metrics=policy)
    with trio.fail_after(GUARD):
        async with door(server) as port:
            refused = await request(port, "GET", "/metrics")
            assert (refused.status, refused.body) == (403, b"Forbidden")
            wrong = await request(port, "GET", "/metrics", headers=[("authorization", "Bearer guess")])
            assert wrong.status == 403
            await scrape(port, headers=(("authorization", "Bearer secret"),))
            assert (await request(port, "POST", "/metrics")).status == 405
            assert (await request(port, "GET", "/elsewhere")).status == 404


async def test_an_async_policy_and_a_failing_one() -> None:
    async def admit(request: trio_rooms.HttpRequest) -> bool:
        await trio.lowlevel.checkpoint()
        return request.query.get("token") == "t"

    def broken(request: trio_rooms.HttpRequest) -> bool:
        raise RuntimeError("policy bug")

    with trio.fail_after(GUARD):
        async with native(trio_rooms.Server(metrics=admit)) as port:
            assert (await request(port, "GET", "/metrics")).status == 403
            assert (await request(port, "GET", "/metrics?token=t")).status == 200
        async with native(trio_rooms.Server(metrics=broken)) as port:
            assert (await request(port, "GET", "/metrics")).status == 500


async def test_metrics_off_leaves_the_path_to_the_fallback() -> None:
    async def fallback(request: trio_rooms.HttpRequest) -> trio_rooms.HttpResponse | None:
        await trio.lowlevel.checkpoint()
        if request.path == "/page":
            return trio_rooms.HttpResponse(200, f"page for {request.address}".encode())
        return None

    off = trio_rooms.Server(fallback=fallback)
    assert off.metrics_registry is None and off.metrics_endpoint is None
    with trio.fail_after(GUARD):
        async with native(off) as port:
            assert (await request(port, "GET", "/metrics")).status == 404
            assert (await request(port, "GET", "/page")).body == b"page for 127.0.0.1"
        async with native(trio_rooms.Server(metrics=True, fallback=fallback)) as port:
            await scrape(port)
            assert (await request(port, "GET", "/page")).body == b"page for 127.0.0.1"
            assert (await request(port, "GET", "/other")).status == 404
    with pytest.raises(TypeError):
        trio_rooms.Server(metrics="yes")  # type: ignore[arg-type]


async def test_two_servers_in_one_process_do_not_collide() -> None:
    first = trio_rooms.Server(metrics=True)
    second = trio_rooms.Server(metrics=True)
    assert first.metrics_registry is not None and second.metrics_registry is not None
    assert first.metrics_registry is not second.metrics_registry
    # The application's own metrics beside the server's, in the server's registry.
    users = Gauge("app_users", "Users of the first application.", registry=first.metrics_registry)
    users.set(7)
    with trio.fail_after(GUARD):
        async with native(first) as port1, native(second) as port2:
            async with trio_rooms.open_client(f"http://127.0.0.1:{port1}", transports=("websocket",)):
                await until(lambda: first.stats()["sockets"]["/"] == 1)
                one = await request(port1, "GET", "/metrics")
                two = await scrape(port2)
            families = {family.name: family for family in text_string_to_metric_families(one.text)}
            assert families["app_users"].samples[0].value == 7
            assert families["trio_rooms_connections"].samples[0].value == 1
            assert "app_users" not in two.families
            assert two.value("trio_rooms_connections") == 0
            assert two.value("trio_rooms_connections_opened_total") == 0


async def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    with trio.fail_after(GUARD):
        async with native(trio_rooms.Server(metrics=True)) as port:
            accept = ("accept", "application/openmetrics-text; version=1.0.0")
            response = await request(port, "GET", "/metrics", headers=[accept])
            assert response.headers["content-type"].startswith("application/openmetrics-text")
            assert response.text.endswith("# EOF\n")


def test_without_prometheus_client_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=re.escape("pip install -e '.[metrics]' in a checkout")):
        trio_rooms.Server(metrics=True)
    trio_rooms.Server()  # off: not needed


# -- the collector reads stats(), every key ---------------------------------------------------------
def test_each_metric_reads_its_stats_key() -> None:
    keys = [
        "connections_total",
        "deliveries",
        "bytes_sent",
        "slow_consumers_closed",
        "volatile_dropped",
        "protocol_errors",
        "refused_requests",
        "timed_out_requests",
        "refused_child_namespaces",
        "adapter_errors",
    ]
    counters = Counters()
    for seconds in (0.0004, 0.001, 0.3, 20.0):
        counters.observe_ack(seconds)
    stats: dict[str, Any] = {key: 100 + n for n, key in enumerate(keys)}
    stats |= {
        "connections": 3,
        "queued_bytes": 4,
        "sockets": {"/": 5, "/chat": 6},
        "rooms": {"/": 7, "/chat": 8},
        "ack_seconds": {"buckets": counters.ack_histogram(), "count": 4, "sum": counters.ack_seconds},
    }
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(ServerCollector(lambda: stats))
    m = Scrape(generate_latest(registry).decode())
    assert m.types() == TYPES
    names = [
        "connections_opened",
        "deliveries",
        "bytes_sent",
        "slow_consumers_closed",
        "volatile_dropped",
        "protocol_errors",
        "refused_requests",
        "timed_out_requests",
        "refused_child_namespaces",
        "adapter_errors",
    ]
    for n, name in enumerate(names):
        assert m.value(f"trio_rooms_{name}_total") == 100 + n, name
    assert m.value("trio_rooms_connections") == 3
    assert m.value("trio_rooms_queued_bytes") == 4
    assert m.value("trio_rooms_sockets", namespace="/chat") == 6
    assert m.value("trio_rooms_rooms", namespace="/") == 7
    assert m.value("trio_rooms_ack_seconds_bucket", le="0.001") == 2  # an upper bound is inclusive
    assert m.value("trio_rooms_ack_seconds_bucket", le="0.5") == 3
    assert m.value("trio_rooms_ack_seconds_bucket", le="10.0") == 3
    assert m.value("trio_rooms_ack_seconds_bucket", le="+Inf") == 4
    assert m.value("trio_rooms_ack_seconds_count") == 4
    assert m.value("trio_rooms_ack_seconds_sum") == pytest.approx(20.3014)
    assert len(counters.ack_histogram()) == len(ACK_BUCKETS)


class FailingAdapter(InMemoryAdapter):
    """An in-memory adapter that reports failures in its stats, as a cluster adapter does."""

    error_stats = ("publish_errors", "request_timeouts")

    def stats(self) -> dict[str, int]:
        return {"publish_errors": 2, "request_timeouts": 1, "published": 50}


async def test_adapter_errors_sum_the_adapters_failure_counters() -> None:
    server = trio_rooms.Server(metrics=True, adapter=FailingAdapter)
    server.of("/chat")
    assert server.stats()["adapter_errors"] == 6  # two namespaces, 3 failures each
    with trio.fail_after(GUARD):
        async with native(server) as port:
            assert (await scrape(port)).value("trio_rooms_adapter_errors_total") == 6


# -- deliveries: counted once per broadcast, exactly -------------------------------------------------
async def test_a_broadcast_counts_the_recipients_it_reached() -> None:
    nsp = FakeNamespace()
    for n in range(5):
        nsp.connect(f"s{n}", ["room"], capacity=1 if n == 0 else 64)
    adapter = nsp.adapter
    frames = Encoded.of(event_packet("/", "news", [1]))
    await adapter.deliver(frames, BroadcastOptions(frozenset({"room"})))
    assert (nsp.counters.deliveries, nsp.counters.bytes_sent) == (5, 5 * len(frames.frames))
    # s0's channel is full now: the next broadcast reaches four.
    await adapter.deliver(frames, BroadcastOptions(frozenset({"room"})))
    assert (nsp.counters.deliveries, nsp.counters.bytes_sent) == (9, 9 * len(frames.frames))


async def test_a_huge_broadcast_counts_its_chunks_and_a_cancelled_one_what_it_reached() -> None:
    nsp = FakeNamespace()
    count = 2 * YIELD_EVERY + 10
    for n in range(count):
        nsp.connect(f"s{n}", ["big"], capacity=2)
    nsp.sockets[SocketId("s7")].go_away()
    frames = Encoded.of(event_packet("/", "news", [1]))
    targets = [SocketId(f"s{n}") for n in range(count)]
    await nsp.adapter._write_all(targets, frames, False, None)
    assert nsp.counters.deliveries == count - 1  # s7 is gone
    assert nsp.counters.bytes_sent == (count - 1) * len(frames.frames)
    # Cancelled during its first chunk: the chunk goes out, the next yield ends the broadcast, and
    # only what went out is counted.
    with trio.CancelScope() as scope:
        tenth = nsp.sockets[SocketId("s10")]
        deliver = tenth.deliver

        def cancel_then_deliver(item: Encoded, volatile: bool = False) -> bool:
            scope.cancel()
            return deliver(item, volatile)

        tenth.deliver = cancel_then_deliver  # type: ignore[method-assign]
        await nsp.adapter._write_all(targets, frames, False, None)
    assert scope.cancelled_caught
    assert nsp.counters.deliveries == count - 1 + YIELD_EVERY - 1


async def test_adapter_errors_of_a_redis_adapter_without_redis() -> None:
    """A real RedisAdapter whose Redis refuses connections (a closed port): each emit's publish is
    refused (``AdapterError``), counted in its ``publish_errors``, and the metric moves."""
    closed = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    redis_port = closed.socket.getsockname()[1]
    await closed.aclose()
    factory = trio_rooms.RedisAdapter.factory(f"redis://127.0.0.1:{redis_port}")
    server = trio_rooms.Server(metrics=True, adapter=factory)
    with trio.fail_after(GUARD):
        async with native(server) as port:
            assert (await scrape(port)).value("trio_rooms_adapter_errors_total") == 0
            for _ in range(2):
                with pytest.raises(trio_rooms.AdapterError):
                    await server.emit("news", 1)
            assert (await scrape(port)).value("trio_rooms_adapter_errors_total") == 2
