"""The Engine.IO server's application hooks (Node's ``initial_headers``, ``headers`` and
``connection_error`` events): what every front door calls, so that no door has its own copy.

Rule: plain functions, called synchronously where the answer is built; with no hook registered a
call costs one truth test. A hook's error is logged and the answer goes out without its changes; a
header a hook sets that the server owns (the framing, the upgrade) or that HTTP cannot carry is
dropped with a log line.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .http import EngineErrorCode, HttpRequest

__all__ = ["HOOK_EVENTS", "ConnectionErrorEvent", "EngineHooks", "HeadersHook", "ErrorHook"]

logger = logging.getLogger("trio_rooms")

HeaderFields: TypeAlias = dict[str, str | list[str]]
HeadersHook: TypeAlias = Callable[[HeaderFields, HttpRequest], Any]
"""``def hook(headers, request)``: change ``headers`` (a dict; a list value for a repeated header)."""
ErrorHook: TypeAlias = Callable[["ConnectionErrorEvent"], Any]
"""``def hook(err)``: a request the server refused (see ``ConnectionErrorEvent``)."""

HOOK_EVENTS: Final = frozenset({"initial_headers", "headers", "connection_error"})
#: Headers the server writes itself: a hook cannot set them.
_OWNED: Final = frozenset(
    {
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "host",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)
_TOKEN: Final = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class ConnectionErrorEvent:
    """A request the Engine.IO server refused (Node's ``connection_error`` event's argument).

    Attributes:
        code: the Engine.IO error code (0 "Transport unknown", 1 "Session ID unknown", 2 "Bad
            handshake method", 3 "Bad request", 4 "Forbidden", 5 "Unsupported protocol version").
        message: the code's message, as in the answer's JSON body.
        request: the refused request.
    """

    code: EngineErrorCode
    message: str
    request: HttpRequest


class EngineHooks:
    """The registered hooks of one Engine.IO server, in registration order."""

    __slots__ = ("_errors", "_headers", "_initial")

    def __init__(self) -> None:
        self._initial: list[HeadersHook] = []
        self._headers: list[HeadersHook] = []
        self._errors: list[ErrorHook] = []

    def add(self, event: str, hook: Callable[..., Any]) -> None:
        """Register ``hook`` for ``event`` (one of ``HOOK_EVENTS``).

        Raises:
            ValueError: an unknown event.
            TypeError: ``hook`` is not a plain function (an ``async def`` cannot run where the
                answer is built).
        """
        if event not in HOOK_EVENTS:
            raise ValueError(f"unknown Engine.IO hook {event!r}")
        if not callable(hook) or inspect.iscoroutinefunction(hook):
            raise TypeError(f"an Engine.IO {event!r} hook is a plain function, got {hook!r}")
        if event == "connection_error":
            self._errors.append(hook)
        else:
            (self._initial if event == "initial_headers" else self._headers).append(hook)

    def response_headers(
        self, request: HttpRequest, base: Sequence[tuple[str, str]], *, handshake: bool
    ) -> Sequence[tuple[str, str]]:
        """The extra headers of an answer to ``request``: ``base`` (CORS, say), as the hooks changed
        them: ``initial_headers`` first when ``handshake`` (a request without a sid: the polling
        handshake or a direct WebSocket), then ``headers``, on the same dict."""
        if not self._headers and not (handshake and self._initial):
            return base
        fields: HeaderFields = {}
        for name, value in base:
            known = fields.get(name)
            if known is None:
                fields[name] = value
            else:
                fields[name] = [*([known] if isinstance(known, str) else known), value]
        for hook in [*(self._initial if handshake else ()), *self._headers]:
            try:
                hook(fields, request)
            except Exception:
                logger.exception("Engine.IO headers hook %r failed; its changes may be partial", hook)
        return _flatten(fields)

    def connection_error(self, request: HttpRequest, code: EngineErrorCode) -> None:
        """Tell the ``connection_error`` hooks that ``request`` was refused with ``code``."""
        if not self._errors:
            return
        event = ConnectionErrorEvent(code, code.message, request)
        for hook in list(self._errors):
            try:
                hook(event)
            except Exception:
                logger.exception("Engine.IO connection_error hook %r failed", hook)


def _flatten(fields: HeaderFields) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in fields.items():
        values = [value] if isinstance(value, str) else value
        for one in values:
            if _valid(name, one):
                out.append((name, one))
            else:
                logger.warning("Engine.IO headers hook: header %r: %r cannot be sent; dropped", name, one)
    return out


def _valid(name: object, value: object) -> bool:
    """Whether ``name: value`` is a header HTTP/1.1 can carry that the server does not own."""
    if not isinstance(name, str) or not isinstance(value, str) or not name or name.lower() in _OWNED:
        return False
    if not all(char in _TOKEN for char in name):
        return False
    # Printable ASCII (inner spaces included): no CR, LF, NUL or other control character gets in.
    return value.isascii() and value.isprintable() and value == value.strip()
