"""Every Python code block of the documentation's guide pages runs (rules in tests/helpers/docs_blocks.py).

The session's summary says how many blocks ran, from how many pages (``pytest_terminal_summary`` in
tests/conftest.py), so a page whose blocks stopped running shows in the count.
"""

from __future__ import annotations

import pytest
import trio
from helpers import docs_blocks

PAGES = docs_blocks.pages()


@pytest.mark.parametrize("page", PAGES)
async def test_page_blocks_run(
    page: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (docs_blocks.DOCS / page).read_text(encoding="utf-8")
    if "REDIS_URL" in text:
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_url"))
    with trio.fail_after(60):
        _, ran = await docs_blocks.run_blocks(page)
    docs_blocks.RAN[page] = ran
    shown = docs_blocks.python_blocks(page)
    assert ran == sum(1 for block in shown if not block.is_foreign)


def test_the_guide_has_pages() -> None:
    assert "index.md" in PAGES
    assert any(page.startswith("guide/") for page in PAGES)


def test_blocks_are_found_with_their_lines_and_options() -> None:
    found = docs_blocks.parse_blocks(
        "guide/sample.md",
        "# t\n\n```python\nx = 1\n```\n\n````markdown\n```python\nnot_run = 1\n```\n````\n\n"
        "- item\n\n  ```python\n  y = x + 1\n  ```\n\n"
        "```{code-block} python\n:class: foreign\n\nimport socketio\n```\n"
        "\n```console\n$ nox\n```\n",
    )
    assert [(b.info, b.line) for b in found] == [
        ("python", 4),
        ("markdown", 8),
        ("python", 16),
        ("{code-block} python", 21),
        ("console", 26),
    ]
    assert found[1].source == "```python\nnot_run = 1\n```\n"
    assert found[2].source == "y = x + 1\n"
    assert found[3].is_foreign and found[3].source == "\nimport socketio\n"


def test_a_text_block_right_after_a_python_block_is_its_output() -> None:
    outputs = docs_blocks.expected_outputs("guide/quickstart.md")
    assert list(outputs.values()) == ["bob heard 'hello' from alice: True\n"]


GOOD = '# p\n```python\nprint("x is", x)\n```\n\n```text\nx is 2\n```\n'


async def test_a_block_prints_what_the_page_shows_or_fails() -> None:
    _, ran = await docs_blocks.run_blocks("guide/sample.md", {"x": 2}, text=GOOD)
    assert ran == 1
    with pytest.raises(AssertionError, match=r"sample.md:3 printed 'x is 3\\n', the page shows 'x is 2\\n'"):
        await docs_blocks.run_blocks("guide/sample.md", {"x": 3}, text=GOOD)
    more = GOOD + '\n```python\nprint("more")\n```\n'
    with pytest.raises(AssertionError, match=r"sample.md:11 printed 'more\\n', the page shows ''"):
        await docs_blocks.run_blocks("guide/sample.md", {"x": 2}, text=more)
