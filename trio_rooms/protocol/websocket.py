"""Server-side WebSocket frames (RFC 6455), unmasked and final, encoded once and sent to many.

Rule: pure bytes builders for the hot path; whatever RFC 6455 forbids raises ``LocalProtocolError``.
"""

from __future__ import annotations

import struct
from typing import Final

from ..errors import LocalProtocolError

__all__ = ["SENDABLE_PROTOCOL_CODES", "binary_frame", "close_frame", "pong_frame", "text_frame"]

_FIN: Final = 0x80
_TEXT: Final = _FIN | 0x1
_BINARY: Final = _FIN | 0x2
_CLOSE: Final = _FIN | 0x8
_PONG: Final = _FIN | 0xA

_MAX_CONTROL_PAYLOAD: Final = 125
# Header prefixes: 7-bit lengths are looked up, 16- and 64-bit lengths packed by precompiled structs.
_SMALL_TEXT: Final = tuple(bytes((_TEXT, n)) for n in range(126))
_SMALL_BINARY: Final = tuple(bytes((_BINARY, n)) for n in range(126))
_pack16: Final = struct.Struct("!BBH").pack
_pack64: Final = struct.Struct("!BBQ").pack
_pack_code: Final = struct.Struct("!H").pack

SENDABLE_PROTOCOL_CODES: Final = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})
"""The codes below 3000 an endpoint may send (RFC 6455 7.4.1 + 1012/1013); 3000-4999 may be sent too.
wsproto, as a peer, refuses the others, and so does ``wsread.FrameReader``."""


def _frame(opcode: int, small: tuple[bytes, ...], payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        return small[length] + payload
    if length < 0x10000:
        return _pack16(opcode, 126, length) + payload
    return _pack64(opcode, 127, length) + payload


def text_frame(payload: str) -> bytes:
    """A complete, unmasked text frame carrying ``payload`` in UTF-8.

    Args:
        payload: The text (an encoded Engine.IO packet).

    Returns:
        The frame bytes.

    Raises:
        LocalProtocolError: ``payload`` holds a lone surrogate (not encodable as UTF-8).
    """
    try:
        data = payload.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError("text frame payload is not valid Unicode (lone surrogate)") from None
    return _frame(_TEXT, _SMALL_TEXT, data)


def binary_frame(payload: bytes) -> bytes:
    """A complete, unmasked binary frame carrying ``payload``.

    Args:
        payload: The bytes (a binary Engine.IO message).

    Returns:
        The frame bytes.
    """
    return _frame(_BINARY, _SMALL_BINARY, bytes(payload))


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    """A close frame with a status code and a UTF-8 reason.

    Args:
        code: 1000-1003, 1007-1013, or 3000-4999.
        reason: At most 123 bytes once UTF-8 encoded.

    Returns:
        The frame bytes.

    Raises:
        LocalProtocolError: a code an endpoint may not send, or a reason too long or not encodable.
    """
    if code not in SENDABLE_PROTOCOL_CODES and not 3000 <= code <= 4999:
        raise LocalProtocolError(f"close code {code} cannot be sent")
    try:
        payload = _pack_code(code) + reason.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError("close reason is not valid Unicode (lone surrogate)") from None
    if len(payload) > _MAX_CONTROL_PAYLOAD:
        raise LocalProtocolError("close reason longer than 123 bytes")
    return bytes((_CLOSE, len(payload))) + payload


def pong_frame(payload: bytes) -> bytes:
    """A pong frame echoing a ping's payload.

    Args:
        payload: The ping's application data (at most 125 bytes).

    Returns:
        The frame bytes.

    Raises:
        LocalProtocolError: ``payload`` is longer than 125 bytes.
    """
    if len(payload) > _MAX_CONTROL_PAYLOAD:
        raise LocalProtocolError("control frame payload longer than 125 bytes")
    return bytes((_PONG, len(payload))) + bytes(payload)
