"""Real Redis servers for the tests, started from Debian's redis-server package (installed by .ci/run).

Fixtures (session-scoped; names are stable, other test modules build on them):

- ``redis_server`` -> ``RedisServer``: one ``redis-server`` on a free port (``--save '' --appendonly no``),
  with ``.url``, ``.port``, ``.stop()`` and ``.start()`` (same port) for fault tests.
- ``redis_url`` -> ``str``: that server's URL, ``redis://127.0.0.1:PORT``.
- ``redis_cluster_urls`` -> ``list[str]``: the node URLs of a 3-node Redis Cluster (``--cluster-enabled
  yes``, a temporary ``--cluster-config-file``, ports p and p + 10000 free, ``redis-cli --cluster create
  --cluster-replicas 0 --cluster-yes``, then ``cluster_state:ok`` on every node).

Without redis-server the tests that use them skip, except on CI (``CI=true``) where they fail.
Plain synchronous code (subprocess, socket): the fixtures are set up outside any trio run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "free_port", "redis_cluster_urls", "redis_server", "redis_url", "require_redis"]

START_TIMEOUT = 10.0


def require_redis() -> tuple[str, str]:
    """The paths of redis-server and redis-cli; skip (fail on CI) when missing."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        message = "redis-server/redis-cli not found (apt-get install -y redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return server, cli


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free TCP port on 127.0.0.1 (and, ``with_bus``, port + 10000 free too, below 55536)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not with_bus:
            return port
        if port < 55536 and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port (pair) found")


def _ping(cli: str, port: int, *command: str) -> str | None:
    try:
        result = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(port), *command],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    return result.stdout if result.returncode == 0 else None


def _wait_for(check: object, what: str, timeout: float = START_TIMEOUT) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class RedisServer:
    """One redis-server process on a fixed port, which a test may stop and start again.

    Args:
        port: its port.
        workdir: its working directory.
        extra: more command-line options.
    """

    def __init__(self, port: int, workdir: Path, extra: tuple[str, ...] = ()) -> None:
        self.server, self.cli = require_redis()
        self.port = port
        self.workdir = workdir
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        if self.process is not None:
            return
        self.process = subprocess.Popen(
            [
                self.server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(lambda: _ping(self.cli, self.port, "PING") == "PONG\n", f"redis-server on {self.port}")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait until it is gone."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """``stop()`` then ``start()`` on the same port."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the whole session (tests may stop and restart it: it is left running)."""
    require_redis()
    with tempfile.TemporaryDirectory(prefix="trio-rooms-redis-") as workdir:
        server = RedisServer(free_port(), Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's redis-server (``redis://127.0.0.1:PORT``)."""
    if redis_server.process is None:  # a fault test left it stopped
        redis_server.start()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster_urls() -> Iterator[list[str]]:
    """A 3-node Redis Cluster (no replicas) for the session: the URLs of its nodes."""
    _server, cli = require_redis()
    with tempfile.TemporaryDirectory(prefix="trio-rooms-redis-cluster-") as workdir:
        nodes: list[RedisServer] = []
        try:
            for index in range(3):
                port = free_port(with_bus=True)
                node_dir = Path(workdir) / str(index)
                node_dir.mkdir()
                node = RedisServer(
                    port,
                    node_dir,
                    (
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(node_dir / "nodes.conf"),
                        "--cluster-node-timeout",
                        "5000",
                    ),
                )
                node.start()
                nodes.append(node)
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{node.port}" for node in nodes),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                timeout=30,
                check=True,
            )
            for node in nodes:
                _wait_for(
                    lambda node=node: "cluster_state:ok" in (_ping(cli, node.port, "CLUSTER", "INFO") or ""),
                    f"cluster_state:ok on {node.port}",
                    timeout=30,
                )
            yield [node.url for node in nodes]
        finally:
            for node in nodes:
                node.stop()
