"""Test sessions: ``nox`` runs tests, lint, typecheck and docs; ``nox -s bench`` is not a default."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

TEST_DEPS = [
    "pytest>=8",
    "pytest-trio>=0.8",
    "hypothesis>=6.100",
    "python-socketio[asyncio-client]>=5.11",
    "coredis>=6.9",
    "msgpack>=1.0",
    "prometheus_client>=0.20",
    "grimp>=3.5",
    # The ASGI front door's tests: Hypercorn's trio worker, and the frameworks of the ASGI examples.
    "hypercorn[trio]>=0.17",
    "starlette>=0.37",
    "quart-trio>=0.11",
    # The Admin UI (trio-rooms[admin]) and the real page in headless Chromium.
    "bcrypt>=4.1",
    "selenium>=4.20",
    # tests/test_packaging.py: python -m build --no-isolation (setuptools of PEP 639), twine check.
    "setuptools>=77",
    "build>=1.2",
    "twine>=6.1",
]


# The npm projects the tests use: the JavaScript clients and Node servers of the interop tests, and the
# examples' own packages. `nox -s tests` runs `npm ci` in each that has a package-lock.json.
NPM_PROJECTS = ("tests/interop", "examples/cluster", "examples/browser")


def npm_ci(session: nox.Session) -> None:
    """``npm ci`` in each of NPM_PROJECTS present; without npm, say which tests will not run."""
    projects = [project for project in NPM_PROJECTS if Path(project, "package-lock.json").is_file()]
    if shutil.which("npm") is None:
        session.warn(
            f"npm is not on PATH: no `npm ci` in {', '.join(projects)}. The tests that need Node.js and "
            "these packages are skipped, each with its reason (they fail when CI=true). "
            "Install Node.js >= 18 with npm to run them."
        )
        return
    for project in projects:
        session.run("npm", "ci", "--no-audit", "--no-fund", "--prefix", project, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite, after ``npm ci`` for the interop tests and the examples (when npm exists).

    pytest runs with ``-ra`` (pyproject.toml): the summary gives the reason of every skip.
    """
    session.install("-e", ".", *TEST_DEPS)
    npm_ci(session)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (with the ASYNC rules), ruff format --check, and the import-linter contracts of the layers."""
    session.install("-e", ".", "ruff==0.17.6", "import-linter==2.17")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the examples."""
    session.install("-e", ".", "mypy==2.4.1", *TEST_DEPS)
    session.run("mypy", "--strict")


DOCS_DEPS = [
    "sphinx==9.0.4",
    "myst-parser==5.2.0",
    "furo==2025.12.19",
    "sphinxcontrib-trio==1.2.0",
]


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into docs/_build/html: warnings are errors, every reference resolves.

    No website is reached: intersphinx reads local inventories only (docs/conf.py): Python's from
    Debian's python3-doc, trio's built here from the sdist of the installed trio (the package index
    is the one network access; docs/trio_inventory.py, a few seconds, reused once built).
    """
    session.install("-e", ".[redis,metrics,admin]", *DOCS_DEPS)
    session.run("python", "docs/trio_inventory.py")
    session.run("sphinx-build", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html")


BENCH_DEPS = [
    "python-socketio==5.18.1",
    "aiohttp==3.14.5",
    # trio_rooms.ASGIApp under Hypercorn's trio worker; python-socketio's ASGIApp under uvicorn.
    "hypercorn[trio]==0.18.0",
    "uvicorn[standard]==0.55.0",
    "matplotlib==3.11.2",  # chart.py
]


@nox.session
def bench(session: nox.Session) -> None:
    """Broadcast benchmarks beside Node socket.io and python-socketio (not in CI; benchmarks/README.md).

    ``nox -s bench`` runs N = 1000 and 10,000, three runs each; ``nox -s bench -- --quick`` one run at 1000.
    """
    session.install("-e", ".", *BENCH_DEPS)
    session.run("npm", "ci", "--no-audit", "--no-fund", "--prefix", "benchmarks", external=True)
    session.run("python", "benchmarks/run.py", *session.posargs)
