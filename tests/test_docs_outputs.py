"""What the guide's examples print is what the guide shows (issue 18).

A ```text block that directly follows a ```python block (nothing but blank lines between them) is
that block's output: the blocks of each page are run in order (as tests/test_docs_blocks.py runs
them), the standard output of each block is captured, and it must equal its text block, or be empty
when it has none. So a printed line in the guide cannot drift from the code, and an example that
prints from an ``except`` clause fails here when the exception is not raised.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import itertools
from typing import Any

import pytest
import trio
from helpers import docs_blocks

PAGES = (
    "guide/quickstart.md",
    "guide/rooms.md",
    "guide/namespaces.md",
    "guide/events.md",
    "guide/hooks.md",
    "guide/client.md",
    "guide/testing.md",
)


def expected_outputs(page: str) -> dict[int, str]:
    """The text block that follows each Python block directly, by the Python block's first line."""
    lines = (docs_blocks.DOCS / page).read_text(encoding="utf-8").splitlines()
    found = docs_blocks.blocks(page)
    outputs: dict[int, str] = {}
    for block, after in itertools.pairwise(found):
        if block.is_python and after.info == "text":
            closing = block.line - 1 + block.source.count("\n")  # the closing fence, 0-based
            if not any(line.strip() for line in lines[closing + 1 : after.line - 2]):
                outputs[block.line] = after.source
    return outputs


def test_outputs_are_found() -> None:
    outputs = expected_outputs("guide/quickstart.md")
    assert list(outputs.values()) == ["bob heard 'hello' from alice: True\n"]


@pytest.mark.parametrize("page", [page for page in PAGES if (docs_blocks.DOCS / page).is_file()])
async def test_each_block_prints_what_the_page_shows(page: str) -> None:
    expected = expected_outputs(page)
    namespace: dict[str, Any] = {"__name__": "__docs__", "__file__": str(docs_blocks.DOCS / page)}
    checked = 0
    with trio.fail_after(60):
        try:
            for block in docs_blocks.python_blocks(page):
                source = "\n" * (block.line - 1) + block.source
                flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
                code = compile(source, str(docs_blocks.DOCS / page), "exec", flags=flags)
                captured = io.StringIO()
                with contextlib.redirect_stdout(captured):
                    result = eval(code, namespace)
                    if inspect.iscoroutine(result):
                        await result
                assert captured.getvalue() == expected.get(block.line, ""), f"{page}:{block.line}"
                checked += block.line in expected
        except BaseException:
            await close_sessions(namespace)
            raise
    assert checked == len(expected)


async def close_sessions(namespace: dict[str, Any]) -> None:
    """A page that failed half-way may have left its REPL-like session open (an ``AsyncExitStack``
    holding a serving nursery and clients): close it, so that the failure is reported as itself
    rather than as a corrupted cancel scope stack."""
    for value in namespace.values():
        if isinstance(value, contextlib.AsyncExitStack):
            await value.aclose()  # no scope of its own: the stack's nurseries are exited in order
