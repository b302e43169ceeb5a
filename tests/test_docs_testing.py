"""The tests that the guide's page on testing (docs/guide/testing.md) shows pass under pytest-trio,
with the fixtures they name (issue 18).

The page's blocks run once (docs_blocks.run_blocks); the test functions and the fixture they
define are then this module's, so pytest collects and runs them as it would in an application: the
real-socket test through the page's ``url`` fixture, the virtual-time test with pytest-trio's
``autojump_clock``. The page's ``trio.run`` recipe for virtual time outside pytest is run too.
"""

from __future__ import annotations

import time
from typing import Any

import trio
import trio.testing
from helpers import docs_blocks

PAGE: dict[str, Any] = trio.run(docs_blocks.run_blocks, "guide/testing.md")[0]

url = PAGE["url"]  # the page's fixture
test_a_right_answer = PAGE["test_a_right_answer"]
test_a_wrong_answer = PAGE["test_a_wrong_answer"]
test_no_answer_is_too_late = PAGE["test_no_answer_is_too_late"]


def test_the_page_defines_the_tests_it_shows() -> None:
    shown = sorted(name for name in PAGE if name.startswith("test_"))
    assert shown == ["test_a_right_answer", "test_a_wrong_answer", "test_no_answer_is_too_late"]


def test_virtual_time_outside_pytest_takes_no_real_time() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    started = time.monotonic()
    trio.run(test_no_answer_is_too_late, clock, clock=clock)  # the page's recipe
    assert clock.current_time() >= 30
    assert time.monotonic() - started < 10
