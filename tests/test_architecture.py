"""The house keeps its shape: no import cycle at run time, no module over ~600 lines, and a public
surface that a refactor cannot drop or leak a name from (as trio's test_exports.py does). The layers
themselves are import-linter's contracts (pyproject.toml, ``lint-imports`` in ``nox -s lint``)."""

from __future__ import annotations

import importlib
from pathlib import Path

import grimp
import pytest

import trio_rooms
import trio_rooms.engine

PACKAGE = Path(trio_rooms.__file__).resolve().parent
MAX_LINES = 600


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one module
    (and the modules that import themselves), by Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.find_modules_directly_imported_by(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            if successors:
                nxt = successors.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or graph.direct_import_exists(importer=node, imported=node):
                    found.append(sorted(component))
    return found


def test_no_import_cycle_at_run_time() -> None:
    """Every import that runs (module-level and function-level ones; not those under
    ``if TYPE_CHECKING:``) goes one way: the modules form no cycle."""
    graph = grimp.build_graph("trio_rooms", exclude_type_checking_imports=True, cache_dir=None)
    assert len(graph.modules) > 40
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.d", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_module_over_600_lines() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert len(sizes) > 40
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


TRIO_ROOMS_EXPORTS = [
    "ASGIApp",
    "AckTimeout",
    "Adapter",
    "AdapterError",
    "BroadcastOperator",
    "BroadcastOptions",
    "Client",
    "ConnectionRefused",
    "ConnectionStateRecovery",
    "DisconnectReason",
    "Disconnected",
    "EngineServer",
    "Handshake",
    "HttpRequest",
    "HttpResponse",
    "InMemoryAdapter",
    "LocalProtocolError",
    "Namespace",
    "NamespaceRejected",
    "ProtocolError",
    "RedisAdapter",
    "RedisStreamsAdapter",
    "RemoteProtocolError",
    "RemoteSocket",
    "Room",
    "Server",
    "Socket",
    "SocketId",
    "TrioRoomsError",
    "open_client",
    "run",
    "serve_until_signal",
]

ENGINE_EXPORTS = [
    "ConnectionErrorEvent",
    "EngineErrorCode",
    "EngineOptions",
    "EngineServer",
    "EngineSession",
    "HttpRequest",
    "HttpResponse",
]


@pytest.mark.parametrize(
    ("module", "expected"),
    [("trio_rooms", TRIO_ROOMS_EXPORTS), ("trio_rooms.engine", ENGINE_EXPORTS)],
)
def test_public_surface(module: str, expected: list[str]) -> None:
    """``__all__`` is exactly the documented surface, and every name in it exists."""
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(expected)
    for name in imported.__all__:
        assert getattr(imported, name) is not None, name


def test_public_names_have_no_private_home() -> None:
    """What ``trio_rooms`` exports is defined in a public module (no ``_private`` home)."""
    for name in trio_rooms.__all__:
        home = getattr(getattr(trio_rooms, name), "__module__", "trio_rooms")
        assert not any(part.startswith("_") for part in home.split(".")), (name, home)
