"""The package is ready to publish: ``python -m build`` makes an sdist and a wheel (the wheel built from
the sdist, as ``build`` does), ``twine check --strict`` passes on both, and their contents are checked.

The build runs on a copy of the source tree (so that it writes nothing into the checkout), without
build isolation: the machines reach no index but the package registries, and the test environment
has setuptools. The install wording (the package is not on PyPI yet) is checked here too.
"""

from __future__ import annotations

import email.message
import email.parser
import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers.interop_harness import missing

import trio_rooms

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_rooms"
BUILD_TIMEOUT = 300.0  # seconds; about 3 s on an idle machine
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
NAME = f"trio_rooms-{trio_rooms.__version__}"
#: Never copied for the build: what tools and npm put in a checkout (anywhere in it; at the top: a build).
_TOOL_OUTPUT = shutil.ignore_patterns(
    ".git", ".nox", ".venv", "node_modules", "__pycache__", "*.py[cod]", "*.egg-info", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".hypothesis", "_build",
)  # fmt: skip


def _not_source(directory: str, names: list[str]) -> set[str]:
    ignored = set(_TOOL_OUTPUT(directory, names))
    if Path(directory) == ROOT:
        ignored |= {"build", "dist", "venv"} & set(names)
    return ignored


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{argv}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the sdist and the wheel built from a copy of this checkout."""
    for tool in ("build", "twine"):
        if importlib.util.find_spec(tool) is None:
            missing(f"{tool} is not installed (a test dependency: pip install build twine)")
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_not_source)
    out = work / "dist"
    _run("-m", "build", "--no-isolation", "--outdir", str(out), str(source), cwd=work)
    return out


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def _source_files() -> set[str]:
    """Every file of the package in this checkout, as ``trio_rooms/...`` (modules and data alike)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def _metadata(dist: Path) -> email.message.Message:
    with zipfile.ZipFile(_one(dist, "*.whl")) as wheel:
        text = wheel.read(f"{NAME}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def test_twine_check_passes_on_both(dist: Path) -> None:
    sdist, wheel = _one(dist, "*.tar.gz"), _one(dist, "*.whl")
    result = _run("-m", "twine", "check", "--strict", str(sdist), str(wheel), cwd=dist)
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_holds_the_package_and_nothing_else(dist: Path) -> None:
    """Every module and data file of ``trio_rooms/`` (``py.typed``, the pages served by the package),
    the license, and no file outside the package and its dist-info."""
    with zipfile.ZipFile(_one(dist, "*.whl")) as wheel:
        names = set(wheel.namelist())
        license_text = wheel.read(f"{NAME}.dist-info/licenses/LICENSE").decode()
    package = {name for name in names if name.startswith("trio_rooms/")}
    assert package == _source_files()
    assert "trio_rooms/py.typed" in package and "trio_rooms/runner.py" in package
    assert {name for name in names - package if not name.startswith(f"{NAME}.dist-info/")} == set()
    assert license_text == (ROOT / "LICENSE").read_text(encoding="utf-8")


def test_the_metadata(dist: Path) -> None:
    meta = _metadata(dist)
    project = PYPROJECT["project"]
    assert meta["Name"] == "trio-rooms"
    assert meta["Version"] == trio_rooms.__version__ == project["version"]
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Description-Content-Type"] == "text/markdown"
    description = meta.get_payload()
    assert isinstance(description, str) and description.startswith("# trio_rooms")  # the README
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert all(url.startswith("https://github.com/trio-rooms/trio-rooms") for url in urls.values())
    classifiers = set(meta.get_all("Classifier") or [])
    assert {"Framework :: Trio", "Typing :: Typed", "Programming Language :: Python :: 3.11"} <= classifiers
    # MIT is said once, by License-Expression: setuptools refuses a "License ::" classifier beside it.
    assert not any(classifier.startswith("License ::") for classifier in classifiers)
    assert {"redis", "metrics", "admin"} <= set(meta.get_all("Provides-Extra") or [])
    requires = set(meta.get_all("Requires-Dist") or [])
    for extra in ("redis", "metrics", "admin"):
        for requirement in project["optional-dependencies"][extra]:
            assert f'{requirement}; extra == "{extra}"' in requires, (extra, requirement)
    for requirement in project["dependencies"]:
        assert requirement in requires


def test_the_sdist_builds_the_tests_and_holds_no_junk(dist: Path) -> None:
    """The sdist has what building and testing from it needs, and nothing npm, a build or a benchmark
    left behind."""
    with tarfile.open(_one(dist, "*.tar.gz")) as sdist:
        names = {name.removeprefix(f"{NAME}/") for name in sdist.getnames()}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "noxfile.py", "MANIFEST.in"):
        assert needed in names
    assert {name for name in names if name.startswith("trio_rooms/")} >= _source_files()
    assert {"tests/conftest.py", "tests/helpers/interop_harness.py", "tests/interop/package.json"} <= names
    assert {"examples/echo.py", "examples/client.py", "examples/raw_client.py"} <= names
    junk = re.compile(r"(^|/)(node_modules|__pycache__|_build|benchmarks)(/|$)|\.(pyc|whl)$")
    assert sorted(name for name in names if junk.search(name)) == []


def test_the_changelog_has_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## {re.escape(trio_rooms.__version__)} ", changelog, re.MULTILINE)


INSTALL_LINE = re.compile(r"pip install [^\n`]*\btrio-rooms\b")


def test_install_commands_work_from_a_checkout() -> None:
    """The package is not on PyPI yet: every ``pip install trio-rooms...`` in the README, the examples
    and the package is said as the command for once it is published, beside what works today."""
    texts = [ROOT / "README.md", *(ROOT / "examples").rglob("*.md"), *(ROOT / "examples").rglob("*.py")]
    texts += list(PACKAGE.rglob("*.py"))
    offenders = []
    for path in texts:
        if "node_modules" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if INSTALL_LINE.search(line) and "publish" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
