"""Sticky sessions behind a load balancer: examples/cluster/haproxy.cfg, run as it is committed.

Debian's HAProxy (the ``haproxy`` package, installed by .ci/run) is started with the example's config,
only its three addresses changed to free ports on 127.0.0.1, in front of two ``examples/cluster/
member.py`` processes (py-1, py-2) that share their rooms through the session's redis-server. The
stock JavaScript socket.io-client (``tests/interop/sticky_client.mjs``) drives clients on HTTP
long-polling, and one on the default transports that upgrades to WebSocket: each must stay on the
server HAProxy's cookie names, on both servers, through many round trips (acks, and broadcasts to a
room that spans both), with no error. The negative control runs the same config without its two
cookie settings: plain round robin sends a session's requests to both servers, and the same clients
fail with 400 "Session ID unknown" (so the first test cannot pass without the cookie doing its work),
while clients on WebSocket only, through that same config, need no cookie.

On loopback every client has the same source address, so stickiness by source hash would prove
nothing here: the cookie is what is tested. Without haproxy, node (and ``npm ci`` in tests/interop)
or redis-server the tests skip, except on CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers.interop_harness import INTEROP_DIR, missing
from helpers.redis_fixtures import free_port

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "cluster"
CONFIG = EXAMPLE_DIR / "haproxy.cfg"
CLIENT_SCRIPT = INTEROP_DIR / "sticky_client.mjs"
SERVERS = ("py-1", "py-2")
# The addresses of the committed config: the frontend, then the servers in SERVERS' order.
FRONTEND = "127.0.0.1:3000"
BACKENDS = ("127.0.0.1:3001", "127.0.0.1:3002")
START_TIMEOUT = 20.0
CLIENT_TIMEOUT = 60.0
BOUNDARY = "/__sticky_boundary__"  # sticky_client.mjs requests it before it closes its clients
# One request in `option httplog`'s format: ... backend/server timers status bytes ... "METHOD URI HTTP/1.1"
LOG_LINE = re.compile(
    r" trio_rooms/(?P<server>\S+) \S+ (?P<status>-?\d+) .*\"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/"
)


# -- the tools ---------------------------------------------------------------------------------------------
def require_haproxy() -> str:
    """haproxy's path (Debian puts it in /usr/sbin); skip (fail on CI) when missing."""
    path = os.environ.get("PATH", "")
    found = shutil.which("haproxy", path=f"{path}:/usr/sbin:/usr/local/sbin")
    if found is None:
        missing("haproxy is not installed (apt-get install -y haproxy)")
    return found


def require_node_client() -> str:
    """node, with socket.io-client installed in tests/interop; skip (fail on CI) otherwise."""
    node = shutil.which("node")
    if node is None:
        missing("node is not on PATH (install Node.js >= 18)")
    if not (INTEROP_DIR / "node_modules" / "socket.io-client").is_dir():
        missing(f"{INTEROP_DIR}/node_modules/socket.io-client is missing: run `npm ci` in {INTEROP_DIR}")
    return node


# -- the config, as committed and changed for a test ------------------------------------------------------
def directives(text: str) -> list[str]:
    """The config's lines that are not comments or blank."""
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def with_ports(text: str, frontend: int, backends: tuple[int, int]) -> str:
    """The committed config with its frontend and server addresses on these ports (each replaced
    exactly once, in a directive: a config that no longer has them fails the test, not silently)."""
    changes = {FRONTEND: f"127.0.0.1:{frontend}"}
    changes.update({old: f"127.0.0.1:{port}" for old, port in zip(BACKENDS, backends, strict=True)})
    lines = text.splitlines()
    for old, new in changes.items():
        hits = [i for i, line in enumerate(lines) if old in line and not line.lstrip().startswith("#")]
        assert len(hits) == 1, f"{CONFIG} should have {old} in exactly one directive, found {len(hits)}"
        lines[hits[0]] = re.sub(rf"{re.escape(old)}(?!\d)", new, lines[hits[0]])
    return "\n".join(lines) + "\n"


def without_cookie(text: str) -> str:
    """The same config with its stickiness removed: the ``cookie SERVERID ...`` line of the backend and
    the ``cookie <value>`` of each server line (what is left balances each request round robin)."""
    lines = [line for line in text.splitlines() if not re.match(r"\s*cookie\s", line)]
    assert len(lines) == len(text.splitlines()) - 1, "expected one `cookie` directive in the backend"
    stripped = [
        re.sub(r"\s+cookie\s+\S+", "", line) if re.match(r"\s*server\s", line) else line for line in lines
    ]
    assert sum(a != b for a, b in zip(lines, stripped, strict=True)) == len(SERVERS)
    result = "\n".join(stripped) + "\n"
    assert not any("cookie" in line for line in directives(result))
    return result


def test_committed_config_shape() -> None:
    """The committed example is the one this module tests: its frontend and two servers at the
    documented addresses, stickiness by an inserted SERVERID cookie, a cookie value per server, and
    haproxy's own check (``haproxy -c``) accepts it and its cookie-less variant."""
    text = CONFIG.read_text()
    lines = directives(text)
    assert any(re.fullmatch(r"\s*cookie SERVERID insert indirect nocache", line) for line in lines)
    for server, address in zip(SERVERS, BACKENDS, strict=True):
        expected = rf"\s*server {server} {address} check cookie {server}"
        assert any(re.fullmatch(expected, line) for line in lines)
    assert any(re.fullmatch(rf"\s*bind {FRONTEND}", line) for line in lines)
    haproxy = require_haproxy()
    for variant in (text, without_cookie(text)):
        result = subprocess.run(
            [haproxy, "-c", "-f", "/dev/stdin"],
            input=variant.encode(),
            capture_output=True,
            timeout=20,
            check=False,
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


# -- the processes -------------------------------------------------------------------------------------------
def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s; waits until it is gone."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Member:
    """One examples/cluster/member.py process."""

    name: str
    process: subprocess.Popen[bytes]
    port: int


def start_member(name: str, redis_url: str, key: str) -> Member:
    """Start member.py on a free port and wait (bounded) for its "listening on" line."""
    options = ["--name", name, "--port", "0", "--redis", redis_url, "--key", key]
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE_DIR / "member.py"), *options],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
    line = process.stdout.readline().decode() if ready else ""
    match = re.search(rf"cluster member {name} listening on http://127\.0\.0\.1:(\d+)", line)
    if match is None:
        stop(process)
        raise RuntimeError(f"member {name} did not start: {line!r}")
    return Member(name, process, int(match.group(1)))


@pytest.fixture(scope="module")
def members(redis_url: str) -> Iterator[list[Member]]:
    """py-1 and py-2, sharing their rooms on the session's Redis under a key of their own."""
    require_haproxy()
    require_node_client()
    key = f"sticky-{uuid.uuid4().hex[:8]}"
    started: list[Member] = []
    try:
        for name in SERVERS:
            started.append(start_member(name, redis_url, key))
        yield started
    finally:
        for member in started:
            stop(member.process)
            assert member.process.stdout is not None
            member.process.stdout.close()


@dataclass
class HAProxy:
    """A running haproxy: its frontend URL and its log (one line per request, by `option httplog`)."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def logged(self, text: str, timeout: float = 5.0) -> None:
        """Wait until ``text`` is in the log (HAProxy writes a request's line as its stream ends,
        which may be a moment after the client got the answer)."""
        with trio.fail_after(timeout):
            while text not in self.log():  # noqa: ASYNC110 - a file another process writes
                await trio.sleep(0.02)

    def requests(self, *, until: str | None = None) -> list[dict[str, str]]:
        """The logged requests: server, status, method, and the Engine.IO sid ("" for a handshake);
        with ``until``, only those logged before the first request whose URI contains it."""
        found: list[dict[str, str]] = []
        for line in self.log().splitlines():
            if until is not None and until in line:
                return found
            match = LOG_LINE.search(line)
            if match is not None:
                sid = re.search(r"[?&]sid=([^&]+)", match["uri"])
                found.append({**match.groupdict(), "sid": sid.group(1) if sid else ""})
        assert until is None, f"no request with {until} in HAProxy's log"
        return found


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[str, list[Member]], HAProxy]]:
    """Start haproxy in the foreground (``-db``) with a config text in front of the members; every
    one started is stopped at teardown."""
    binary = require_haproxy()
    started: list[HAProxy] = []

    def start(text: str, backends: list[Member]) -> HAProxy:
        port = free_port()
        ports = (backends[0].port, backends[1].port)
        config = tmp_path / f"haproxy-{len(started)}.cfg"
        config.write_text(with_ports(text, port, ports))
        log_path = tmp_path / f"haproxy-{len(started)}.log"
        with log_path.open("wb") as log:
            argv = [binary, "-db", "-f", str(config)]
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        proxy = HAProxy(process, f"http://127.0.0.1:{port}", log_path)
        started.append(proxy)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {process.returncode}:\n{proxy.log()}")
            with socket.socket() as probe:
                probe.settimeout(1.0)
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return proxy
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not listen on {port}:\n{proxy.log()}")
            time.sleep(0.05)

    try:
        yield start
    finally:
        for proxy in started:
            if proxy.process.poll() is None:
                proxy.process.send_signal(signal.SIGTERM)
            stop(proxy.process)


# -- the clients --------------------------------------------------------------------------------------------
async def run_clients(
    url: str, clients: int, rounds: int, upgrade: int, base: str = "polling"
) -> list[dict[str, Any]]:
    """Run sticky_client.mjs (bounded by CLIENT_TIMEOUT) and return its per-client report."""
    node = require_node_client()
    with trio.fail_after(CLIENT_TIMEOUT):
        result = await trio.run_process(
            [node, str(CLIENT_SCRIPT), url, str(clients), str(rounds), str(upgrade), base],
            cwd=INTEROP_DIR,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = result.stdout.decode("utf-8", "replace")
    reports = [line.removeprefix("REPORT ") for line in out.splitlines() if line.startswith("REPORT ")]
    assert result.returncode == 0 and len(reports) == 1, f"{out}\n{result.stderr.decode('utf-8', 'replace')}"
    report: list[dict[str, Any]] = json.loads(reports[0])
    assert [client["name"] for client in report] == [f"c{index}" for index in range(clients)]
    return report


CLIENTS = 10  # 9 on long-polling, 1 on the default transports (it upgrades)
ROUNDS = 25


async def test_cookie_keeps_polling_clients_on_their_server(
    members: list[Member], haproxy: Callable[[str, list[Member]], HAProxy]
) -> None:
    """The committed config: every client stays on one server, both servers hold polling sessions,
    and every line said reaches every client, whichever server it was said on, with no error."""
    proxy = haproxy(CONFIG.read_text(), members)
    report = await run_clients(proxy.url, CLIENTS, ROUNDS, upgrade=1)
    names = [client["name"] for client in report]
    for client in report:
        assert client["errors"] == [], (client, proxy.log()[-3000:])
        assert client["server"] in SERVERS, client
        # the cookie HAProxy set is the one of the server that welcomed the client
        assert client["cookie"] == {"SERVERID": client["server"]}, client
        assert client["connected"] is True, client
        assert client["acks"] == ROUNDS, client
        # every line of every client (on either server) reached it exactly once
        assert client["said"] == dict.fromkeys(names, ROUNDS), client
    polling = [client for client in report if client["transports"] == "polling"]
    upgraded = [client for client in report if client["transports"] == "default"]
    assert all(client["transport"] == "polling" for client in polling)
    assert [client["transport"] for client in upgraded] == ["websocket"]
    assert {client["server"] for client in polling} == set(SERVERS), "sessions on one server only"

    # HAProxy's log until the clients closed (the script's boundary request): no request failed,
    # and each polling session made many round trips, every one answered by the server that holds
    # it. (A poll crossing its client's close may rightly be refused: the session is gone.)
    await proxy.logged(BOUNDARY)
    requests = proxy.requests(until=BOUNDARY)
    assert requests, proxy.log()
    statuses = Counter(request["status"] for request in requests)
    assert set(statuses) <= {"200", "101"}, (statuses, proxy.log()[-3000:])
    assert statuses["200"] >= len(polling) * ROUNDS, statuses
    by_sid: dict[str, Counter[str]] = {}
    for request in requests:
        if request["sid"]:
            by_sid.setdefault(request["sid"], Counter())[request["server"]] += 1
    for client in polling:
        servers = by_sid.get(client["sid"])
        assert servers is not None and set(servers) == {client["server"]}, (client, servers)
        assert sum(servers.values()) >= ROUNDS, (client, servers)  # at least one POST per line said
    assert {request["server"] for request in requests} == set(SERVERS)


async def test_without_the_cookie_polling_clients_fail(
    members: list[Member], haproxy: Callable[[str, list[Member]], HAProxy]
) -> None:
    """The negative control: the same config without its cookie settings (plain round robin) sends the
    requests of a session to both servers; the one that does not hold it answers 400 "Session ID
    unknown" and the clients fail."""
    proxy = haproxy(without_cookie(CONFIG.read_text()), members)
    clients, rounds = 8, 10
    report = await run_clients(proxy.url, clients, rounds, upgrade=0)
    for client in report:
        assert client["cookie"] == {}, client
        assert client["errors"], f"a polling client went through without stickiness: {client}"
        assert client["acks"] < rounds, client
    errors = [error for client in report for error in client["errors"]]
    unknown = [e for e in errors if e["status"] == "400" and "Session ID unknown" in str(e["body"])]
    assert unknown, errors
    assert "400" in Counter(request["status"] for request in proxy.requests()), proxy.log()[-3000:]


async def test_websocket_only_clients_need_no_cookie(
    members: list[Member], haproxy: Callable[[str, list[Member]], HAProxy]
) -> None:
    """The same cookie-less config serves clients on WebSocket only (``transports: ["websocket"]``):
    a session is one connection, which stays on the server it reached; sessions on both servers,
    every line to every client, no error. (So the control above fails for want of stickiness, not
    for a broken proxy.)"""
    proxy = haproxy(without_cookie(CONFIG.read_text()), members)
    clients, rounds = 8, 10
    report = await run_clients(proxy.url, clients, rounds, upgrade=0, base="websocket")
    names = [client["name"] for client in report]
    for client in report:
        assert client["errors"] == [], client
        assert client["cookie"] == {}, client
        assert client["transport"] == "websocket", client
        assert client["acks"] == rounds, client
        assert client["said"] == dict.fromkeys(names, rounds), client
    assert {client["server"] for client in report} == set(SERVERS)
