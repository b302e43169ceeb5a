"""docs/guide/scaling.md: its blocks start two servers on the session's redis-server and print what
crossed servers (the harness checks each output against the page: tests/test_docs_blocks.py); its
HAProxy configuration is the tested one (tests/test_sticky_sessions.py runs
examples/cluster/haproxy.cfg)."""

from __future__ import annotations

import re

from helpers import docs_blocks

PAGE = "guide/scaling.md"


def test_every_text_block_is_an_output() -> None:
    """Each ``text`` block of the page is the output of the Python block before it (which the
    harness checks when it runs the page, tests/test_docs_blocks.py)."""
    shown = [block for block in docs_blocks.blocks(PAGE) if block.info == "text"]
    assert len(docs_blocks.expected_outputs(PAGE)) == len(shown) >= 3


def test_the_page_includes_the_tested_haproxy_config() -> None:
    text = (docs_blocks.DOCS / PAGE).read_text(encoding="utf-8")
    included = re.findall(r"```\{literalinclude\} (\S+)", text)
    assert included == ["../../examples/cluster/haproxy.cfg"]
    config = (docs_blocks.DOCS / "guide" / included[0]).resolve()
    assert config.is_file()
    assert "cookie SERVERID insert indirect nocache" in config.read_text()
