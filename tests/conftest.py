"""Shared fixtures: the real Redis servers of tests/helpers/redis_fixtures.py, re-exported for every
test module; and the hook that keeps the reason of a skip inside a Trio test (helpers/skip_reasons.py)."""

import os

import pytest
from helpers import docs_blocks
from helpers.redis_fixtures import redis_cluster_urls as redis_cluster_urls
from helpers.redis_fixtures import redis_server as redis_server
from helpers.redis_fixtures import redis_url as redis_url
from helpers.skip_reasons import pytest_runtest_makereport as pytest_runtest_makereport
from hypothesis import settings

__all__ = ["pytest_runtest_makereport", "redis_cluster_urls", "redis_server", "redis_url"]

# On CI, the property tests draw the same examples every run (a failure there is reproducible, never a
# flake); elsewhere they explore anew each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many Python code blocks of the documentation ran (tests/test_docs_blocks.py)."""
    if docs_blocks.RAN:
        total = sum(docs_blocks.RAN.values())
        terminalreporter.write_line(
            f"docs: {total} Python code blocks run from {len(docs_blocks.RAN)} pages "
            + ", ".join(f"{page} {count}" for page, count in sorted(docs_blocks.RAN.items()))
        )
