"""docs/guide/scaling.md: what its Python blocks print is what the page shows, and its HAProxy
configuration is the tested one (tests/test_sticky_sessions.py runs examples/cluster/haproxy.cfg).

The page's blocks start two servers on the session's redis-server, connect Trio clients to them, and
print what crossed servers; each ``text`` block after them is the expected output, and the output of
the whole page must be those blocks, in order.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest
import trio
from helpers import docs_blocks

PAGE = "guide/scaling.md"


async def test_the_page_prints_what_it_shows(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    shown = "".join(block.source for block in docs_blocks.blocks(PAGE) if block.info == "text")
    printed = io.StringIO()
    with trio.fail_after(60), contextlib.redirect_stdout(printed):
        namespace, ran = await docs_blocks.run_blocks(PAGE)
    assert ran == len(docs_blocks.python_blocks(PAGE)) >= 5
    assert printed.getvalue() == shown
    assert namespace["REDIS_URL"] == redis_url


def test_the_page_includes_the_tested_haproxy_config() -> None:
    text = (docs_blocks.DOCS / PAGE).read_text(encoding="utf-8")
    included = re.findall(r"```\{literalinclude\} (\S+)", text)
    assert included == ["../../examples/cluster/haproxy.cfg"]
    config = (docs_blocks.DOCS / "guide" / included[0]).resolve()
    assert config.is_file()
    assert "cookie SERVERID insert indirect nocache" in config.read_text()
