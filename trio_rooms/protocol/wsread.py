"""The server's reader of client WebSocket frames (RFC 6455), sans IO: bytes in, whole messages out.

Rule: linear time in the bytes fed, at most ``max_message`` bytes of a message held, and nothing raised on
a peer's bytes: a violation ends the reading with the close code to send (1002, 1007 or 1009).
"""

from __future__ import annotations

import codecs
from enum import Enum
from typing import Final

from .websocket import SENDABLE_PROTOCOL_CODES

__all__ = ["FrameReader", "ReadEvent", "unmask"]


class ReadEvent(Enum):
    """What ``FrameReader.next_message`` returns when it has no message to give."""

    NEED_DATA = "need data"
    """Feed the next bytes of the peer with ``receive_data``."""
    PAUSE = "pause"
    """``pause_every`` frames were handled since the last pause or read: let other work run, then call
    ``next_message`` again (it goes on where it stopped)."""
    CLOSED = "closed"
    """The peer sent a valid close frame: its code in ``close_code`` (1005 when it had none), its reason
    in ``close_reason``. Final."""
    FAILED = "failed"
    """The peer broke the protocol: ``close_code`` is the code to close with (1002 protocol error, 1007
    invalid UTF-8, 1009 message too big), ``close_reason`` says why. Final."""


_TEXT: Final = 0x1
_BINARY: Final = 0x2
_CLOSE: Final = 0x8
_PING: Final = 0x9
_KNOWN_OPCODES: Final = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})

_PROTOCOL_ERROR: Final = 1002
_INVALID_PAYLOAD: Final = 1007
_MESSAGE_TOO_BIG: Final = 1009
_NO_STATUS: Final = 1005

# The int trick for payloads of a frame's 7-bit length (control frames; most messages): the 4-byte mask
# times 1 + 2**32 + 2**64 ... covers the payload; the low bits cut it to the payload's length.
_REPUNITS: Final = tuple(sum(1 << (32 * i) for i in range(k)) for k in range(33))
_LOW_BITS: Final = tuple((1 << (8 * n)) - 1 for n in range(126))
_INT_UNMASK_UP_TO: Final = 512
"""Longer payloads are unmasked by ``bytes.translate`` of the 4 byte lanes (2-3x faster at 64 KiB);
shorter ones through ``int`` (2x faster at 8-125 bytes)."""
_XOR_TABLES: Final = tuple(bytes(a ^ b for a in range(256)) for b in range(256))
_new_utf8_decoder: Final = codecs.getincrementaldecoder("utf-8")


def unmask(data: bytes, mask: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``mask`` (RFC 6455 5.3; the same call masks and unmasks).

    Args:
        data: A payload, or the part of one that starts at a multiple of 4 bytes into it (else rotate
            ``mask`` by the offset).
        mask: The frame's 4-byte masking key.

    Returns:
        The unmasked bytes.
    """
    size = len(data)
    if size <= _INT_UNMASK_UP_TO:
        key = (mask * ((size + 3) >> 2))[:size]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")
    out = bytearray(size)
    tables = _XOR_TABLES
    out[0::4] = data[0::4].translate(tables[mask[0]])
    out[1::4] = data[1::4].translate(tables[mask[1]])
    out[2::4] = data[2::4].translate(tables[mask[2]])
    out[3::4] = data[3::4].translate(tables[mask[3]])
    return bytes(out)


def _unmask_short(buf: bytes, start: int, size: int) -> bytes:
    """The unmasked payload of ``size`` <= 125 bytes whose mask starts at ``buf[start]``: one int holds
    the mask (low 32 bits) and the payload above it."""
    both = int.from_bytes(buf[start : start + 4 + size], "little")
    key = ((both & 0xFFFFFFFF) * _REPUNITS[(size + 3) >> 2]) & _LOW_BITS[size]
    return ((both >> 32) ^ key).to_bytes(size, "little")


class FrameReader:
    """Reads a client's frames: masked, reassembled, checked; pings noted for the caller to answer.

    Call ``receive_data`` with the peer's bytes, then ``next_message`` until it returns
    ``ReadEvent.NEED_DATA``. After a ping, ``ping`` holds its payload: send a pong echoing it and set
    ``ping`` to None (a run of pings is answered by one pong for the last, as RFC 6455 5.5.3 allows).
    Pongs are ignored. A close frame or a violation ends the reading (``ReadEvent.CLOSED`` or
    ``ReadEvent.FAILED``, returned again by every later call, with ``close_code`` and ``close_reason``).

    No extension is negotiated, so RSV bits are refused (1002), as are unmasked frames, unknown opcodes,
    fragmented or longer than 125-byte control frames, lengths not in their shortest form or with the
    64-bit length's top bit set (as wsproto), a continuation with no message to continue or a new message
    before the last one ended, and close frames of 1 byte or with a code an endpoint may not send. Text
    is validated as UTF-8 as it arrives (1007). A message is refused (1009) as soon as a frame header
    brings its size past ``max_message`` bytes (text counted in UTF-8 bytes), so that no more than
    ``max_message`` bytes of it are ever held.

    Time is linear in the bytes fed: the reader keeps an offset into the current read and copies only a
    frame's payload and, between reads, the unread tail (at most a header and a control frame). Idle
    between messages, it holds no buffer and no UTF-8 decoder.

    Attributes:
        max_message: The largest message accepted, in bytes.
        ping: The payload of the latest ping not answered yet, or None.
        close_code: After ``CLOSED``, the peer's code; after ``FAILED``, the code to send; else 0.
        close_reason: After ``CLOSED``, the peer's reason; after ``FAILED``, what was wrong; else "".
    """

    __slots__ = (
        "_budget",
        "_buf",
        "_decoder",
        "_done",
        "_fin",
        "_left",
        "_mask",
        "_message",
        "_parts",
        "_pause_every",
        "_pos",
        "_size",
        "close_code",
        "close_reason",
        "max_message",
        "ping",
    )

    def __init__(self, *, max_message: int, pause_every: int = 0) -> None:
        """A reader of one connection's frames.

        Args:
            max_message: The largest message accepted, in bytes (1009 past it).
            pause_every: Return ``ReadEvent.PAUSE`` after this many frames handled without a
                ``receive_data`` or a pause in between; 0 never pauses.

        Raises:
            ValueError: a negative ``max_message`` or ``pause_every``.
        """
        if max_message < 0 or pause_every < 0:
            raise ValueError("max_message and pause_every must be >= 0")
        self.max_message = max_message
        self._pause_every = pause_every
        self._budget = pause_every or -1
        self._buf = b""  # the current read (or the unread tail + the read), from _pos on
        self._pos = 0
        self._left = 0  # payload bytes of the current data frame not read yet
        self._mask = b""  # its mask, rotated to where the next payload byte falls
        self._fin = False  # its FIN bit
        self._message = 0  # the opcode of the message in flight (text, binary), 0 between messages
        self._parts: bytearray | None = None  # its bytes received so far
        self._size = 0  # its size in bytes so far, frames in progress counted whole
        self._decoder: codecs.IncrementalDecoder | None = None  # for a text message in flight
        self._done: ReadEvent | None = None
        self.ping: bytes | None = None
        self.close_code = 0
        self.close_reason = ""

    def receive_data(self, data: bytes) -> None:
        """Feed the peer's next bytes (ignored once the reading ended); b"" is not an end of stream.

        Feed after ``next_message`` returned ``ReadEvent.NEED_DATA``: bytes fed before that are kept,
        at the cost of a copy of what was not read yet.
        """
        if self._done is not None or not data:
            return
        pos = self._pos
        if pos < len(self._buf):
            self._buf = self._buf[pos:] + data
        else:
            self._buf = data
        self._pos = 0
        self._budget = self._pause_every or -1

    def _fail(self, code: int, why: str) -> ReadEvent:
        self.close_code = code
        self.close_reason = why
        self._done = ReadEvent.FAILED
        self._buf = b""
        self._parts = self._decoder = None
        return ReadEvent.FAILED

    def next_message(self) -> str | bytes | ReadEvent:
        """The next whole message (str for text, bytes for binary), or what stops the reading.

        Returns:
            A message, or a ``ReadEvent``: ``NEED_DATA``, ``PAUSE``, ``CLOSED`` or ``FAILED``.
        """
        if self._done is not None:
            return self._done
        buf = self._buf
        pos = self._pos
        end = len(buf)
        while True:
            if self._left:  # the rest of a data frame's payload
                if pos == end:
                    break
                left = self._left
                take = left if left <= end - pos else end - pos
                chunk = unmask(buf[pos : pos + take], self._mask)
                pos += take
                left -= take
                self._left = left
                if left and take & 3:
                    turn = take & 3
                    self._mask = self._mask[turn:] + self._mask[:turn]
                message = self._add(chunk, not left and self._fin)
                if message is not None:
                    self._pos = pos
                    return message
                continue
            avail = end - pos
            if avail < 2:
                break
            if not self._budget:
                self._budget = self._pause_every
                self._pos = pos
                return ReadEvent.PAUSE
            # The checks in wsproto's order, so that a cut stream fails no later than wsproto does.
            first = buf[pos]
            second = buf[pos + 1]
            opcode = first & 0x0F
            if opcode not in _KNOWN_OPCODES:
                return self._fail(_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            length = second & 0x7F
            if opcode & 0x8:
                if not first & 0x80:
                    return self._fail(_PROTOCOL_ERROR, "fragmented control frame")
                if length > 125:
                    return self._fail(_PROTOCOL_ERROR, "control frame longer than 125 bytes")
            if length < 126:
                head = 6
            elif length == 126:
                head = 8
                if avail < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                if length < 126:
                    return self._fail(_PROTOCOL_ERROR, "16-bit length where 7 bits would do")
            else:
                head = 14
                if avail < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                if length < 0x10000:
                    return self._fail(_PROTOCOL_ERROR, "64-bit length where 16 bits would do")
                if length >> 63:
                    return self._fail(_PROTOCOL_ERROR, "64-bit length with the top bit set")
            if first & 0x70:
                return self._fail(_PROTOCOL_ERROR, "RSV bit set (no extension negotiated)")
            if not second & 0x80:
                return self._fail(_PROTOCOL_ERROR, "unmasked client frame")
            if avail < head:
                break
            if opcode & 0x8:
                if avail < head + length:
                    break  # control frames are read whole (at most 131 bytes wait in the tail)
                self._budget -= 1
                payload = _unmask_short(buf, pos + head - 4, length)
                pos += head + length
                if opcode == _PING:
                    self.ping = payload
                elif opcode == _CLOSE:
                    self._pos = pos
                    return self._close(payload)
                continue  # a pong
            self._budget -= 1
            if opcode:
                if self._message:
                    return self._fail(_PROTOCOL_ERROR, "a new message before the last one ended")
            elif not self._message:
                return self._fail(_PROTOCOL_ERROR, "continuation frame without a message to continue")
            if self._size + length > self.max_message:
                return self._fail(_MESSAGE_TOO_BIG, "message too big")
            if opcode and first & 0x80 and avail >= head + length:  # a whole message in one frame
                if length < 126:
                    data = _unmask_short(buf, pos + 2, length)
                else:
                    data = unmask(buf[pos + head : pos + head + length], buf[pos + head - 4 : pos + head])
                self._pos = pos + head + length
                if opcode == _BINARY:
                    return data
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    return self._fail(_INVALID_PAYLOAD, "invalid UTF-8 in a text message")
            if opcode:
                self._message = opcode
                self._parts = bytearray()
                if opcode == _TEXT:
                    self._decoder = _new_utf8_decoder("strict")
            self._fin = bool(first & 0x80)
            self._size += length
            self._mask = buf[pos + head - 4 : pos + head]
            pos += head
            self._left = length
            if not length:
                message = self._add(b"", self._fin)
                if message is not None:
                    self._pos = pos
                    return message
        self._buf = buf[pos:] if pos < end else b""
        self._pos = 0
        return ReadEvent.NEED_DATA

    def _add(self, chunk: bytes, last: bool) -> str | bytes | ReadEvent | None:
        """Append a data frame's (part of) payload to the message in flight; the message once ``last``.

        The bytes are gathered in one bytearray (a list of parts would cost an object per 1-byte
        fragment); a text message's are also fed to its UTF-8 decoder as they come, to refuse invalid
        UTF-8 at once, then decoded again whole at the end (a second pass, in C, over valid UTF-8).
        """
        parts = self._parts
        assert parts is not None
        decoder = self._decoder
        if decoder is not None:
            try:
                decoder.decode(chunk, last)
            except UnicodeDecodeError:
                return self._fail(_INVALID_PAYLOAD, "invalid UTF-8 in a text message")
        parts += chunk
        if not last:
            return None
        message = parts.decode("utf-8") if decoder is not None else bytes(parts)
        self._message = self._size = 0
        self._parts = self._decoder = None
        self._mask = b""
        return message

    def _close(self, payload: bytes) -> ReadEvent:
        """The peer's close frame: a valid one ends the reading with ``CLOSED``."""
        if not payload:
            code, reason = _NO_STATUS, ""
        elif len(payload) == 1:
            return self._fail(_PROTOCOL_ERROR, "close frame with a 1-byte payload")
        else:
            code = (payload[0] << 8) | payload[1]
            if code not in SENDABLE_PROTOCOL_CODES and not 3000 <= code <= 4999:
                return self._fail(_PROTOCOL_ERROR, f"close code {code} cannot be sent by an endpoint")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(_INVALID_PAYLOAD, "invalid UTF-8 in a close reason")
        self.close_code = code
        self.close_reason = reason
        self._done = ReadEvent.CLOSED
        self._buf = b""
        self._parts = self._decoder = None
        return ReadEvent.CLOSED
