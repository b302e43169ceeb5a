"""Every skipped test says why: the reason of a ``pytest.skip`` inside a Trio test, which pytest-trio loses.

pytest-trio 0.8 runs an async test under ``trio.run``, where a ``pytest.skip(reason)`` reaches it wrapped
in an exception group (a nursery's, or the run's strict groups). It then raises a new, empty
``pytest.skip()`` from inside its ``except`` block, so ``pytest -ra`` prints ``Skipped`` with pytest's
own file as the place (``_pytest/python.py:187: Skipped``), and the reason (``npm ci`` missing, say) is
gone. The original group is still the new exception's ``__context__``: this hook takes the reason
from there, and the place from the test's own frame. ``tests/conftest.py`` installs it.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType

import pytest
from _pytest.outcomes import Skipped  # pytest.skip.Exception, as a type

__all__ = ["lost_skip", "pytest_runtest_makereport"]


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def lost_skip(exc: BaseException) -> Skipped | None:
    """The original skip behind pytest-trio's empty one (None when ``exc`` is not such a skip)."""
    if not isinstance(exc, Skipped) or exc.msg:
        return None
    group = exc.__context__
    if not isinstance(group, BaseExceptionGroup):
        return None
    leaves = _leaves(group)
    if len(leaves) == 1 and isinstance(leaves[0], Skipped) and leaves[0].msg:
        return leaves[0]
    return None


def _place(tb: TracebackType | None, path: str) -> tuple[str, int]:
    """Where the skip came from: the last frame of ``tb`` in the test's file ``path`` (the test's line
    that called the skip), else the last frame (the ``pytest.skip`` call)."""
    place = ("?", 0)
    in_test: tuple[str, int] | None = None
    while tb is not None:
        place = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        if place[0] == path:
            in_test = place
        tb = tb.tb_next
    return in_test or place


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Put a lost skip reason back into the report, at the test's line that led to the skip."""
    report = yield
    if report.skipped and call.excinfo is not None and isinstance(report.longrepr, tuple):
        original = lost_skip(call.excinfo.value)
        if original is not None:
            # item.path, not item.reportinfo(): pytest-trio's wrapper is the test function now.
            path, line = _place(original.__traceback__, str(item.path))
            report.longrepr = (path, line, f"Skipped: {original.msg}")
    return report
