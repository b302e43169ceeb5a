"""Connection state recovery with the stock JavaScript socket.io-client 4.8 (tests/interop/
recovery_client.mjs) against a trio_rooms server with recovery on, served in-process on 127.0.0.1
port 0, in the client's default transports (polling, then the upgrade), polling only, and WebSocket.

The script closes a client's transport abruptly (``socket.io.engine.close()``), broadcasts to its room
while it is away, and checks that it reconnects by itself with ``socket.recovered`` true, the same id,
rooms and data, and every missed event once and in order; that recovery fails cleanly after
``max_disconnection_duration``; and that an explicit disconnect saves nothing.

The other way round, our Trio ``Client`` recovers on a Node socket.io 4.8 server with recovery on
(tests/interop/node_recovery_server.mjs): Node writes the missed events before its CONNECT answer and
numbers them its own way. And python-socketio's client, which knows no recovery, sees each
broadcast's offset as one more argument (tests/interop/py_recovery_client.py), as the README says.

Needs node and ``npm ci`` in tests/interop: without them the tests skip, except in CI (CI=true),
where they fail.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from typing import Any

import pytest
import trio
from helpers.interop_harness import INTEROP_DIR, Run, check_run, missing, run_against_app

import trio_rooms
from trio_rooms.client import open_client
from trio_rooms.client.state import ClientDisconnectReason

MAX_DISCONNECTION = 2.0  # seconds: the expiry check waits this long
SCRIPT_TIMEOUT = 60.0
CHECKS = 3


def build_server() -> trio_rooms.Server:
    """The app the script talks to (its header describes the events)."""
    recovery = trio_rooms.ConnectionStateRecovery(max_disconnection_duration=MAX_DISCONNECTION)
    server = trio_rooms.Server(connection_state_recovery=recovery)
    nsp = server.of("/")

    @server.on("connection")
    async def on_connection(socket: trio_rooms.Socket) -> None:
        if not socket.recovered:
            socket.join("r")
            socket.data["name"] = socket.handshake.auth.get("name")

        @socket.on("whoami")
        async def whoami() -> dict[str, Any]:
            return {
                "id": socket.id,
                "recovered": socket.recovered,
                "rooms": sorted(socket.rooms),
                "data": socket.data,
                "auth": sorted(socket.handshake.auth),
            }

        @socket.on("tick")
        async def tick(request: dict[str, Any]) -> int:
            for n in range(int(request["from"]), int(request["to"])):
                await server.to(str(request["room"])).emit("tick", n)
            return 0

        @socket.on("gone")
        async def gone(sid: str) -> bool:
            with trio.move_on_after(2.0):
                while sid in nsp.sockets:  # noqa: ASYNC110 - the socket's own task removes it
                    await trio.sleep(0.01)
                return True
            return False

    return server


async def run_script(argv: list[str]) -> Run:
    """Serve the app on 127.0.0.1 port 0 and run ``argv`` with its URL as the second argument."""
    return await run_against_app(lambda url: [*argv[:2], url, *argv[2:]], SCRIPT_TIMEOUT, build_server())


@pytest.fixture(scope="module")
def node() -> str:
    """node with the installed client packages, or skip (fail when CI=true)."""
    node = shutil.which("node")
    if node is None:
        missing("node is not on PATH (install Node.js >= 18)")
    if not (INTEROP_DIR / "node_modules" / "socket.io-client").is_dir():
        missing(f"{INTEROP_DIR}/node_modules/socket.io-client is missing: run `npm ci` in {INTEROP_DIR}")
    return node


@pytest.mark.parametrize("mode", ["default", "polling", "websocket"])
def test_js_client_recovers(node: str, mode: str) -> None:
    # A plain test around trio.run: pytest.fail then raises outside any nursery.
    run = trio.run(run_script, [node, "recovery_client.mjs", mode, str(MAX_DISCONNECTION)])
    check_run(f"recovery_client.mjs {mode}", run, min_ok=CHECKS, timeout=SCRIPT_TIMEOUT)


def test_python_socketio_sees_the_offset_as_one_more_argument() -> None:
    for module, package in (("socketio", "python-socketio"), ("aiohttp", "aiohttp")):
        if importlib.util.find_spec(module) is None:
            missing(f"{package} is not installed: pip install 'python-socketio[asyncio-client]'")
    run = trio.run(run_script, [sys.executable, "py_recovery_client.py"])
    check_run("py_recovery_client.py", run, min_ok=3, timeout=SCRIPT_TIMEOUT)


# -- our Trio client against a Node socket.io 4.8 server with recovery on -------------------------------


@pytest.mark.parametrize("transports", [("websocket",), ("polling",)], ids=["websocket", "polling"])
async def test_trio_client_recovers_on_node(node: str, transports: tuple[str, ...]) -> None:
    # Node writes the missed events before its CONNECT answer, and its offsets are its own (yeast):
    # the client keeps the early events for after the answer and strips the offsets all the same.
    process = await trio.lowlevel.open_process(
        [node, "node_recovery_server.mjs", str(MAX_DISCONNECTION)], cwd=INTEROP_DIR, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(100)
                assert chunk, "the Node server ended before it listened"
                line += chunk
            assert line.startswith(b"PORT "), line
            url = f"http://127.0.0.1:{int(line.split()[1])}"
            options: dict[str, Any] = {"reconnection_delay": 0.8, "randomization_factor": 0.0}
            async with (
                open_client(url, transports=transports) as control,
                open_client(url, transports=transports, **options) as client,
            ):
                received: list[int] = []

                @client.on("tick")
                async def tick(n: int) -> None:  # binds: Node's offset was stripped
                    received.append(n)

                first_id = client.id
                assert first_id is not None
                await control.emit_with_ack("tick", {"room": "r", "from": 0, "to": 1})
                while received != [0]:  # noqa: ASYNC110 - a handler task appends
                    await trio.sleep(0.01)
                engine = client._engine
                assert engine is not None
                engine.close(ClientDisconnectReason.TRANSPORT_CLOSE)
                assert await control.emit_with_ack("gone", first_id) is True
                await control.emit_with_ack("tick", {"room": "r", "from": 1, "to": 6})
                assert not client.connected
                while len(received) < 6:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                assert client.recovered and client.id == first_id
                await control.emit_with_ack("tick", {"room": "r", "from": 6, "to": 7})
                while len(received) < 7:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                await trio.sleep(0.2)
                assert received == list(range(7))
                who = await client.emit_with_ack("whoami")
                assert who == {"id": first_id, "recovered": True, "rooms": sorted([first_id, "r"])}
    finally:
        process.terminate()
        with trio.CancelScope(shield=True):
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
