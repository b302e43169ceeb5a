"""What the guide pages on recovery, ASGI, the Admin UI and metrics, performance, security and migration
say, checked against the code where their runnable blocks cannot show it (issue 18).

- (What a block prints is what the page shows: checked when tests/test_docs_blocks.py runs the page.)
- The tables: the recoverable disconnect reasons of recovery.md, the defaults of security.md's tables,
  the metric names of admin-metrics.md, and every ``server.*`` / ``socket.*`` name of migration.md's
  trio_rooms column exist and are what the code has.
- The images the pages show exist (Sphinx copies them; the build fails on a missing one).
"""

from __future__ import annotations

import inspect
import re

import pytest
import trio
from helpers import docs_blocks
from prometheus_client.metrics_core import Metric

import trio_rooms
from trio_rooms.recovery import RECOVERABLE_REASONS


def text(page: str) -> str:
    return (docs_blocks.DOCS / page).read_text(encoding="utf-8")


def section(page: str, heading: str) -> str:
    """The text of ``page`` from the line ``heading`` to the next heading of the same level or above."""
    lines = text(page).splitlines()
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level
        ),
        len(lines),
    )
    return "\n".join(lines[start:end])


def table_rows(chunk: str) -> list[list[str]]:
    """The cells of every Markdown table row of ``chunk`` (header rows and separators left out)."""
    rows = []
    for line in chunk.splitlines():
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def test_some_outputs_are_checked() -> None:
    assert docs_blocks.expected_outputs("guide/recovery.md")
    assert len(docs_blocks.expected_outputs("guide/admin-metrics.md")) == 2


def test_the_recoverable_reasons_are_the_codes() -> None:
    how = section("guide/recovery.md", "## How it works")
    reasons = how.split("a reason its client did not choose (", 1)[1].split(")", 1)[0]
    listed = set(re.findall(r'`"([a-z ]+)"`', reasons))
    assert listed == {reason.value for reason in RECOVERABLE_REASONS}


def test_the_recovery_defaults_are_the_codes() -> None:
    defaults = trio_rooms.ConnectionStateRecovery()
    first = docs_blocks.python_blocks("guide/recovery.md")[0].source
    assert f"max_disconnection_duration={defaults.max_disconnection_duration}" in first
    assert f"skip_middlewares={defaults.skip_middlewares}" in first
    assert f"max_stored_packets={defaults.max_stored_packets:_}" in first


_UNITS = {"s": 1.0, "bytes": 1, "KiB": 1024, "MiB": 1024 * 1024}


def _documented_default(cell: str) -> float | None:
    """The number of a default cell: "10 s", "4 MiB per connection", "1,000,000 bytes", "32"."""
    match = re.match(r"^([\d,.]+)(?: (s|bytes|KiB|MiB))?\b", cell)
    if match is None:
        return None
    return float(match[1].replace(",", "")) * _UNITS.get(match[2] or "", 1)


def test_the_security_tables_give_the_servers_defaults() -> None:
    parameters = inspect.signature(trio_rooms.Server).parameters
    checked = []
    for row in table_rows(section("guide/security.md", "## Limits and defaults")):
        names = re.findall(r"`([a-z_]+)`", row[0])
        if len(names) != 1 or names[0] not in parameters:
            continue
        documented = _documented_default(row[1])
        assert documented == parameters[names[0]].default, row
        checked.append(names[0])
    # the heartbeat row: "`ping_interval` + `ping_timeout`" | "25 s + 20 s"
    assert parameters["ping_interval"].default == 25.0 and parameters["ping_timeout"].default == 20.0
    assert "| `ping_interval` + `ping_timeout` | 25 s + 20 s |" in text("guide/security.md")
    assert len(checked) == 15, checked


def test_the_security_page_sizes_are_the_codes() -> None:
    from trio_rooms.engine.h11io import MAX_HEADERS, MAX_REQUEST_HEAD_BYTES
    from trio_rooms.engine.handle import INBOUND_SIZE
    from trio_rooms.protocol.engineio import DEFAULT_MAX_PAYLOAD_PACKETS
    from trio_rooms.protocol.http11 import MAX_FRAMING_LINE

    page = text("guide/security.md")
    assert MAX_REQUEST_HEAD_BYTES == 16 * 1024 and "| request head | 16 KiB | 431 |" in page
    assert f"| headers per request | {MAX_HEADERS} | 431 |" in page
    assert f"| packets per polling body | {DEFAULT_MAX_PAYLOAD_PACKETS} |" in page
    assert f"| chunk-size line (chunked bodies) | {MAX_FRAMING_LINE} bytes | 400 |" in page
    assert INBOUND_SIZE == 64 and "| events queued per socket | 64 |" in page


def test_the_metrics_table_lists_every_metric() -> None:
    server = trio_rooms.Server(metrics=True)
    assert server.metrics_registry is not None
    families: list[Metric] = list(server.metrics_registry.collect())
    exposed = {f"{family.name}_total" if family.type == "counter" else family.name for family in families}
    rows = table_rows(section("guide/admin-metrics.md", "### The metrics"))
    documented = {re.sub(r"\{.*\}", "", row[0].strip("`")) for row in rows if row[0].startswith("`")}
    assert documented == exposed
    types = {row[0].strip("`").split("{")[0]: row[1] for row in rows if row[0].startswith("`")}
    for family in families:
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert types[name] == family.type, name


_ATTRIBUTE = re.compile(r"\b(socket|server)\.([a-z_]+)")


async def test_the_migration_tables_name_what_exists() -> None:
    server = trio_rooms.Server()
    sockets: list[trio_rooms.Socket] = []

    @server.on("connection")
    async def keep(socket: trio_rooms.Socket) -> None:
        sockets.append(socket)

    names: set[tuple[str, str]] = set()
    for heading in ("## python-socketio's names beside ours", "## Node's server API beside ours"):
        for row in table_rows(section("guide/migration.md", heading)):
            names.update(_ATTRIBUTE.findall(row[-1]))
    assert len(names) > 40
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(server.serve, "127.0.0.1", 0)
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            async with trio_rooms.open_client(url, transports=("websocket",)):
                socket = sockets[0]
                objects = {"socket": socket, "server": server}
                missing = sorted(f"{who}.{name}" for who, name in names if not hasattr(objects[who], name))
            nursery.cancel_scope.cancel()
    assert missing == []


def test_migration_names_python_socketios_real_api() -> None:
    socketio = pytest.importorskip("socketio")
    server_names: set[str] = set()
    for row in table_rows(section("guide/migration.md", "## python-socketio's names beside ours")):
        server_names.update(re.findall(r"\bsio\.([a-z_]+)\(", row[0]))
    assert len(server_names) > 15
    assert sorted(name for name in server_names if not hasattr(socketio.AsyncServer, name)) == []
    assert hasattr(socketio, "ASGIApp") and hasattr(socketio, "AsyncRedisManager")
    assert hasattr(socketio.exceptions, "ConnectionRefusedError")


def test_the_images_exist() -> None:
    for page in ("guide/admin-metrics.md", "guide/performance.md"):
        images = re.findall(r"^```\{image\} (\S+)$", text(page), flags=re.MULTILINE)
        assert images, page
        for image in images:
            assert ((docs_blocks.DOCS / page).parent / image).resolve().is_file(), image
