"""Build trio's Sphinx inventory (``objects.inv``) from trio's own sdist, for offline intersphinx.

Run by ``nox -s docs`` before the build: ``python docs/trio_inventory.py``. It fetches the sdist of
the installed trio version from the package index (``pip download --no-binary :all:``: the index is
the only network access; no documentation website is ever reached), builds trio's own
``docs/source`` with Sphinx into a scratch directory, and keeps the ``objects.inv`` it writes as
``docs/_build/inventories/trio-<version>.inv`` (``docs/conf.py`` reads it from there). The
inventory's URIs are those of trio's pages (``reference-core.html#trio.Nursery``), so the links of
our pages point to ``https://trio.readthedocs.io/en/v<version>/``.

trio's ``conf.py`` is used as it is, with these overrides appended to a scratch copy (none changes
which objects trio documents or on which page): no ``sphinxcontrib.jquery`` / ``sphinx_codeautolink``
(presentation only, not installed here), Sphinx's ``basic`` theme instead of ``sphinx_rtd_theme``
(presentation only), intersphinx reading Python's local inventory instead of URLs, and not
nitpicky (trio's references to the libraries it links by URL cannot resolve offline; they are not
in trio's inventory either way). The build
takes a few seconds; an inventory already built for the installed version is reused.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
INVENTORIES: Final = HERE / "_build" / "inventories"

OVERRIDES: Final = """

# --- appended by trio_rooms docs/trio_inventory.py: an offline build of the inventory only ---
extensions = [e for e in extensions if e not in {"sphinxcontrib.jquery", "sphinx_codeautolink"}]
intersphinx_mapping = {"python": ("https://docs.python.org/3", PYTHON_INVENTORY)}
html_theme = "basic"
html_theme_options = {}
html_logo = None
nitpicky = False
"""


def inventory_path(version: str | None = None) -> Path:
    """Where the inventory of trio ``version`` (default: the installed one) is kept."""
    return INVENTORIES / f"trio-{version or importlib.metadata.version('trio')}.inv"


def build(python_inventory: Path) -> Path:
    """Build (or reuse) the inventory of the installed trio; return its path."""
    version = importlib.metadata.version("trio")
    target = inventory_path(version)
    if target.is_file():
        print(f"trio {version}: inventory already built: {target}")
        return target
    with tempfile.TemporaryDirectory(prefix="trio-inventory-") as scratch:
        work = Path(scratch)
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--no-binary", ":all:", "--dest", str(work), f"trio=={version}",
            ],
            check=True,
        )  # fmt: skip
        sdist = work / f"trio-{version}.tar.gz"
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        source = work / f"trio-{version}" / "docs" / "source"
        conf = source / "conf.py"
        overrides = OVERRIDES.replace("PYTHON_INVENTORY", repr(str(python_inventory)))
        conf.write_text(conf.read_text(encoding="utf-8") + overrides, encoding="utf-8")
        out = work / "html"
        # Not -W: trio's own history page has a reference to a label trio never defined (one warning,
        # shown by -q); it changes nothing in the inventory.
        subprocess.run(
            [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(source), str(out)],
            check=True,
            cwd=source,
        )
        INVENTORIES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "objects.inv", target)
    print(f"trio {version}: inventory built from trio's sdist: {target}")
    return target


def main() -> None:
    """``python docs/trio_inventory.py [PYTHON_INVENTORY]``."""
    python_inventory = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/doc/python3/html/objects.inv")
    if not python_inventory.is_file():
        sys.exit(f"Python's inventory {python_inventory} is missing: install Debian's python3-doc")
    build(python_inventory)


if __name__ == "__main__":
    main()
