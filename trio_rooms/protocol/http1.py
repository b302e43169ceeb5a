"""A lean HTTP/1.1 reader and writer for the two request shapes of Engine.IO long-polling, beside h11.

Rule: accept only what h11 would parse into the same request, and write only what h11 would write, byte
for byte; anything else falls back to h11, which parses or refuses it with its own error answers. Peer
bytes are read in linear time and never past the head limit. Sans IO; h11 is not imported.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

__all__ = [
    "FALLBACK",
    "MAX_HEADERS",
    "NEED_DATA",
    "Fallback",
    "NeedData",
    "SimpleHead",
    "parse_simple_head",
    "reason_phrase",
    "simple_response",
    "switching_protocols",
]

MAX_HEADERS: Final = 100
"""The most header lines of a simple head (``h11io.MAX_HEADERS``: more, and h11's path answers 431)."""
_MAX_LENGTH_DIGITS: Final = 10
_METHODS: Final = frozenset({"GET", "POST", "OPTIONS"})
_METHOD_PREFIXES: Final = frozenset(m[:i].encode() for m in _METHODS for i in range(len(m) + 1))

_TCHARS: Final = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VCHARS: Final = bytes(range(0x21, 0x7F))
#: The bytes of a simple head's lines: visible ASCII, SP, HTAB, obs-text (then CR LF between lines).
_LINE_BYTES: Final = _VCHARS + b" \t" + bytes(range(0x80, 0x100))
_HEAD_BYTES: Final = _LINE_BYTES + b"\r\n"
#: Names h11 treats apart: a simple head has one Host, at most one Content-Length, and none of the rest.
_HOST: Final = "host"
_LENGTH: Final = "content-length"
_CONNECTION: Final = "connection"
_UPGRADE: Final = "upgrade"
_REFUSED: Final = "refused"
_SPECIAL: Final = {
    _HOST: _HOST,
    _LENGTH: _LENGTH,
    _CONNECTION: _CONNECTION,
    _UPGRADE: _UPGRADE,
    "transfer-encoding": _REFUSED,
    "expect": _REFUSED,
}

#: Header names seen, raw -> lower case, shared by every head; bounded, so that odd names cannot grow it.
_NAMES: dict[str, str] = {}
#: Response header names checked to be tokens.
_TOKENS: set[str] = set()
_CACHE_MAX: Final = 512
#: What ``bytes.strip()`` strips: h11 splits comma lists with it.
_ASCII_SPACE: Final = " \t\n\r\x0b\x0c"
#: Characters h11 refuses in a header value it sends (besides non-ASCII), and leading or trailing ones.
_VALUE_REFUSED: Final = ("\x00", "\r", "\n", "\x0b", "\x0c")
_VALUE_EDGES: Final = (" ", "\t")


class NeedData(enum.Enum):
    """``parse_simple_head`` outcome: the head is incomplete and may still be simple; read more."""

    NEED_DATA = "need data"


class Fallback(enum.Enum):
    """``parse_simple_head`` outcome: not a simple head; give the same bytes to h11."""

    FALLBACK = "fallback"


NEED_DATA: Final = NeedData.NEED_DATA
FALLBACK: Final = Fallback.FALLBACK


@dataclass(frozen=True, slots=True)
class SimpleHead:
    """A request head of a simple shape, as h11 would have parsed it.

    Attributes:
        method: "GET", "POST" or "OPTIONS".
        target: The request target: visible ASCII, starting with "/".
        headers: (lower-case name, value) in arrival order, latin-1, values stripped of SP/HTAB as h11 does.
        content_length: The body's length in bytes (0 without a Content-Length header).
        keep_alive: False when a Connection header has the token "close".
        body_start: The offset in the buffer of the byte after the head (where the body starts).
        upgrade: The head proposes an upgrade (an Upgrade header with a token, as h11 takes it; only
            with ``parse_simple_head(..., upgrade=True)``). An answer other than 101 refuses it.
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    content_length: int
    keep_alive: bool
    body_start: int
    upgrade: bool = False


def parse_simple_head(
    buffer: bytes | bytearray, start: int = 0, *, max_head: int, upgrade: bool = False
) -> SimpleHead | NeedData | Fallback:
    """Read the request head at ``buffer[start:]`` when it has a simple shape.

    A simple head is ``METHOD SP target SP HTTP/1.1`` (GET, POST or OPTIONS; a target of visible ASCII
    starting with "/"), then at most ``MAX_HEADERS`` lines ``name: value`` (a token; visible ASCII, SP,
    HTAB, obs-text), with exactly one Host, at most one Content-Length (1 to 10 digits), no
    Transfer-Encoding, Upgrade or Expect, all lines ending in CRLF, then an empty line; and at most
    ``max_head`` bytes in all, the empty line included (the limit of ``Http11Connection``).

    With ``upgrade``, a GET without Content-Length and without "Connection: close" may also have Upgrade
    headers (a WebSocket handshake): h11 would read the same request and then wait for the server's
    answer to the proposal; the caller answers 101 and takes the bytes after the head as the new
    protocol's, or answers as usual (which refuses the proposal, as h11 does).

    Time linear in the bytes examined, which are never more than ``max_head``. Each call examines the
    buffer from ``start`` again: a caller whose head comes in many pieces should call again only when
    more bytes came (or hand the connection to h11 after a first ``NEED_DATA``).

    Args:
        buffer: The bytes received (a head, maybe a body and more after it).
        start: Where the head starts in ``buffer``.
        max_head: The head limit in bytes.
        upgrade: Whether the caller can answer an upgrade proposal.

    Returns:
        The head; ``NEED_DATA`` when it is incomplete, shorter than ``max_head`` and may still be simple
        (in which case h11 could not have parsed it either); otherwise ``FALLBACK``: h11 parses or refuses
        these bytes with its own answers (400, 431, 501...).
    """
    end = buffer.find(b"\r\n\r\n", start, start + max_head)
    if end < 0:
        if len(buffer) - start >= max_head:
            return FALLBACK  # h11's path answers 431, or refuses it otherwise
        return NEED_DATA if _may_become_simple(buffer[start:]) else FALLBACK
    head = buffer[start:end]
    if head.replace(b"\r\n", b"").translate(None, _LINE_BYTES):
        return FALLBACK  # a NUL or another CTL, a bare CR or LF
    lines = head.decode("latin-1").split("\r\n", MAX_HEADERS + 1)
    if len(lines) > MAX_HEADERS + 1:
        return FALLBACK
    request_line = _request_line(lines[0])
    if request_line is None:
        return FALLBACK
    headers: list[tuple[str, str]] = []
    hosts = 0
    length: int | None = None
    keep_alive = True
    proposes = False
    for index in range(1, len(lines)):
        raw, colon, rest = lines[index].partition(":")
        name = _NAMES.get(raw)
        if name is None:
            if not colon or not _is_token(raw):
                return FALLBACK  # no colon, an empty name, a space before the colon, an obs-fold...
            name = raw.lower()
            if len(_NAMES) < _CACHE_MAX:
                _NAMES[raw] = name
        elif not colon:
            return FALLBACK  # a line that is only a name
        value = rest.strip(" \t")
        headers.append((name, value))
        special = _SPECIAL.get(name)
        if special is None:
            continue
        if special is _HOST:
            hosts += 1
        elif special is _LENGTH:
            if length is not None or not (value.isascii() and value.isdigit()):
                return FALLBACK
            if len(value) > _MAX_LENGTH_DIGITS:
                return FALLBACK
            length = int(value)
        elif special is _CONNECTION:
            if keep_alive and "close" in _comma_tokens(value):
                keep_alive = False
        elif special is _UPGRADE and upgrade:
            proposes = proposes or bool(_comma_tokens(value))
        else:
            return FALLBACK  # Transfer-Encoding, Expect, or an Upgrade the caller cannot answer
    if hosts != 1:
        return FALLBACK  # h11 requires exactly one Host in an HTTP/1.1 request
    method, target = request_line
    if proposes and (method != "GET" or length is not None or not keep_alive):
        return FALLBACK  # an upgrade with a body, or one that also asks to close: h11's to sort out
    return SimpleHead(method, target, tuple(headers), length or 0, keep_alive, end + 4, proposes)


def _request_line(line: str) -> tuple[str, str] | None:
    """(method, target) of a simple request line (its bytes are visible ASCII, SP, HTAB or obs-text)."""
    method, _, rest = line.partition(" ")
    target, _, version = rest.partition(" ")
    if method not in _METHODS or version != "HTTP/1.1" or target[:1] != "/":
        return None
    if not target.isascii() or "\t" in target:
        return None
    return method, target


def _may_become_simple(prefix: bytes | bytearray) -> bool:
    """Whether an incomplete head (no CRLFCRLF) may still become a simple one: cheap checks only."""
    space = prefix.find(b" ", 0, 8)
    if space < 0:
        if bytes(prefix[:8]) not in _METHOD_PREFIXES:
            return False
    elif prefix[:space].decode("latin-1") not in _METHODS or prefix[space + 1 : space + 2] not in (b"", b"/"):
        return False
    first = prefix.find(b"\r\n")
    if first >= 0 and _request_line(prefix[:first].decode("latin-1")) is None:
        return False
    crlf = prefix.count(b"\r\n")
    return (
        not prefix.translate(None, _HEAD_BYTES)
        and prefix.count(b"\n") == crlf
        and prefix.count(b"\r") == crlf + prefix.endswith(b"\r")
    )


def _is_token(name: str) -> bool:
    return bool(name) and name.isascii() and not name.encode("ascii").translate(None, _TCHARS)


def _comma_tokens(value: str) -> list[str]:
    """The tokens of a comma-separated header value as h11 reads them (lower case, ASCII-stripped)."""
    return [token for token in (part.strip(_ASCII_SPACE) for part in value.lower().split(",")) if token]


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of ``status`` (``b"OK"`` for 200), empty for a code without one.

    Node's server sends it; h11 and this module's lean path write it from here, so that both give
    the same bytes.
    """
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


_STATUS_LINES: dict[int, str] = {}


def simple_response(
    status: int,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    request_keep_alive: bool = True,
) -> bytes:
    """The bytes h11 sends for ``Response(status_code=status, headers=headers)``, ``Data(body)`` and
    ``EndOfMessage()``, on a connection whose request was HTTP/1.1.

    The status line has an empty reason (``HTTP/1.1 200 \\r\\n``); header names keep their case; Host
    headers go first. The headers must frame the body with one Content-Length equal to ``len(body)``
    (no Transfer-Encoding). When the request asked to close (``request_keep_alive=False``), h11 moves the
    response's Connection tokens to the end, one ``Connection`` header per token (lower case, sorted),
    with "close" added and "keep-alive" dropped; so does this. Otherwise a ``connection: close`` of the
    response stays where it is.

    Args:
        status: The status code, 200 to 999.
        headers: (name, value) pairs; names are tokens, values ASCII without NUL, CR, LF, VT or FF and
            without leading or trailing SP/HTAB (what h11 accepts).
        body: The body (empty for 204 and 304).
        request_keep_alive: ``SimpleHead.keep_alive`` of the request answered.

    Returns:
        The response's bytes.

    Raises:
        ValueError: for a status, header or framing h11 would refuse or frame otherwise.
    """
    if not isinstance(status, int) or not 200 <= status < 1000:
        raise ValueError(f"status {status!r} is not a final response's (200 to 999)")
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {int(status)} {reason_phrase(status).decode()}\r\n"
        if len(_STATUS_LINES) < _CACHE_MAX:
            _STATUS_LINES[status] = line
    parts = [line]
    hosts: list[str] = []
    closing: set[str] | None = None if request_keep_alive else set()
    length: str | None = None
    for name, value in headers:
        if name not in _TOKENS:
            if not _is_token(name):
                raise ValueError(f"illegal header name {name!r}")
            if len(_TOKENS) < _CACHE_MAX:
                _TOKENS.add(name)
        if not (value.isascii() and value.isprintable()) or value[:1] == " " or value[-1:] == " ":
            _check_value(value)
        lower = name.lower()
        if lower == _LENGTH:
            if length is not None:
                raise ValueError("more than one Content-Length")
            length = value
        elif lower == "transfer-encoding":
            raise ValueError("simple_response frames a body with Content-Length only")
        elif lower == _CONNECTION and closing is not None:
            closing.update(_comma_tokens(value))
            continue
        line = f"{name}: {value}\r\n"
        if lower == _HOST:
            hosts.append(line)
        else:
            parts.append(line)
    if length is None or not length.isdigit() or int(length) != len(body):
        raise ValueError(f"Content-Length {length!r} does not frame a body of {len(body)} bytes")
    if body and status in (204, 304):
        raise ValueError(f"a {status} response has no body")
    if closing is not None:
        closing.discard("keep-alive")
        closing.add("close")
        parts.extend(f"Connection: {token}\r\n" for token in sorted(closing))
    if hosts:
        parts[1:1] = hosts
    parts.append("\r\n")
    return "".join(parts).encode("ascii") + body


def switching_protocols(accept_token: str, extra_headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """The bytes h11 sends for the 101 that accepts a WebSocket handshake (``h11io.accept_websocket``).

    Args:
        accept_token: The Sec-WebSocket-Accept value (base64: visible ASCII).
        extra_headers: (name, value) pairs after the handshake's own (names tokens, values as
            ``simple_response`` takes them).

    Raises:
        ValueError: for a token or a header h11 would not send.
    """
    if not (accept_token.isascii() and accept_token.isprintable()) or " " in accept_token:
        raise ValueError(f"illegal Sec-WebSocket-Accept {accept_token!r}")
    extra = ""
    for name, value in extra_headers:
        if not _is_token(name):
            raise ValueError(f"illegal header name {name!r}")
        if not (value.isascii() and value.isprintable()) or value[:1] == " " or value[-1:] == " ":
            _check_value(value)
        extra += f"{name}: {value}\r\n"
    return (
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        f"sec-websocket-accept: {accept_token}\r\n{extra}\r\n"
    ).encode("ascii")


def _check_value(value: str) -> None:
    """Raise ValueError for a header value h11 would not send."""
    if not value.isascii() or any(char in value for char in _VALUE_REFUSED):
        raise ValueError(f"illegal header value {value!r}")
    if value[:1] in _VALUE_EDGES or value[-1:] in _VALUE_EDGES:
        raise ValueError(f"header value {value!r} has leading or trailing whitespace")
