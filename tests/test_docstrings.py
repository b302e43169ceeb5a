"""The options of the public constructors and factories are documented where ``help()`` shows them.

Each parameter of the signature is described exactly once in its object's Google-style ``Args:``
section (as napoleon renders it in the API reference), and no described name is absent from the
signature (a renamed or removed option cannot leave its old description behind).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import trio_rooms
from trio_rooms import admin
from trio_rooms.testing import open_test_client

_ENTRY = re.compile(r"(\*{0,2}\w+)(?:\s*\([^)]*\))?:(?:\s|$)")
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*(?:\([^)]*\))?:\s*$")


def documented_args(doc: str | None) -> list[str]:
    """The parameter names of the ``Args:`` section of ``doc``, in order, repeats kept.

    The section's entries are its lines at the indentation of its first entry; deeper lines continue
    an entry; the section ends at a line indented as the ``Args:`` line or less (another section).
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    names: list[str] = []
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return names
    header_indent = len(lines[start]) - len(lines[start].lstrip())
    entry_indent: int | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= header_indent:
            break
        if entry_indent is None:
            entry_indent = indent
        if indent == entry_indent:
            match = _ENTRY.match(line.strip())
            assert match is not None, f"an Args entry without 'name: description': {line.strip()!r}"
            names.append(match[1].lstrip("*"))
    return names


def signature_args(obj: Callable[..., Any]) -> list[str]:
    """The parameters a caller passes (``self``/``cls`` left out), ``**options`` as ``options``."""
    return list(inspect.signature(obj).parameters)


#: (name, the callable whose signature is checked); its own docstring holds the ``Args:`` section (a
#: class documents its constructor's parameters in the class docstring, as napoleon reads it).
DOCUMENTED: list[tuple[str, Callable[..., Any]]] = [
    ("Server", trio_rooms.Server),
    ("Client", trio_rooms.Client),
    ("ASGIApp", trio_rooms.ASGIApp),
    ("RedisAdapter.factory", trio_rooms.RedisAdapter.factory),
    ("RedisStreamsAdapter.factory", trio_rooms.RedisStreamsAdapter.factory),
    ("ConnectionStateRecovery", trio_rooms.ConnectionStateRecovery),
    ("admin.instrument", admin.instrument),
    ("testing.open_test_client", open_test_client),
]


@pytest.mark.parametrize(("name", "obj"), DOCUMENTED, ids=[name for name, _ in DOCUMENTED])
def test_every_parameter_is_documented_once(name: str, obj: Callable[..., Any]) -> None:
    documented = documented_args(obj.__doc__)
    in_signature = signature_args(obj)
    missing = [arg for arg in in_signature if arg not in documented]
    unknown = [arg for arg in documented if arg not in in_signature]
    repeated = sorted({arg for arg in documented if documented.count(arg) > 1})
    assert (missing, unknown, repeated) == ([], [], []), (
        f"{name}: undocumented {missing}, documented but not parameters {unknown}, "
        f"documented twice {repeated}"
    )


def test_open_client_takes_and_documents_the_parameters_of_client() -> None:
    """``open_client`` has ``Client``'s signature (written once) and says so; ``Client`` documents it."""
    client_parameters = inspect.signature(trio_rooms.Client).parameters
    assert inspect.signature(trio_rooms.open_client).parameters == client_parameters
    assert "the parameters: ``Client``" in (trio_rooms.open_client.__doc__ or "")
    assert documented_args(trio_rooms.open_client.__doc__) == []


OLD_SERVER_DOC = """A Socket.IO v5 server (Engine.IO v4 over WebSocket) for Trio.

    Args:
        ping_interval: seconds between heartbeat pings.
        max_payload: largest message accepted from a client, in bytes (larger: closed).
        send_timeout: how long ``socket.emit`` waits for queue space.
        handshake_timeout: deadline for a client to send its HTTP request.
        teardown_timeout: deadline for one socket's disconnecting/disconnect handlers.

    Attributes:
        metrics_endpoint: what answers ``GET /metrics`` (None when ``metrics`` is off).
    """


def test_the_check_catches_a_stale_docstring() -> None:
    """An excerpt of the Server docstring this test replaced: ``handshake_timeout``, which no
    parameter has, and most options missing; the parser reads it, and the check would fail."""
    documented = documented_args(OLD_SERVER_DOC)
    assert documented == [
        "ping_interval",
        "max_payload",
        "send_timeout",
        "handshake_timeout",
        "teardown_timeout",
    ]
    in_signature = signature_args(trio_rooms.Server)
    assert "handshake_timeout" not in in_signature
    assert [arg for arg in in_signature if arg not in documented]


API_PAGES = Path(__file__).resolve().parent.parent / "docs" / "api"
_DIRECTIVE = re.compile(r"^\.\. (?:auto\w+|py:\w+):: (?:trio_rooms\.)?(\w+)\b", re.MULTILINE)


def test_the_api_reference_documents_every_public_name() -> None:
    """Each name of ``trio_rooms.__all__`` has its entry in docs/api/*.rst (under ``trio_rooms``)."""
    pages = sorted(API_PAGES.glob("*.rst"))
    assert pages
    entries = {name for page in pages for name in _DIRECTIVE.findall(page.read_text(encoding="utf-8"))}
    assert sorted(set(trio_rooms.__all__) - entries) == []
