"""The demo's chat page (``python -m trio_rooms`` serves it at ``/``): its files, and where to find the
stock ``socket.io-client`` browser bundle it loads.

Rule: a fixed allow-list of files. The page's own files (``index.html``, ``chat.js``, ``chat.css``,
beside this module) are read once; the bundle ``socket.io.min.js`` is read from the ``dist/``
directory of the npm package ``socket.io-client`` chosen when the fallback is made (nothing of it is
in this repository: ``npm ci --prefix examples/browser`` installs it). No part of a request's path
reaches the file system; only GET and HEAD are answered; every file is bounded in size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from importlib.resources import files
from pathlib import Path
from typing import Final

import trio

from ..engine.http import HttpRequest, HttpResponse

__all__ = [
    "BUNDLE",
    "INSTALL_HINT",
    "MAX_BUNDLE_SIZE",
    "PAGE_PATHS",
    "chat_page",
    "default_client_dists",
    "find_client_dist",
]

BUNDLE: Final = "socket.io.min.js"
"""The file of ``socket.io-client``'s ``dist/`` the page loads (served at ``/socket.io.min.js``)."""

INSTALL_HINT: Final = (
    "run `npm ci --prefix examples/browser` in the trio_rooms checkout, "
    "or pass --client-dist node_modules/socket.io-client/dist"
)
"""How to get the bundle, in plain words (the page and ``python -m trio_rooms`` say it)."""

MAX_BUNDLE_SIZE: Final = 2_000_000
"""The largest bundle served, in bytes (socket.io-client 4.8's is about 47 kB)."""

PAGE_PATHS: Final = ("/", "/index.html", "/chat.js", "/chat.css", "/" + BUNDLE)
"""Every path the page's fallback answers; any other is left to the server (a 404)."""

_CHECKOUT: Final = Path(__file__).resolve().parent.parent.parent
_TEXT: Final = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
}
# Revalidated on every load (the demo sends no validators: a reload always gets the current files).
_COMMON_HEADERS: Final = (("cache-control", "no-cache"), ("x-content-type-options", "nosniff"))
# The page runs its own script and the bundle only, and talks to its own origin only.
_HTML_HEADERS: Final = (
    *_COMMON_HEADERS,
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
)

Fallback = Callable[[HttpRequest], Awaitable[HttpResponse | None]]


def default_client_dists() -> list[Path]:
    """Where ``find_client_dist`` looks, in order: the checkout's ``examples/browser`` and
    ``tests/interop`` npm directories (their ``node_modules/socket.io-client/dist``)."""
    package = Path("node_modules", "socket.io-client", "dist")
    return [_CHECKOUT / "examples" / "browser" / package, _CHECKOUT / "tests" / "interop" / package]


def find_client_dist(candidates: Iterable[Path] | None = None) -> Path | None:
    """The first of ``candidates`` (default: ``default_client_dists()``) holding ``BUNDLE``, or None."""
    for directory in default_client_dists() if candidates is None else candidates:
        if (directory / BUNDLE).is_file():
            return directory
    return None


def _page_file(name: str) -> bytes:
    return files(__name__).joinpath(name).read_bytes()


async def _read_bundle(path: Path | None) -> HttpResponse:
    """The bundle at ``path`` (a 404 saying how to install it when missing; a 500 when larger than
    ``MAX_BUNDLE_SIZE``)."""
    try:
        if path is None:
            raise FileNotFoundError(BUNDLE)
        async with await trio.open_file(path, "rb") as file:
            data = await file.read(MAX_BUNDLE_SIZE + 1)
    except OSError:
        text = f"The socket.io-client browser bundle is not installed: {INSTALL_HINT}.\n"
        return HttpResponse(404, text.encode(), headers=_COMMON_HEADERS)
    if len(data) > MAX_BUNDLE_SIZE:
        text = f"{path} is larger than {MAX_BUNDLE_SIZE} bytes: not served.\n"
        return HttpResponse(500, text.encode(), headers=_COMMON_HEADERS)
    return HttpResponse(200, data, _TEXT["js"], _COMMON_HEADERS)


def chat_page(client_dist: str | Path | None) -> Fallback:
    """A ``Server(fallback=...)`` serving the chat page at ``/`` and the bundle from ``client_dist``
    (the ``dist/`` directory of ``socket.io-client``; None when it is not installed: the bundle is
    then a 404 whose text says how to install it, and the page says so too). The bundle is read at
    each request, the page's own files once, here.

    Every other path is left to the server (None: a 404). A method other than GET or HEAD on a page
    path is a 405. A HEAD gets the status, type and headers of the GET, and no body.
    """
    index = (_page_file("index.html"), _TEXT["html"], _HTML_HEADERS)
    pages = {
        "/": index,
        "/index.html": index,
        "/chat.js": (_page_file("chat.js"), _TEXT["js"], _COMMON_HEADERS),
        "/chat.css": (_page_file("chat.css"), _TEXT["css"], _COMMON_HEADERS),
    }
    bundle = None if client_dist is None else Path(client_dist) / BUNDLE

    async def serve(request: HttpRequest) -> HttpResponse | None:
        await trio.lowlevel.checkpoint()
        if request.path not in PAGE_PATHS:
            return None
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(405, b"Method Not Allowed", headers=(("allow", "GET, HEAD"),))
        if request.path in pages:
            body, content_type, headers = pages[request.path]
            response = HttpResponse(200, body, content_type, headers)
        else:
            response = await _read_bundle(bundle)
        return response  # to a HEAD, the server sends the headers of this answer, not its body

    return serve
