"""Serving the Admin UI's page yourself: its static files (``ui/dist`` of the npm package
``@socket.io/admin-ui``) under a path prefix, as a ``Server(fallback=...)``.

Rule: read-only, inside the directory given: a path that leaves it (``..``, a symbolic link out) or
names no file is a 404; only GET and HEAD are answered.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote

import trio

from ..engine.http import HttpRequest, HttpResponse

__all__ = ["ui_files"]


def ui_files(
    directory: str | Path, prefix: str = "/admin-ui/"
) -> Callable[[HttpRequest], Awaitable[HttpResponse | None]]:
    """A ``fallback`` that serves the files of ``directory`` under ``prefix`` (``prefix`` itself is
    ``index.html``) and leaves every other request to the server (None: a 404).

    For the Admin UI: ``npm install @socket.io/admin-ui`` then
    ``Server(fallback=ui_files("node_modules/@socket.io/admin-ui/ui/dist"))``, and the page is at
    ``http://host:port/admin-ui/`` (its origin is the server's own: allowed by the default
    ``cors_allowed_origins``).

    Raises:
        ValueError: ``directory`` is not a directory, or ``prefix`` does not start and end with "/".
    """
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ValueError(f"{directory}: not a directory")
    if not (prefix.startswith("/") and prefix.endswith("/")):
        raise ValueError('prefix starts and ends with "/"')

    async def serve(request: HttpRequest) -> HttpResponse | None:
        path = unquote(request.path)
        if not path.startswith(prefix):
            await trio.lowlevel.checkpoint()
            return None
        if request.method not in ("GET", "HEAD"):
            await trio.lowlevel.checkpoint()
            return HttpResponse(405, b"method not allowed")
        file = (root / (path[len(prefix) :] or "index.html")).resolve()
        if root not in file.parents or not file.is_file():
            await trio.lowlevel.checkpoint()
            return HttpResponse(404, b"not found")
        body = await trio.Path(file).read_bytes()
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return HttpResponse(200, body, content_type=kind)  # to a HEAD, the server sends no body

    return serve
