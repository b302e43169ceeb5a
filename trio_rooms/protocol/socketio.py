"""Socket.IO v5 packets: ``encode`` -> (text, attachments) and a ``Decoder`` that reassembles binary.

Rule: sans IO; the encoder refuses to write what the decoder would refuse to read (``LocalProtocolError``),
and the decoder raises only ``RemoteProtocolError`` on bad input, whatever the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from ..errors import LocalProtocolError, RemoteProtocolError
from . import jsonjs

__all__ = [
    "DEFAULT_MAX_ATTACHMENTS",
    "MAX_ACK_ID",
    "RESERVED_EVENTS",
    "Decoder",
    "Packet",
    "PacketType",
    "ack_args",
    "ack_value",
    "encode",
    "event_packet",
]


class PacketType(IntEnum):
    """Socket.IO packet types, with the spec's names and ids."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(frozen=True, slots=True)
class Packet:
    """One Socket.IO packet.

    Attributes:
        type: The packet type. The decoder reports a reassembled BINARY_EVENT / BINARY_ACK as EVENT / ACK
            (as socket.io-parser does): the binary types only exist on the wire.
        nsp: The namespace, ``"/"`` for the main one.
        data: The decoded JSON payload, with ``bytes`` in place of the binary placeholders; ``None`` when
            the packet has none.
        ack_id: The acknowledgement id, or ``None``.
    """

    type: PacketType
    nsp: str = "/"
    data: Any = None
    ack_id: int | None = None


RESERVED_EVENTS: Final[frozenset[str]] = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
"""Event names that cannot be emitted: they have a special meaning on one side or the other."""

DEFAULT_MAX_ATTACHMENTS: Final = 10
MAX_ACK_ID: Final = 10**15 - 1
"""Ack ids have at most 15 digits, so that JavaScript holds them exactly."""

_BINARY_TYPES: Final = frozenset({PacketType.BINARY_EVENT, PacketType.BINARY_ACK})
_BINARY_CAPABLE: Final = frozenset(
    {PacketType.EVENT, PacketType.ACK, PacketType.BINARY_EVENT, PacketType.BINARY_ACK}
)
_TO_BINARY: Final = {PacketType.EVENT: PacketType.BINARY_EVENT, PacketType.ACK: PacketType.BINARY_ACK}
_FROM_BINARY: Final = {PacketType.BINARY_EVENT: PacketType.EVENT, PacketType.BINARY_ACK: PacketType.ACK}
_TYPE_PREFIX: Final = {t: str(int(t)) for t in PacketType}
_BINARY_LIKE: Final = (bytes, bytearray, memoryview)
_ARRAY: Final = (list, tuple)
_NUMBER: Final = (int, float)
_PACKET_TYPES: Final = tuple(PacketType)  # indexed by id: faster than calling the enum
_EVENT: Final = PacketType.EVENT
_ACK: Final = PacketType.ACK
_BINARY_EVENT: Final = PacketType.BINARY_EVENT
_BINARY_ACK: Final = PacketType.BINARY_ACK

# <type>[<attachments>-][<nsp>,][<ack id>][<JSON>]; the namespace runs to the first comma or to the end.
# Read by a scanner (``_split_header``), not by one pattern: the fields' quantifiers overlap (digits both
# before "-" and as the ack id), and peer input gets no such pattern (DESIGN.md 2.7).
_DIGITS: Final = re.compile(r"[0-9]*")
_TYPE_DIGITS: Final = frozenset("0123456")
_MAX_COUNT_DIGITS: Final = 6


# ---------------------------------------------------------------------------------------------------------
# Payload shapes, shared by both directions
# ---------------------------------------------------------------------------------------------------------


def _check_shape(ptype: PacketType, data: Any, ack_id: int | None) -> None:
    """Raise LocalProtocolError unless ``data`` and ``ack_id`` fit a packet of type ``ptype``."""
    if ptype is _EVENT or ptype is _BINARY_EVENT:
        if not isinstance(data, _ARRAY) or not data:
            raise LocalProtocolError(f"{ptype.name} payload must be a non-empty array")
        name = data[0]
        if isinstance(name, str):
            if name in RESERVED_EVENTS:
                raise LocalProtocolError(f"{name!r} is a reserved event name")
        elif not isinstance(name, _NUMBER) or isinstance(name, bool):
            raise LocalProtocolError(f"{ptype.name} name must be a string (or a number)")
        return
    if ptype is _ACK or ptype is _BINARY_ACK:
        if not isinstance(data, _ARRAY):
            raise LocalProtocolError(f"{ptype.name} payload must be an array")
        if ack_id is None:
            raise LocalProtocolError(f"{ptype.name} packet without an ack id")
        return
    if ack_id is not None:
        raise LocalProtocolError(f"{ptype.name} packet cannot carry an ack id")
    if ptype is PacketType.CONNECT:
        if data is not None and not isinstance(data, dict):
            raise LocalProtocolError("CONNECT payload must be absent or an object")
    elif ptype is PacketType.DISCONNECT:
        if data is not None:
            raise LocalProtocolError("DISCONNECT packet carries no payload")
    elif not isinstance(data, str | dict):  # CONNECT_ERROR
        raise LocalProtocolError("CONNECT_ERROR payload must be an object or a string")


# ---------------------------------------------------------------------------------------------------------
# Events and acks, as the API sees them (shared by the server and the client)
# ---------------------------------------------------------------------------------------------------------


def event_packet(
    nsp: str, event: str, args: tuple[Any, ...] | list[Any], ack_id: int | None = None
) -> Packet:
    """The EVENT packet of ``emit(event, *args)``.

    Raises:
        TypeError: ``event`` is not a str.
        ValueError: ``event`` is a reserved name.
    """
    if not isinstance(event, str):
        raise TypeError(f"an event name is a str, not {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name and cannot be emitted")
    return Packet(PacketType.EVENT, nsp, [event, *args], ack_id)


def ack_value(args: list[Any]) -> Any:
    """The value an ack with ``args`` stands for: None, the value, or a tuple (0, 1, 2+ args)."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


def ack_args(result: Any) -> list[Any]:
    """The arguments of the ACK for a handler's return value (None: none; tuple: spread)."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


# ---------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------


def _deconstruct(data: Any, buffers: list[bytes]) -> Any:
    """Copy ``data`` with each binary replaced by a numbered placeholder, depth first, in order."""
    if isinstance(data, _BINARY_LIKE):
        buffers.append(bytes(data))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(data, list | tuple):
        return [_deconstruct(item, buffers) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, buffers) for key, value in data.items()}
    return data


def encode(packet: Packet) -> tuple[str, list[bytes]]:
    """Encode a packet as ``<type>[<n>-][<nsp>,][<ack id>][<JSON>]`` plus its binary attachments.

    If the data holds bytes/bytearray/memoryview anywhere, an EVENT becomes BINARY_EVENT and an ACK becomes
    BINARY_ACK, and each binary is replaced by ``{"_placeholder":true,"num":N}`` in depth-first order. A
    BINARY_* packet with no binary data is written as a plain EVENT / ACK: the reference parser
    (socket.io-parser 4.2.4 and later) rejects an attachment count of 0; it also refuses more than 10
    attachments by default.

    Args:
        packet: The packet.

    Returns:
        The text message (to send as an Engine.IO MESSAGE) and the attachments (each one binary MESSAGE,
        sent right after the text, in order).

    Raises:
        LocalProtocolError: a namespace not starting with ``/`` or containing ``,``, a bad ack id, a
            payload of the wrong shape for the type (a reserved event name included).
        TypeError: the data holds a value JSON cannot carry.
    """
    ptype = packet.type
    if type(ptype) is not PacketType:
        ptype = PacketType(ptype)
    nsp, data, ack_id = packet.nsp, packet.data, packet.ack_id
    if nsp != "/" and (not isinstance(nsp, str) or nsp[:1] != "/" or "," in nsp):
        raise LocalProtocolError(f"invalid namespace {nsp!r}: it starts with '/' and has no ','")
    if ack_id is not None and (
        not isinstance(ack_id, int) or isinstance(ack_id, bool) or not 0 <= ack_id <= MAX_ACK_ID
    ):
        raise LocalProtocolError(f"invalid ack id {ack_id!r}: an integer from 0 to {MAX_ACK_ID}")
    _check_shape(ptype, data, ack_id)

    buffers: list[bytes] = []
    if data is None:
        payload = ""
    elif ptype in _BINARY_CAPABLE:
        try:
            payload = jsonjs.dumps(data)
        except TypeError:
            data = _deconstruct(data, buffers)
            if not buffers:
                raise
            payload = jsonjs.dumps(data)
    else:
        payload = jsonjs.dumps(data)
    # socket.io-parser >= 4.2.4 refuses "<n>-" with n < 1: a BINARY_* without binary goes out plain.
    ptype = _TO_BINARY.get(ptype, ptype) if buffers else _FROM_BINARY.get(ptype, ptype)

    head = _TYPE_PREFIX[ptype]
    if ptype in _BINARY_TYPES:
        head += f"{len(buffers)}-"
    if nsp != "/":
        head += nsp + ","
    if ack_id is not None:
        head += str(ack_id)
    return head + payload, buffers


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------


def _digits_end(message: str, position: int) -> int:
    match = _DIGITS.match(message, position)
    return position if match is None else match.end()


def _split_header(message: str) -> tuple[str, str | None, str | None, str | None, int]:
    """Split ``<type>[<n>-][<nsp>,][<ack id>]`` off ``message``, in one pass (linear time).

    Returns:
        The type digit, the attachment count's digits, the namespace, the ack id's digits (None when
        absent), and where the payload starts.

    Raises:
        LocalProtocolError: the first character is not a packet type.
    """
    type_digit = message[:1]
    if type_digit not in _TYPE_DIGITS:
        raise LocalProtocolError(f"unknown Socket.IO packet type {type_digit!r}")
    count = nsp = ack_digits = None
    end = _digits_end(message, 1)
    if end > 1 and message[end : end + 1] == "-":
        count = message[1:end]
        position = end + 1
    else:
        position = 1
    if message[position : position + 1] == "/":
        comma = message.find(",", position)
        if comma < 0:
            nsp, position = message[position:], len(message)
        else:
            nsp, position = message[position:comma], comma + 1
    end = _digits_end(message, position)
    if end > position:
        ack_digits, position = message[position:end], end
    return type_digit, count, nsp, ack_digits, position


def _reconstruct(data: Any, buffers: list[bytes], used: set[int]) -> Any:
    """Replace placeholders in freshly decoded JSON (nesting bounded by max_depth) with the buffers."""
    if isinstance(data, list):
        for index, item in enumerate(data):
            if isinstance(item, list | dict):
                data[index] = _reconstruct(item, buffers, used)
        return data
    if isinstance(data, dict):
        if data.get("_placeholder") is True:
            num = data.get("num")
            if not isinstance(num, int) or isinstance(num, bool) or not 0 <= num < len(buffers):
                raise LocalProtocolError(f"placeholder refers to no attachment: num={num!r}")
            used.add(num)
            return buffers[num]
        for key, value in data.items():
            if isinstance(value, list | dict):
                data[key] = _reconstruct(value, buffers, used)
    return data


@dataclass(slots=True)
class _Pending:
    type: PacketType
    nsp: str
    data: Any
    ack_id: int | None
    expected: int
    buffers: list[bytes]


class Decoder:
    """Turns received Engine.IO MESSAGE contents into Socket.IO packets, reassembling binary ones.

    A text message starts a packet; a BINARY_EVENT / BINARY_ACK then waits for its attachments (binary
    messages). Any malformed input raises ``RemoteProtocolError``, and nothing else (anything else escaping
    is a bug). After an error the decoder is broken for good: every later ``feed`` raises
    ``RemoteProtocolError`` too, since the connection must then be closed.

    Args:
        max_attachments: The most attachments one packet may announce.
        max_depth: How deeply the JSON payload may nest.
    """

    __slots__ = ("_broken", "_max_attachments", "_max_depth", "_pending")

    def __init__(self, *, max_attachments: int = DEFAULT_MAX_ATTACHMENTS, max_depth: int = 32) -> None:
        self._max_attachments = max_attachments
        self._max_depth = max_depth
        self._pending: _Pending | None = None
        self._broken = False

    @property
    def awaiting_attachments(self) -> bool:
        """True between a binary packet's text and its last attachment."""
        return self._pending is not None

    def feed(self, message: str | bytes) -> Packet | None:
        """Feed one received message (the data of an Engine.IO MESSAGE packet).

        Args:
            message: Text (a packet) or bytes (an attachment of the pending binary packet).

        Returns:
            The complete packet, or ``None`` while attachments are still expected.

        Raises:
            RemoteProtocolError: malformed packet, unexpected text or bytes, or an earlier error.
            TypeError: ``message`` is neither str nor bytes.
        """
        if self._broken:
            raise RemoteProtocolError("the Socket.IO decoder failed earlier: close the connection")
        try:
            if isinstance(message, str):
                if self._pending is not None:
                    raise LocalProtocolError(
                        f"text packet while awaiting {self._pending.expected - len(self._pending.buffers)} "
                        "binary attachment(s)"
                    )
                return self._start(message)
            if isinstance(message, _BINARY_LIKE):
                pending = self._pending
                if pending is None:
                    raise LocalProtocolError("binary message while no binary packet awaits attachments")
                pending.buffers.append(bytes(message))
                if len(pending.buffers) < pending.expected:
                    return None
                self._pending = None
                return self._finish(pending)
        except LocalProtocolError as exc:
            self._broken = True
            self._pending = None
            raise RemoteProtocolError(exc.message) from None
        raise TypeError(f"message must be str or bytes, not {type(message).__name__}")

    def _start(self, message: str) -> Packet | None:
        type_digit, count, nsp, ack_digits, start = _split_header(message)
        ptype = _PACKET_TYPES[int(type_digit)]
        binary = ptype in _BINARY_TYPES
        if binary:
            if count is None:
                raise LocalProtocolError(f"{ptype.name} packet without an attachment count ('<n>-')")
            if len(count) > _MAX_COUNT_DIGITS or int(count) > self._max_attachments:
                raise LocalProtocolError(f"too many attachments: {count} > {self._max_attachments}")
            if int(count) < 1:  # as socket.io-parser >= 4.2.4: binary packets carry at least one
                raise LocalProtocolError(f"{ptype.name} packet announcing {count} attachments")
        elif count is not None:
            raise LocalProtocolError(f"attachment count on a non-binary {ptype.name} packet")
        ack_id = None
        if ack_digits is not None:
            if len(ack_digits) > 15:
                raise LocalProtocolError("ack id longer than 15 digits")
            ack_id = int(ack_digits)
        rest = message[start:]
        data = None
        if rest:
            if rest[0] in " \t\r\n":  # socket.io-parser would read a space as ack id 0: refuse to guess
                raise LocalProtocolError("whitespace before the payload")
            data = jsonjs.loads(rest, max_depth=self._max_depth)
            if data is None:  # an explicit null is not an absent payload (socket.io-parser agrees)
                raise LocalProtocolError(f"{ptype.name} payload cannot be null")
        _check_shape(ptype, data, ack_id)
        if nsp is None:
            nsp = "/"
        if not binary:
            return Packet(ptype, nsp, data, ack_id)
        assert count is not None  # checked above for binary types
        self._pending = _Pending(ptype, nsp, data, ack_id, int(count), [])
        return None

    def _finish(self, pending: _Pending) -> Packet:
        used: set[int] = set()
        data = _reconstruct(pending.data, pending.buffers, used)
        if len(used) != pending.expected:
            unused = sorted(set(range(pending.expected)) - used)
            raise LocalProtocolError(f"binary attachment(s) {unused} referenced by no placeholder")
        return Packet(_FROM_BINARY[pending.type], pending.nsp, data, pending.ack_id)
