"""The Python code blocks of the documentation's pages, found and run (tests/test_docs_blocks.py).

Rules (the pages are written for them):

- Every fenced block whose language is ``python`` (or ``py``, or a ``{code-block} python`` directive)
  in ``docs/index.md`` and ``docs/guide/*.md`` is run. Other languages (``console``, ``text``,
  ``javascript``, ``toml``, ...) are shown only.
- The blocks of one page run in order, in one namespace, inside one trio run: a later block sees what
  an earlier one defined, and top-level ``await`` / ``async with`` / ``async for`` are allowed, as in
  trio's own REPL (``python -m trio``).
- ``__name__`` is ``"__docs__"``: a program's ``if __name__ == "__main__": trio.run(main)`` is not
  run by the harness (a page's own test may run ``main``).
- ``REDIS_URL`` is set to a real redis-server's URL when a page mentions it (blocks read it with
  ``os.environ.get("REDIS_URL", "redis://localhost:6379")``).
- A ``text`` block that directly follows a Python block (nothing but blank lines between them) is
  that block's output: what the block prints must equal it, and a block with no such text block
  prints nothing. So a printed line in the guide cannot drift from the code.
- Code of another library shown for comparison (python-socketio's, in the migration page only) is
  written as a ``{code-block} python`` directive with the option ``:class: foreign``: shown and
  counted, never run.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DOCS: Final = Path(__file__).resolve().parent.parent.parent / "docs"
FOREIGN_PAGES: Final = frozenset({"guide/migration.md"})

_FENCE = re.compile(r"^(?P<indent> {0,12})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_PYTHON_INFOS: Final = frozenset({"python", "py", "python3", "{code-block} python", "{code} python"})


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str  # relative to docs/, e.g. "guide/rooms.md"
    line: int  # 1-based line of the first line of code in the page
    info: str  # the fence's info string, e.g. "python"
    options: dict[str, str]  # a directive's ``:name: value`` options
    source: str

    @property
    def is_python(self) -> bool:
        """Whether the block is Python code."""
        return self.info in _PYTHON_INFOS

    @property
    def is_foreign(self) -> bool:
        """Whether the block is another library's code, shown for comparison (never run)."""
        return "foreign" in self.options.get("class", "").split()


def pages() -> list[str]:
    """The pages whose Python blocks are run, relative to docs/."""
    found = [DOCS / "index.md", *sorted((DOCS / "guide").glob("*.md"))]
    return [path.relative_to(DOCS).as_posix() for path in found if path.is_file()]


def blocks(page: str) -> list[Block]:
    """Every fenced code block of ``page`` (relative to docs/), in order."""
    return parse_blocks(page, (DOCS / page).read_text(encoding="utf-8"))


def parse_blocks(page: str, text: str) -> list[Block]:
    """Every fenced code block of the Markdown ``text`` of ``page``; a nested fence is content."""
    lines = text.splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        index += 1
        if match is None:
            continue
        indent, fence, info = len(match["indent"]), match["fence"], match["info"].strip()
        body: list[str] = []
        options: dict[str, str] = {}
        in_options = info.startswith("{")
        first_line = index + 1
        while index < len(lines):
            line = lines[index]
            index += 1
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            text = line[indent:] if line[:indent].isspace() or not line[:indent] else line.lstrip()
            option = re.match(r"^:([\w-]+):\s*(.*)$", text)
            if in_options and option is not None:
                options[option[1]] = option[2]
                continue
            if not body:
                first_line = index  # 1-based: `index` is already past this line
            in_options = False
            body.append(text)
        found.append(Block(page, first_line, info, options, "\n".join(body) + "\n"))
    return found


def python_blocks(page: str, text: str | None = None) -> list[Block]:
    """The Python blocks of ``page`` (of ``text`` given as its content)."""
    found = blocks(page) if text is None else parse_blocks(page, text)
    return [block for block in found if block.is_python]


def expected_outputs(page: str, text: str | None = None) -> dict[int, str]:
    """The text block that directly follows each Python block of ``page`` (of ``text`` given as its
    content), by the block's first line."""
    if text is None:
        text = (DOCS / page).read_text(encoding="utf-8")
    lines = text.splitlines()
    outputs: dict[int, str] = {}
    for block, after in itertools.pairwise(parse_blocks(page, text)):
        if block.is_python and after.info == "text":
            closing = block.line - 1 + block.source.count("\n")  # the closing fence, 0-based
            if not any(line.strip() for line in lines[closing + 1 : after.line - 2]):
                outputs[block.line] = after.source
    return outputs


async def run_blocks(
    page: str, namespace: dict[str, Any] | None = None, *, text: str | None = None
) -> tuple[dict[str, Any], int]:
    """Run the Python blocks of ``page`` in order in one namespace, each printing what the page shows
    after it; return the namespace and how many blocks ran. ``text``: the page's content, when it is
    not read from docs/.

    A block's code keeps its line numbers in the page, so a traceback points into the page. A page
    that fails half-way may leave its REPL-like session open (an ``AsyncExitStack`` holding a serving
    nursery and clients): it is closed, so that the failure is reported as itself.
    """
    if namespace is None:
        namespace = {"__name__": "__docs__", "__file__": str(DOCS / page)}
    expected = expected_outputs(page, text)
    ran = 0
    try:
        for block in python_blocks(page, text):
            if block.is_foreign:
                if page not in FOREIGN_PAGES:
                    raise AssertionError(
                        f"{page}:{block.line}: a foreign block outside {sorted(FOREIGN_PAGES)}"
                    )
                continue
            source = "\n" * (block.line - 1) + block.source
            code = compile(source, str(DOCS / page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                result = eval(code, namespace)
                if inspect.iscoroutine(result):
                    await result
            if printed.getvalue() != expected.get(block.line, ""):
                raise AssertionError(
                    f"{page}:{block.line} printed {printed.getvalue()!r}, "
                    f"the page shows {expected.get(block.line, '')!r}"
                )
            ran += 1
    except BaseException:
        for value in list(namespace.values()):
            if isinstance(value, contextlib.AsyncExitStack):
                await value.aclose()  # no scope of its own: the stack's nurseries are exited in order
        raise
    return namespace, ran


RAN: Final[dict[str, int]] = {}
"""Blocks run per page in this session (tests/test_docs_blocks.py fills it; the summary prints it)."""
