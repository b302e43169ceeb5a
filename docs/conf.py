"""Sphinx configuration of the trio_rooms documentation (``nox -s docs``; warnings are errors).

The build reaches no network: intersphinx reads local inventories only (see ``intersphinx_mapping``).
"""

from __future__ import annotations

import os
from pathlib import Path

import trio_rooms

project = "trio_rooms"
author = "trio_rooms developers"
copyright = "2026, trio_rooms developers"
release = trio_rooms.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

nitpicky = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Local inventories only (no URL is ever fetched): Python's from Debian's python3-doc.
_PYTHON_INVENTORY = Path(os.environ.get("PYTHON_INVENTORY", "/usr/share/doc/python3/html/objects.inv"))
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if _PYTHON_INVENTORY.is_file():
    intersphinx_mapping["python"] = ("https://docs.python.org/3", str(_PYTHON_INVENTORY))
intersphinx_disabled_reftypes = ["*"]
intersphinx_timeout = 1

html_theme = "furo"
html_title = f"trio_rooms {release}"
