"""Connection state recovery with the stock JavaScript socket.io-client 4.8 (tests/interop/
recovery_client.mjs) against a trio_rooms server with recovery on, served in-process on 127.0.0.1
port 0, in the client's default transports (polling, then the upgrade), polling only, and WebSocket.

The script closes a client's transport abruptly (``socket.io.engine.close()``), broadcasts to its room
while it is away, and checks that it reconnects by itself with ``socket.recovered`` true, the same id,
rooms and data, and every missed event once and in order; that recovery fails cleanly after
``max_disconnection_duration``; and that an explicit disconnect saves nothing.

Needs node and ``npm ci`` in tests/interop: without them the tests skip, except in CI (CI=true),
where they fail.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import trio
from helpers.interop_harness import INTEROP_DIR, Run, check_run, missing

import trio_rooms

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


async def run_script(node: str, mode: str) -> Run:
    server = build_server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        try:
            with trio.move_on_after(SCRIPT_TIMEOUT) as scope:
                result = await trio.run_process(
                    [node, "recovery_client.mjs", url, mode, str(MAX_DISCONNECTION)],
                    cwd=INTEROP_DIR,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        finally:
            nursery.cancel_scope.cancel()
    if scope.cancelled_caught:
        return Run(-1, "", "", timed_out=True)
    return Run(
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
        timed_out=False,
    )


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
    run = trio.run(run_script, node, mode)
    check_run(f"recovery_client.mjs {mode}", run, min_ok=CHECKS, timeout=SCRIPT_TIMEOUT)
