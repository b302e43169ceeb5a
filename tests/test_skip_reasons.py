"""``pytest -ra`` prints the reason of every skip, Trio tests included (tests/helpers/skip_reasons.py).

A skip inside a Trio test (``missing("run npm ci ...")`` in an async test) reached the summary as
``_pytest/python.py:187: Skipped``: pytest-trio re-raises it without its reason. This runs pytest on
a small file of such tests, with and without the hook, in a subprocess.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio

TESTS = Path(__file__).resolve().parent
PYTEST_TIMEOUT = 60.0

SKIPPING = """
import pytest
import trio


def needs_a_tool() -> None:
    pytest.skip("the tool is missing: install it")


async def test_skip_in_the_test() -> None:
    pytest.skip("plain reason")


async def test_skip_in_a_nursery() -> None:
    async with trio.open_nursery():
        needs_a_tool()


def test_sync_skip() -> None:
    pytest.skip("sync reason")


async def test_fails() -> None:
    assert False, "a failure stays a failure"
"""


async def _pytest(tmp_path: Path, *options: str) -> str:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    with trio.fail_after(PYTEST_TIMEOUT):
        result = await trio.run_process(
            [sys.executable, "-m", "pytest", "-ra", "-p", "no:cacheprovider", *options, "test_skipping.py"],
            cwd=tmp_path,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = result.stdout.decode()
    assert result.returncode == 1, out  # the one failing test
    assert "1 failed, 3 skipped" in out, out
    return out


async def test_every_skip_shows_its_reason(tmp_path: Path) -> None:
    out = await _pytest(tmp_path, "-p", "helpers.skip_reasons")
    assert "SKIPPED [1] test_skipping.py:11: plain reason" in out, out
    assert "SKIPPED [1] test_skipping.py:7: the tool is missing: install it" in out, out
    assert "SKIPPED [1] test_skipping.py:20: sync reason" in out, out
    assert "Skipped\n" not in out and "python.py" not in out, out
    assert "FAILED test_skipping.py::test_fails" in out, out


@pytest.mark.skipif(sys.platform == "win32", reason="the same on every platform; one is enough")
async def test_without_the_hook_pytest_trio_loses_them(tmp_path: Path) -> None:
    """The control: if this fails, pytest-trio keeps the reasons now, and the hook can go."""
    out = await _pytest(tmp_path)
    assert "plain reason" not in out and "the tool is missing" not in out, out
    assert "SKIPPED [1] test_skipping.py:20: sync reason" in out, out
