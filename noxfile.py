"""Test sessions: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` is not a default."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

TEST_DEPS = ["pytest>=8", "pytest-trio>=0.8", "python-socketio[asyncio-client]>=5.11"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (needs node + npm ci in tests/interop for the interop tests)."""
    session.install("-e", ".", *TEST_DEPS)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (with the ASYNC rules) and ruff format --check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the examples."""
    session.install("-e", ".", "mypy>=1.10", *TEST_DEPS)
    session.run("mypy", "--strict")
