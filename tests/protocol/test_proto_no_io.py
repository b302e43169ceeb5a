"""protocol/ is sans IO: its modules never import trio, trio_websocket, socket or time (nor kin)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trio_rooms.protocol

PROTOCOL_DIR = Path(trio_rooms.protocol.__file__).parent
FORBIDDEN = {"trio", "trio_websocket", "socket", "time", "asyncio", "selectors", "threading", "ssl", "anyio"}
SOURCES = sorted(PROTOCOL_DIR.rglob("*.py"))
#: What a module of protocol/ may import from outside protocol/: the bottom of the house only.
BOTTOM = {"errors", "types"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module is not None:
                roots.add(node.module.partition(".")[0])
            elif node.level >= 2:
                # relative imports may leave protocol/ only for the bottom (errors, types)
                depth = len(path.relative_to(PROTOCOL_DIR).parts)  # 1 in protocol/, 2 in protocol/cluster/
                if node.level > depth:
                    assert node.level == depth + 1 and node.module in BOTTOM, ast.dump(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            raise AssertionError(f"dynamic import in {path.name}")
    return roots


def test_sources_found() -> None:
    assert {p.name for p in SOURCES} >= {
        "__init__.py",
        "engineio.py",
        "socketio.py",
        "jsonjs.py",
        "websocket.py",
    }


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PROTOCOL_DIR)))
def test_no_io_imports(path: Path) -> None:
    assert not _imported_roots(path) & FORBIDDEN
    assert "importlib" not in _imported_roots(path)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PROTOCOL_DIR)))
def test_module_rule_and_size(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{path.name} must open with a docstring stating its rule"
    assert len(path.read_text(encoding="utf-8").splitlines()) < 500
