"""The application hooks (issue 15), end to end: the real JavaScript socket.io-client
(tests/interop/hooks_client.mjs, in its default mode, polling then the upgrade, and WebSocket only)
against tests/interop/hooks_app.py served in process on 127.0.0.1 port 0, one named check per rule;
the engine's header and error hooks with raw HTTP and raw WebSocket, under both front doors (the
native one and ASGI, Hypercorn's trio worker in process).

Real sockets and processes, so real time: every test runs under ``trio.fail_after``. Needs node with
``npm ci`` in tests/interop (and hypercorn for the ASGI door): without them the tests skip, except in
CI (CI=true), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from helpers.asgi_harness import require_hypercorn, serve_asgi
from helpers.interop_harness import INTEROP_DIR, Run, missing
from helpers.raw_clients import SIO_PATH, WsClient, WsRejected, polling, request, websocket

import trio_rooms

GUARD = 40.0  # seconds: the fail_after of each test (node starts in about a second)
MODES = ["default", "websocket"]
DOORS = ["native", "asgi"]


def load_hooks_app() -> Any:
    """tests/interop/hooks_app.py's ``build_hooks_app()`` (imported by path: tests/ is no package)."""
    spec = importlib.util.spec_from_file_location("trio_rooms_hooks_app", INTEROP_DIR / "hooks_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.build_hooks_app()


@pytest.fixture(scope="session")
def node() -> str:
    """node with the installed client packages, or skip (fail when CI=true)."""
    found = shutil.which("node")
    if found is None:
        missing("node is not on PATH (install Node.js >= 18)")
    if not (INTEROP_DIR / "node_modules" / "socket.io-client").is_dir():
        missing(f"socket.io-client is missing: run `npm ci` in {INTEROP_DIR}")
    return found


@asynccontextmanager
async def serving(app: Any, door: str = "native") -> AsyncIterator[int]:
    """Serve the hooks app's server on 127.0.0.1 (a free port) behind ``door``; yield the port."""
    async with trio.open_nursery() as nursery:
        if door == "native":
            listeners = await nursery.start(app.server.serve, "127.0.0.1", 0)
            port = int(listeners[0].socket.getsockname()[1])
        else:
            require_hypercorn()
            port = await nursery.start(serve_asgi, app.server)
        yield port
        nursery.cancel_scope.cancel()


@dataclass(frozen=True)
class HooksRun:
    """One run of every check of hooks_client.mjs in one mode, and the server's log meanwhile."""

    run: Run
    log: list[logging.LogRecord]

    def check(self, name: str) -> list[logging.LogRecord]:
        """Fail with the detail of check ``name`` unless it passed; return the server's log."""
        lines = self.run.stdout.splitlines()
        if f"ok {name}" not in lines:
            detail = [
                line for line in lines if line.startswith((f"FAIL {name}:", "FAIL overall", "FAIL runner"))
            ]
            tail = "\n".join(self.run.stderr.splitlines()[-20:])
            pytest.fail(f"check {name!r} did not pass: {detail or lines}\n{tail}", pytrace=False)
        return self.log


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _run_all(node: str, mode: str) -> HooksRun:
    app = load_hooks_app()
    keep = _Keep()
    logger = logging.getLogger("trio_rooms")
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.DEBUG)
    try:
        with trio.fail_after(GUARD):
            async with serving(app) as port:
                result = await trio.run_process(
                    [node, "hooks_client.mjs", f"http://127.0.0.1:{port}", mode],
                    cwd=INTEROP_DIR,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    run = Run(result.returncode, result.stdout.decode(), result.stderr.decode(), timed_out=False)
    return HooksRun(run, keep.records)


@pytest.fixture(scope="session")
def hooks_runs(node: str) -> dict[str, HooksRun]:
    """Every check in each mode, run once for the session (one node process per mode); each rule's
    test below reads the line of its own check."""
    return {mode: trio.run(_run_all, node, mode) for mode in MODES}


# -- the socket's hooks, with the JavaScript client ---------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_catch_all_listeners_then_middlewares_then_handler(
    hooks_runs: dict[str, HooksRun], mode: str
) -> None:
    """Prepended listeners first (the newest first), then the others, the middlewares in order,
    then the handler."""
    hooks_runs[mode].check("order")


@pytest.mark.parametrize("mode", MODES)
def test_rejected_event(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """A middleware raises: no handler ran, no ack nor anything else within 0.5 s, the "error"
    handler got the exception, the client is still connected."""
    hooks_runs[mode].check("rejected")


@pytest.mark.parametrize("mode", MODES)
def test_rewriting_middleware(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """A middleware changes ``args`` in place: the handler (and the later middleware) see the change,
    the catch-all listeners the arguments as sent."""
    hooks_runs[mode].check("rewrite")


@pytest.mark.parametrize("mode", MODES)
def test_off(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """``off(event, other)`` keeps the handler, ``off(event)`` removes it (no ack then, the catch-all
    listeners still see the event)."""
    hooks_runs[mode].check("off")


@pytest.mark.parametrize("mode", MODES)
def test_off_any(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """``off_any(listener)`` removes that one, ``off_any()`` every one."""
    hooks_runs[mode].check("off_any")


@pytest.mark.parametrize("mode", MODES)
def test_outgoing_listeners_and_broadcasts(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """Each broadcast fires the outgoing listener of each recipient once, not the sender's
    (``socket.to``), never for acks; ``off_any_outgoing`` removes it."""
    hooks_runs[mode].check("outgoing_broadcasts")


@pytest.mark.parametrize("mode", MODES)
def test_outgoing_listeners_and_emits(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """``emit``, ``emit_with_ack``, ``volatile.emit``, ``timeout(s).emit_with_ack`` and ``send`` fire
    the outgoing listener once each, acks never."""
    hooks_runs[mode].check("outgoing_emits")


@pytest.mark.parametrize("mode", MODES)
def test_timeout_and_volatile_forms(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """``socket.timeout(2).emit_with_ack`` returns the ack, ``timeout(0.3)`` unanswered raises
    ``AckTimeout``, ``socket.volatile.emit`` arrives."""
    hooks_runs[mode].check("timeout_volatile")


@pytest.mark.parametrize("mode", MODES)
def test_send_and_message_both_ways(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """The client's ``send`` reaches ``@socket.on("message")``, the server's ``socket.send`` the
    client's "message" listener."""
    hooks_runs[mode].check("send_message")


@pytest.mark.parametrize("mode", MODES)
def test_client_error_event_is_dropped(hooks_runs: dict[str, HooksRun], mode: str) -> None:
    """ "error" is reserved: a client event of that name reaches no hook nor handler and is logged."""
    log = hooks_runs[mode].check("error_reserved")
    assert any('named "error" is reserved' in r.getMessage() for r in log)


@pytest.mark.parametrize("mode", MODES)
def test_warning_for_client_event_only_a_server_level_handler_names(
    hooks_runs: dict[str, HooksRun], mode: str
) -> None:
    """A client event that no socket handler takes while ``@server.on(event)`` exists: a WARNING
    naming the event and saying where client events are handled; the client gets no ack."""
    log = hooks_runs[mode].check("server_level_warning")
    warnings = [r.getMessage() for r in log if r.levelno == logging.WARNING]
    found = [m for m in warnings if "'server_only'" in m]
    assert found, warnings
    assert "server-side emits only" in found[0] and "on the socket" in found[0]
    # An event without any handler stays a debug line.
    assert not any("'echo'" in m for m in warnings)


# -- the engine's hooks, raw HTTP and raw WebSocket, both front doors --------------------------------
def _values(lines: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in lines if key == name]


@pytest.mark.parametrize("door", DOORS)
async def test_initial_headers_cookie_in_handshake_and_upgrade_answers(door: str) -> None:
    """``initial_headers`` (two cookies: a list value) is in the polling handshake's answer and in a
    direct WebSocket's 101, not in later polling answers nor in a polling session's upgrade."""
    app = load_hooks_app()
    with trio.fail_after(GUARD):
        async with serving(app, door) as port:
            handshake = await request(port, "GET", polling(path=SIO_PATH))
            assert handshake.status == 200, handshake
            assert _values(handshake.lines, "set-cookie") == ["sticky=1; Path=/", "second=2"]
            sid = json.loads(handshake.text[1:])["sid"]
            posted = await request(port, "POST", polling(sid, SIO_PATH), "40")
            later = await request(port, "GET", polling(sid, SIO_PATH))  # the CONNECT's answer waits
            for answer in (posted, later):
                assert answer.status == 200 and _values(answer.lines, "set-cookie") == [], answer
            direct = await WsClient.connect(port, websocket(path=SIO_PATH))
            assert _values(direct.accept_headers, "set-cookie") == ["sticky=1; Path=/", "second=2"]
            await direct.aclose()
            upgrade = await WsClient.connect(port, websocket(sid, SIO_PATH))
            assert _values(upgrade.accept_headers, "set-cookie") == []
            await upgrade.aclose()


@pytest.mark.parametrize("door", DOORS)
async def test_headers_hook_on_every_answer(door: str) -> None:
    """``headers`` is in the handshake, every polling GET and POST answer, and every 101 (a direct
    WebSocket and an upgrade), after ``initial_headers`` on the same dict."""
    app = load_hooks_app()
    with trio.fail_after(GUARD):
        async with serving(app, door) as port:
            handshake = await request(port, "GET", polling(path=SIO_PATH))
            sid = json.loads(handshake.text[1:])["sid"]
            posted = await request(port, "POST", polling(sid, SIO_PATH), "40")
            got = await request(port, "GET", polling(sid, SIO_PATH))
            assert got.text.startswith("40"), got
            for answer in (handshake, posted, got):
                assert answer.status == 200, answer
                assert _values(answer.lines, "x-hooked") == ["yes"], answer
            direct = await WsClient.connect(port, websocket(path=SIO_PATH))
            upgrade = await WsClient.connect(port, websocket(sid, SIO_PATH))
            for client in (direct, upgrade):
                assert _values(client.accept_headers, "x-hooked") == ["yes"]
                await client.aclose()


@pytest.mark.parametrize("door", DOORS)
async def test_connection_error_for_unknown_transport_and_unknown_sid(door: str) -> None:
    """``connection_error`` gets Engine.IO's code and message and the request: an unknown transport
    (0) and an unknown sid over polling and over WebSocket (1); not a GET overlapping a held one."""
    app = load_hooks_app()
    with trio.fail_after(GUARD):
        async with serving(app, door) as port:
            unknown_transport = f"{SIO_PATH}?EIO=4&transport=carrier-pigeon"
            refused = await request(port, "GET", unknown_transport)
            assert refused.status == 400 and refused.json() == {"code": 0, "message": "Transport unknown"}
            unknown_sid = polling("no-such-sid", SIO_PATH)
            assert (await request(port, "GET", unknown_sid)).status == 400
            with pytest.raises(WsRejected):
                await WsClient.connect(port, websocket("no-such-sid", SIO_PATH))
            # A GET overlapping a held one ends the session (400, code 3) but is no connection
            # error, as in Node: the session's transport failed, the request was verified.
            handshake = await request(port, "GET", polling(path=SIO_PATH))
            sid = json.loads(handshake.text[1:])["sid"]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(request, port, "GET", polling(sid, SIO_PATH))
                await trio.sleep(0.2)  # the first GET is held
                overlapping = await request(port, "GET", polling(sid, SIO_PATH))
            assert overlapping.status == 400 and overlapping.json()["code"] == 3
    assert app.errors == [
        (0, "Transport unknown", unknown_transport),
        (1, "Session ID unknown", unknown_sid),
        (1, "Session ID unknown", websocket("no-such-sid", SIO_PATH)),
    ]


# -- the rules at registration and the bounds of the header hooks -----------------------------------
async def test_engine_hooks_are_plain_functions_and_bad_headers_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``async def`` hook or an unknown event is refused at registration; a header a hook sets
    that the server owns or that carries CR/LF is dropped (logged), a failing hook is logged and
    the answer goes out."""
    server = trio_rooms.Server()

    async def not_plain(headers: Any, request: Any) -> None:
        await trio.lowlevel.checkpoint()

    with pytest.raises(TypeError, match="plain function"):
        server.engine.on("headers", not_plain)
    with pytest.raises(ValueError, match="no event"):
        server.engine.on("header", lambda headers, request: None)

    def hostile(headers: dict[str, Any], request: Any) -> None:
        headers["x-injected"] = "a\r\nset-cookie: evil=1"
        headers["content-length"] = "0"
        headers["x-fine"] = ["1", "2"]

    def failing(headers: dict[str, Any], request: Any) -> None:
        raise RuntimeError("hook failed on purpose")

    server.engine.on("initial_headers", hostile)
    server.engine.on("headers", failing)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(server.serve, "127.0.0.1", 0)
            port = listeners[0].socket.getsockname()[1]
            answer = await request(port, "GET", polling(path=SIO_PATH))
            nursery.cancel_scope.cancel()
    assert answer.status == 200 and answer.text.startswith("0{")
    assert _values(answer.lines, "x-fine") == ["1", "2"]
    assert _values(answer.lines, "set-cookie") == [] and _values(answer.lines, "x-injected") == []
    assert _values(answer.lines, "content-length") == [str(len(answer.body))]
    messages = [r.getMessage() for r in caplog.records]
    assert any("x-injected" in m for m in messages) and any("failed" in m for m in messages)


async def test_socket_hooks_are_checked_at_registration() -> None:
    """Wrong kinds of hooks raise TypeError when registered, not when a packet comes."""
    server = trio_rooms.Server()
    problems: list[str] = []
    done = trio.Event()

    def expect_type_error(register: Callable[[], object], what: str) -> None:
        try:
            register()
        except TypeError:
            return
        problems.append(what)

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        async def no_event() -> None:
            await trio.lowlevel.checkpoint()

        async def one_arg(event: str) -> None:
            await trio.lowlevel.checkpoint()

        async def on_error(exc: Exception, extra: int) -> None:
            await trio.lowlevel.checkpoint()

        expect_type_error(lambda: socket.on_any(lambda event: None), "a sync catch-all listener")  # type: ignore[type-var]
        expect_type_error(lambda: socket.prepend_any(no_event), "a catch-all listener without the event")
        expect_type_error(lambda: socket.use(one_arg), "a middleware without args")  # type: ignore[arg-type]
        expect_type_error(lambda: socket.on_any_outgoing(one_arg), "an async outgoing listener")
        expect_type_error(lambda: socket.on("error")(on_error), "an error handler of two arguments")
        with pytest.raises(ValueError):
            socket.timeout(0)
        done.set()

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(server.serve, "127.0.0.1", 0)
            port = listeners[0].socket.getsockname()[1]
            client = await WsClient.connect(port, websocket(path=SIO_PATH))
            assert isinstance(await client.recv(), str)  # the open packet
            await client.send("40")
            await done.wait()
            await client.aclose()
            nursery.cancel_scope.cancel()
    assert problems == []
