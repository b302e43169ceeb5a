"""The Socket.IO Admin UI's server side (``trio_rooms.admin.instrument``) and the public hooks it is
built on.

The protocol end to end: ``tests/interop/admin_client.mjs`` drives the stock JavaScript
socket.io-client as the page on "/admin" and as users on "/" against ``tests/interop/admin_app.py``
served in-process, in each mode (dev: basic auth and development mode; readonly; production), and
reports each check by name. Needs node and ``npm ci`` in tests/interop (skip locally, fail in CI).

Then the hooks (the engine's session events and traffic meter, ``on_new_namespace``,
``add_service``, ``Socket.conn``) and the login's bounds, with the trio_rooms
client on real sockets.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any

import bcrypt
import pytest
import trio
import trio.testing
from helpers.interop_harness import INTEROP_DIR, Run, check_run, missing, run_against_app
from helpers.serving import serving_url

import trio_rooms
from trio_rooms.admin import instrument, ui_files
from trio_rooms.admin.auth import BasicAuth, FailedLogins, SessionIds
from trio_rooms.admin.instrument import EventBuffer
from trio_rooms.client import open_client
from trio_rooms.engine import HttpRequest
from trio_rooms.engine.session import Session
from trio_rooms.server import Service

SCRIPT_TIMEOUT = 90.0
#: Checks per mode of admin_client.mjs (fewer "ok" lines means checks went missing).
MODES = {"dev": 18, "readonly": 2, "production": 3}


def load_admin_app() -> ModuleType:
    """tests/interop/admin_app.py, imported by path (tests/ is not a package)."""
    name = "trio_rooms_admin_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, INTEROP_DIR / "admin_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def node() -> str:
    node = shutil.which("node")
    if node is None:
        missing("node is not on PATH (install Node.js >= 18)")
    if not (INTEROP_DIR / "node_modules" / "socket.io-client").is_dir():
        missing(f"socket.io-client is missing: run `npm ci` in {INTEROP_DIR}")
    return node


async def _run_script(node: str, mode: str) -> Run:
    server, _ = load_admin_app().build_server(mode)
    return await run_against_app(lambda url: [node, "admin_client.mjs", url, mode], SCRIPT_TIMEOUT, server)


@pytest.mark.parametrize("mode", list(MODES))
def test_admin_protocol_with_the_js_client(node: str, mode: str) -> None:
    run = trio.run(_run_script, node, mode)
    check_run(f"admin_client.mjs {mode}", run, min_ok=MODES[mode], timeout=SCRIPT_TIMEOUT)


# -- the hooks ------------------------------------------------------------------------------------------


async def _until(predicate: Any) -> None:
    """Poll ``predicate`` (the caller's ``fail_after`` bounds the wait)."""
    while True:
        if predicate():
            return
        await trio.sleep(0.01)


async def test_session_events_and_the_traffic_meter() -> None:
    server = trio_rooms.Server()
    seen: list[tuple[str, str, str]] = []
    server.engine.on("session_open", lambda s: seen.append(("open", s.sid, str(s.transport))))
    server.engine.on("upgrade", lambda s: seen.append(("upgrade", s.sid, str(s.transport))))
    server.engine.on("session_close", lambda s, reason: seen.append(("close", s.sid, str(reason))))
    meter = server.engine.meter_traffic()
    assert server.engine.meter_traffic() is meter
    sockets: list[trio_rooms.Socket] = []

    @server.on("connection")
    async def connected(socket: trio_rooms.Socket) -> None:
        sockets.append(socket)

        @socket.on("echo")
        async def echo(text: str) -> str:
            return text

    with trio.fail_after(10):
        async with (
            serving_url(server) as url,
            open_client(url, transports=["polling", "websocket"]) as client,
        ):
            await _until(lambda: any(kind == "upgrade" for kind, _, _ in seen))
            assert await client.emit_with_ack("echo", "é" * 10) == "é" * 10
            (socket,) = sockets
            assert socket.conn.transport == "websocket"
            (sid,) = {s for _, s, _ in seen}
            assert socket.conn.sid == sid
        await _until(lambda: len(seen) == 3)
    assert seen == [
        ("open", sid, "polling"),
        ("upgrade", sid, "websocket"),
        ("close", sid, "transport close"),
    ]
    # In: CONNECT, the event; out: the CONNECT answer, the ack. Bytes as the packets' data.
    assert meter.packets_in >= 2 and meter.packets_out >= 2
    assert meter.bytes_in >= len(('2["echo","' + "é" * 10 + '"]').encode()) + len("0")
    assert meter.bytes_out >= len(('3["' + "é" * 10 + '"]').encode())


async def test_no_meter_no_wrapper_on_the_broadcast_path() -> None:
    server = trio_rooms.Server()
    sockets: list[trio_rooms.Socket] = []

    @server.on("connection")
    async def connected(socket: trio_rooms.Socket) -> None:
        sockets.append(socket)

    with trio.fail_after(10):
        async with serving_url(server) as url, open_client(url, transports=["websocket"]):
            await _until(lambda: bool(sockets))
            session = server.engine.sessions[sockets[0].conn.sid]
            # Without a meter the socket writes straight to its WebSocket sink (no per-recipient work).
            assert session.sink is not None
            assert sockets[0].deliver == session.sink.deliver
            assert session.meter is None


def test_session_hooks_are_plain_functions() -> None:
    server = trio_rooms.Server()

    async def hook(session: Session) -> None:
        await trio.lowlevel.checkpoint()

    with pytest.raises(TypeError):
        server.engine.on("session_open", hook)
    with pytest.raises(ValueError, match="no event"):
        server.engine.on("session_opened", lambda s: None)


async def test_on_new_namespace_and_namespaces() -> None:
    server = trio_rooms.Server()
    made: list[str] = []
    server.on_new_namespace(lambda ns: made.append(ns.name))
    server.of("/a")
    server.of("/a")
    server.of(re.compile(r"/dyn-\d+"))
    with trio.fail_after(10):
        async with serving_url(server) as url, open_client(url, namespace="/dyn-7", transports=["websocket"]):
            pass
    assert made == ["/a", "/dyn-7"]
    assert set(server.namespaces) == {"/", "/a", "/dyn-7"}
    with pytest.raises(TypeError):
        server.namespaces["/b"] = server.of("/a")  # type: ignore[index]


def recorded_service(runs: list[str]) -> Service:
    """A service that says in ``runs`` when it starts and when it stops."""

    async def service(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append("started")
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            runs.append("stopped")

    return service


async def test_services_run_in_the_servers_nursery() -> None:
    server = trio_rooms.Server()
    runs: list[str] = []
    server.add_service(recorded_service(runs))
    with trio.fail_after(10):
        async with server.running():
            assert runs == ["started"]
            late: list[int] = []

            async def late_service(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                late.append(1)
                task_status.started()
                await trio.sleep_forever()

            server.add_service(late_service)
            await _until(lambda: bool(late))
        assert runs == ["started", "stopped"]
        async with serving_url(server):  # each run starts the services anew
            assert runs == ["started", "stopped", "started"]


# -- instrument and its login -----------------------------------------------------------------------------


def test_instrument_checks_its_options() -> None:
    good = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    with pytest.raises(ValueError, match="mode"):
        instrument(trio_rooms.Server(), mode="debug")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bcrypt"):
        instrument(trio_rooms.Server(), auth={"type": "basic", "username": "a", "password": "pw"})
    with pytest.raises(ValueError):
        instrument(trio_rooms.Server(), auth={"type": "digest", "username": "a", "password": good})
    server = trio_rooms.Server()
    admin = instrument(server, auth={"type": "basic", "username": "a", "password": good}, read_only=True)
    assert admin.features == ["AGGREGATED_EVENTS", "ALL_EVENTS"]
    assert admin.namespace is server.of("/admin")
    with pytest.raises(RuntimeError):
        instrument(server)


def test_without_bcrypt_basic_auth_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    good = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    monkeypatch.setitem(sys.modules, "bcrypt", None)
    with pytest.raises(ImportError, match=re.escape("pip install -e '.[admin]' in a checkout")):
        instrument(trio_rooms.Server(), auth={"type": "basic", "username": "a", "password": good})
    instrument(trio_rooms.Server())  # no auth: not needed


async def test_bcrypt_runs_in_a_thread_and_the_loop_keeps_going() -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12))  # ~0.2-0.5 s of CPU
    auth = BasicAuth("admin", hashed)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            started = time.monotonic()
            session_id = await auth.login({"username": "admin", "password": "right"}, "10.0.0.1")
            elapsed = time.monotonic() - started
            nursery.cancel_scope.cancel()
    assert session_id is not None and auth.sessions.known(session_id)
    # The loop ticked all along the check (a blocking check would allow one tick at most).
    assert ticks >= elapsed / 0.01 / 3 > 3


async def test_failed_logins_are_bounded_per_address() -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))
    auth = BasicAuth("admin", hashed)
    for _ in range(auth.failures.limit):
        with pytest.raises(PermissionError, match="invalid credentials"):
            await auth.login({"username": "admin", "password": "wrong"}, "10.0.0.9")
    # Blocked now, even with the right password (no bcrypt check), while another address is not.
    with pytest.raises(PermissionError, match="too many"):
        await auth.login({"username": "admin", "password": "right"}, "10.0.0.9")
    assert await auth.login({"username": "admin", "password": "right"}, "10.0.0.10") is not None
    for bad in (
        {"username": "admin"},
        {"username": 1, "password": 2},
        {"username": "admin", "password": "x" * 100},
    ):
        with pytest.raises(PermissionError):
            await auth.login(bad, "10.0.0.11")


def test_failed_logins_window_and_address_bound() -> None:
    clock = trio.testing.MockClock()
    failures = FailedLogins(limit=2, window=60.0, max_addresses=3)

    async def scenario() -> None:
        failures.failed("a")
        failures.failed("a")
        assert failures.blocked("a")
        clock.jump(61)
        assert not failures.blocked("a")
        for address in "bcde":
            failures.failed(address)
        assert len(failures) == 3  # the oldest forgotten first
        await trio.lowlevel.checkpoint()

    trio.run(scenario, clock=clock)


def test_session_ids_expire_and_are_bounded() -> None:
    clock = trio.testing.MockClock()

    async def scenario() -> None:
        ids = SessionIds(ttl=10.0, max_sessions=3)
        first = ids.new()
        assert ids.known(first) and not ids.known("nope") and not ids.known(None)
        clock.jump(11)
        assert not ids.known(first)
        made = [ids.new() for _ in range(5)]
        assert len(ids) == 3
        assert not ids.known(made[0]) and ids.known(made[-1])
        await trio.lowlevel.checkpoint()

    trio.run(scenario, clock=clock)


def test_event_buffer_counts_by_second_and_clears() -> None:
    buffer = EventBuffer()
    buffer.push("rawConnection")
    buffer.push("rawConnection")
    buffer.push("rawDisconnection", "transport close")
    buffer.push("bytesIn", None, 42)
    taken = buffer.take()
    assert buffer.take() == []
    by_type = {entry["type"]: entry for entry in taken}
    assert by_type["rawConnection"]["count"] == 2
    assert by_type["rawDisconnection"]["subType"] == "transport close"
    assert "subType" not in by_type["bytesIn"] and by_type["bytesIn"]["count"] == 42
    assert all(entry["timestamp"] % 1000 == 0 for entry in taken)


async def test_event_sent_listeners_only_while_an_admin_listens() -> None:
    """Development mode: a socket's deliveries go through an outgoing listener (``event_sent``) only
    while an admin is connected; otherwise a delivery costs what it costs without the listener."""
    server = trio_rooms.Server()
    admin = instrument(server)
    sockets: list[trio_rooms.Socket] = []

    @server.on("connection")
    async def connected(socket: trio_rooms.Socket) -> None:
        sockets.append(socket)

    with trio.fail_after(10):
        async with serving_url(server) as url, open_client(url, transports=["websocket"]):
            await _until(lambda: bool(sockets))
            (socket,) = sockets
            assert socket.deliver == socket.conn.deliver  # the session's (metered) write, no listener
            async with open_client(url, namespace="/admin", transports=["websocket"]):
                await _until(lambda: socket.deliver != socket.conn.deliver)
                await _until(lambda: bool(admin.namespace.sockets))
            await _until(lambda: socket.deliver == socket.conn.deliver)


async def test_ui_files_serves_one_directory_only(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text("<title>page</title>")
    (tmp_path / "dist" / "app.js").write_text("js")
    (tmp_path / "secret.txt").write_text("secret")
    serve = ui_files(tmp_path / "dist")

    def request(target: str, method: str = "GET") -> HttpRequest:
        path = target.split("?", 1)[0]
        return HttpRequest(method=method, target=target, path=path, query={}, headers=())

    index = await serve(request("/admin-ui/"))
    assert index is not None and index.status == 200 and b"page" in index.body
    assert index.content_type == "text/html"
    script = await serve(request("/admin-ui/app.js?v=1"))
    assert script is not None and script.body == b"js"
    for target in ("/admin-ui/../secret.txt", "/admin-ui/%2e%2e/secret.txt", "/admin-ui/missing.js"):
        answer = await serve(request(target))
        assert answer is not None and answer.status == 404, target
    posted = await serve(request("/admin-ui/", "POST"))
    assert posted is not None and posted.status == 405
    assert await serve(request("/other")) is None
    with pytest.raises(ValueError):
        ui_files(tmp_path / "nowhere")


async def test_services_start_with_the_asgi_lifespan() -> None:
    """``ASGIApp``'s lifespan runs the server's machinery, services included."""
    server = trio_rooms.Server()
    runs: list[str] = []
    server.add_service(recorded_service(runs))
    app = trio_rooms.ASGIApp(server)
    to_app, app_receives = trio.open_memory_channel[MutableMapping[str, Any]](4)
    app_sends, from_app = trio.open_memory_channel[MutableMapping[str, Any]](4)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            scope: MutableMapping[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
            nursery.start_soon(app, scope, app_receives.receive, app_sends.send)
            await to_app.send({"type": "lifespan.startup"})
            assert (await from_app.receive())["type"] == "lifespan.startup.complete"
            assert runs == ["started"]
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"
    assert runs == ["started", "stopped"]
