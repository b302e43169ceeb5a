"""Sphinx configuration of the trio_rooms documentation (``nox -s docs``; warnings are errors).

The build reaches no network: intersphinx reads local inventories only (see ``intersphinx_mapping``):
Python's from Debian's ``python3-doc``, trio's built from trio's sdist by ``docs/trio_inventory.py``
(``nox -s docs`` runs it first). A missing inventory stops the build with the command that makes it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
import sys
from pathlib import Path
from typing import TypeVar

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import ConfigError
from sphinx.ext.intersphinx import missing_reference as intersphinx_missing_reference
from sphinx.util import logging
from sphinx.util.inspect import signature_from_str

import trio_rooms

logger = logging.getLogger("trio_rooms.docs")
DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import trio_inventory  # noqa: E402 - docs/trio_inventory.py, found through the line above

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
autodoc_typehints_format = "short"
autodoc_inherit_docstrings = False
# The aliases of the options' types, documented where they are defined (docs/api/*.rst), shown by
# name in signatures rather than expanded.
autodoc_type_aliases = {
    name: f"{module}.{name}"
    for module, names in {
        "trio_rooms.engine.policy": ["CorsOrigins"],
        "trio_rooms.engine.options": ["AllowRequest", "Fallback"],
        "trio_rooms.namespace": ["NamespaceMatcher"],
        "trio_rooms.metrics": ["MetricsPolicy"],
    }.items()
    for name in names
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Cancellation", "notes_style")]

# Local inventories only (no URL is ever fetched). The first part of each pair is where the links
# point; the second, the local file read instead of "<url>/objects.inv".
_PYTHON_INVENTORY = Path(os.environ.get("PYTHON_INVENTORY", "/usr/share/doc/python3/html/objects.inv"))
if not _PYTHON_INVENTORY.is_file():
    raise ConfigError(
        f"Python's Sphinx inventory {_PYTHON_INVENTORY} is missing: install Debian's python3-doc "
        "(apt-get install python3-doc; .ci/run does it) or point PYTHON_INVENTORY at an objects.inv "
        "of Python's documentation. The build reads no inventory from the network."
    )
_TRIO_VERSION = importlib.metadata.version("trio")
_TRIO_INVENTORY = Path(os.environ.get("TRIO_INVENTORY", str(trio_inventory.inventory_path(_TRIO_VERSION))))
if not _TRIO_INVENTORY.is_file():
    raise ConfigError(
        f"trio's Sphinx inventory {_TRIO_INVENTORY} is missing: build it from trio's sdist with "
        "`python docs/trio_inventory.py` (nox -s docs does it), or point TRIO_INVENTORY at one."
    )
intersphinx_mapping: dict[str, tuple[str, str | None]] = {
    "python": ("https://docs.python.org/3", str(_PYTHON_INVENTORY)),
    "trio": (f"https://trio.readthedocs.io/en/v{_TRIO_VERSION}/", str(_TRIO_INVENTORY)),
}
intersphinx_disabled_reftypes: list[str] = []
intersphinx_timeout = 1

html_theme = "furo"
html_title = f"trio_rooms {release}"


# Annotations name a class by the module that defines it (``trio_rooms.namespace.Namespace``), while
# the reference documents it where users import it (``trio_rooms.Namespace``). A reference that finds
# no target is retried at the documented name of the same object, if there is one: an object that is
# documented nowhere stays unresolved (and fails the build).
_documented: dict[int, str] = {}


def _lookup(dotted: str) -> object | None:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return None
        return obj
    return None


def _documented_name(env: BuildEnvironment, target: str) -> str | None:
    if not target.startswith("trio_rooms."):
        return None
    obj = _lookup(target)
    if obj is None or isinstance(obj, str | int | float | bool | type(None)):
        return None
    if not _documented:
        for name in env.get_domain("py").objects:  # type: ignore[attr-defined]
            found = _lookup(name)
            if found is not None and not isinstance(found, str | int | float | bool | type(None)):
                _documented.setdefault(id(found), name)
    return _documented.get(id(obj))


def _resolve_by_object(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    if target.startswith("trio_rooms.") and isinstance(_lookup(target), TypeVar):
        # A type variable of a generic signature (``on(event) -> Callable[[F], F]``) is no object of
        # the API: it links to what it is, ``typing.TypeVar`` (as trio's documentation does).
        retry = node.deepcopy()
        retry["reftarget"] = "typing.TypeVar"
        retry["reftype"] = "class"
        typevar: nodes.reference | None = intersphinx_missing_reference(app, env, retry, contnode)
        return typevar
    name = _documented_name(env, node["reftarget"])
    if name is None or name == node["reftarget"]:
        return None
    retry = node.deepcopy()
    retry["reftarget"] = name
    resolved: nodes.reference | None = env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], name, retry, contnode
    )
    return resolved


_ALIAS_REF = re.compile(r"TypeAliasForwardRef\('([\w.]+)'\)")
_CLASS_REPR = re.compile(r"<class '([\w.]+)'>")


def _alias_names(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    annotation: str | None,
) -> tuple[str | None, str | None]:
    """Make signatures parseable and short: an alias of ``autodoc_type_aliases`` by its short name,
    linked (Sphinx 9 writes one in a union as ``TypeAliasForwardRef('module.Name')``, and one alone
    by its full dotted name), a class given as a default value by its name, a dataclass field's
    default factory as ``...``, and no return annotation on an async context manager."""

    def shorten(text: str | None) -> str | None:
        if text is None:
            return None
        text = _ALIAS_REF.sub(r"\1", text)
        # A class as a default value (``adapter=InMemoryAdapter``) by its name, not its repr
        # ``<class '...'>``, which no signature parser reads (the whole signature would be plain text).
        text = _CLASS_REPR.sub(lambda match: match[1].rpartition(".")[2], text)
        text = text.replace("= <factory>", "= ...")  # a dataclass field's default_factory
        for full in autodoc_type_aliases.values():
            text = re.sub(rf"(?<![~\w.]){re.escape(full)}\b", "~" + full, text)
        return text

    signature = shorten(signature)
    if signature:
        try:
            signature_from_str(signature)
        except SyntaxError as exc:
            # Sphinx would show such a signature as plain text without a word: say it (-W fails).
            logger.warning("the signature of %s cannot be parsed (%s): %s", name, exc, signature)
    if inspect.isasyncgenfunction(getattr(obj, "__wrapped__", None)):
        # An @asynccontextmanager: shown as ``async with f(...) as name`` (sphinxcontrib-trio); the
        # generator's ``AsyncIterator[X]`` is no return value a caller sees.
        return signature, None
    return signature, shorten(annotation)


def _forget_objects(app: Sphinx, env: BuildEnvironment, *args: object) -> None:
    _documented.clear()


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _resolve_by_object)
    app.connect("autodoc-process-signature", _alias_names)
    app.connect("env-updated", _forget_objects)
