"""Engine.IO v4 packets: WebSocket frame contents and the long-polling payload, sans IO.

Rule: pure functions of str/bytes and frozen packets; decoders raise only ``RemoteProtocolError``.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ..errors import LocalProtocolError, reraise_as_remote
from . import jsonjs

__all__ = [
    "CLOSE",
    "DEFAULT_MAX_PAYLOAD",
    "NOOP",
    "PING",
    "PONG",
    "PROBE_PING",
    "PROBE_PONG",
    "PROTOCOL_VERSION",
    "RECORD_SEPARATOR",
    "UPGRADE",
    "EnginePacket",
    "EnginePacketType",
    "OpenInfo",
    "decode_payload",
    "decode_ws",
    "encode_payload",
    "encode_ws",
    "open_packet",
    "parse_open",
]

PROTOCOL_VERSION: Final = 4
"""The ``EIO`` query parameter value this module speaks."""

RECORD_SEPARATOR: Final = "\x1e"
"""Separates the packets of a long-polling payload."""

DEFAULT_MAX_PAYLOAD_PACKETS: Final = 1000


class EnginePacketType(IntEnum):
    """Engine.IO packet types, with the spec's names and ids."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True, slots=True)
class EnginePacket:
    """One Engine.IO packet.

    Attributes:
        type: The packet type.
        data: The payload: text for every type, or bytes for a binary MESSAGE only.
    """

    type: EnginePacketType
    data: str | bytes = ""


@dataclass(frozen=True, slots=True)
class OpenInfo:
    """The handshake data of an OPEN packet, as a client reads it.

    Attributes:
        sid: The Engine.IO session id.
        upgrades: The transports the session may upgrade to.
        ping_interval_ms: The server pings this often (milliseconds).
        ping_timeout_ms: The pong must arrive within this delay (milliseconds).
        max_payload: The largest long-polling payload the server accepts, in bytes.
    """

    sid: str
    upgrades: tuple[str, ...]
    ping_interval_ms: int
    ping_timeout_ms: int
    max_payload: int


PING: Final = EnginePacket(EnginePacketType.PING)
"""``2``: the server's heartbeat ping."""
PONG: Final = EnginePacket(EnginePacketType.PONG)
"""``3``: the client's heartbeat answer."""
PROBE_PING: Final = EnginePacket(EnginePacketType.PING, "probe")
"""``2probe``: the client's upgrade probe over the new WebSocket."""
PROBE_PONG: Final = EnginePacket(EnginePacketType.PONG, "probe")
"""``3probe``: the server's answer to the probe."""
UPGRADE: Final = EnginePacket(EnginePacketType.UPGRADE)
"""``5``: the client completes the upgrade."""
NOOP: Final = EnginePacket(EnginePacketType.NOOP)
"""``6``: answers a pending GET during an upgrade, or on a client close."""
CLOSE: Final = EnginePacket(EnginePacketType.CLOSE)
"""``1``: closes the session."""

_TYPES_BY_CHAR: Final = {str(int(t)): t for t in EnginePacketType}
_PREFIX: Final = {t: str(int(t)) for t in EnginePacketType}
# Types whose text data is meaningful; the others must be bare ("1", "5", "6").
_DATA_ALLOWED: Final = frozenset(
    {EnginePacketType.OPEN, EnginePacketType.PING, EnginePacketType.PONG, EnginePacketType.MESSAGE}
)
DEFAULT_MAX_PAYLOAD: Final = 1_000_000
"""``maxPayload`` assumed when an OPEN packet omits it (early v4 drafts did): the reference default."""


def _encode_text(packet: EnginePacket) -> str:
    data = packet.data
    if not isinstance(data, str):
        raise LocalProtocolError(f"only a MESSAGE packet may carry bytes, not {packet.type.name}")
    if data and packet.type not in _DATA_ALLOWED:
        raise LocalProtocolError(f"a {packet.type.name} packet carries no data")
    return _PREFIX[packet.type] + data


def encode_ws(packet: EnginePacket) -> str | bytes:
    """Encode one packet as the content of one WebSocket frame.

    Args:
        packet: The packet.

    Returns:
        Text (``"4hello"``, ``"2"``, ``"3probe"``) for a text frame, or the raw bytes of a binary
        MESSAGE for a binary frame.

    Raises:
        LocalProtocolError: bytes on a packet other than MESSAGE, or data on CLOSE/UPGRADE/NOOP.
    """
    data = packet.data
    if isinstance(data, bytes | bytearray | memoryview):
        if packet.type is not EnginePacketType.MESSAGE:
            raise LocalProtocolError(f"only a MESSAGE packet may carry bytes, not {packet.type.name}")
        return bytes(data)
    return _encode_text(packet)


def _decode_text(message: str) -> EnginePacket:
    if not message:
        raise LocalProtocolError("empty Engine.IO packet")
    packet_type = _TYPES_BY_CHAR.get(message[0])
    if packet_type is None:
        raise LocalProtocolError(f"unknown Engine.IO packet type {message[:1]!r}")
    data = message[1:]
    if data and packet_type not in _DATA_ALLOWED:
        raise LocalProtocolError(f"unexpected data after a {packet_type.name} packet")
    return EnginePacket(packet_type, data)


def decode_ws(message: str | bytes) -> EnginePacket:
    """Decode the content of one received WebSocket frame.

    Args:
        message: A text frame's str, or a binary frame's bytes (a binary MESSAGE).

    Returns:
        The packet.

    Raises:
        RemoteProtocolError: an empty text, an unknown packet type, data on a bare packet type.
    """
    if isinstance(message, str):
        with reraise_as_remote():
            return _decode_text(message)
    if isinstance(message, bytes | bytearray | memoryview):
        return EnginePacket(EnginePacketType.MESSAGE, bytes(message))
    raise TypeError(f"message must be str or bytes, not {type(message).__name__}")


def encode_payload(packets: Iterable[EnginePacket]) -> str:
    """Encode packets as one long-polling body: joined by ``"\\x1e"``, binary as ``"b"`` + base64.

    Args:
        packets: The packets, in order (at least one).

    Returns:
        The body text (UTF-8 on the wire).

    Raises:
        LocalProtocolError: no packet, a text containing the record separator, or an invalid packet.
    """
    parts: list[str] = []
    for packet in packets:
        data = packet.data
        if isinstance(data, bytes | bytearray | memoryview):
            if packet.type is not EnginePacketType.MESSAGE:
                raise LocalProtocolError(f"only a MESSAGE packet may carry bytes, not {packet.type.name}")
            parts.append("b" + binascii.b2a_base64(data, newline=False).decode("ascii"))
        else:
            text = _encode_text(packet)
            if RECORD_SEPARATOR in text:
                raise LocalProtocolError("a long-polling packet cannot contain the record separator \\x1e")
            parts.append(text)
    if not parts:
        raise LocalProtocolError("a long-polling payload holds at least one packet")
    return RECORD_SEPARATOR.join(parts)


def _decode_base64(text: str) -> bytes:
    if not text.isascii():
        raise LocalProtocolError("invalid base64 in a binary packet")
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise LocalProtocolError("invalid base64 in a binary packet") from None


def decode_payload(body: str, *, max_packets: int = DEFAULT_MAX_PAYLOAD_PACKETS) -> list[EnginePacket]:
    """Decode a long-polling body (a POST from the client, or a GET answer for a client).

    Args:
        body: The body text.
        max_packets: The most packets accepted in one body.

    Returns:
        The packets, in order.

    Raises:
        RemoteProtocolError: an empty body, too many packets, an empty or unknown packet, bad base64.
    """
    with reraise_as_remote():
        if not body:
            raise LocalProtocolError("empty long-polling payload")
        if body.count(RECORD_SEPARATOR) >= max_packets:
            raise LocalProtocolError(f"more than {max_packets} packets in one long-polling payload")
        packets = []
        for part in body.split(RECORD_SEPARATOR):
            if part[:1] == "b":
                packets.append(EnginePacket(EnginePacketType.MESSAGE, _decode_base64(part[1:])))
            else:
                packets.append(_decode_text(part))
        return packets


def _check_ms(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def open_packet(
    sid: str,
    *,
    upgrades: Sequence[str],
    ping_interval_ms: int,
    ping_timeout_ms: int,
    max_payload: int,
) -> EnginePacket:
    """Build the server's OPEN packet.

    Its data is compact JSON with exactly the keys, in order: ``sid``, ``upgrades``, ``pingInterval``,
    ``pingTimeout``, ``maxPayload`` (``0{"sid":"...","upgrades":["websocket"],"pingInterval":25000,...}``).

    Args:
        sid: The session id.
        upgrades: ``["websocket"]`` over polling, ``[]`` over WebSocket.
        ping_interval_ms: Heartbeat interval in milliseconds (exact, even below one second).
        ping_timeout_ms: Heartbeat timeout in milliseconds.
        max_payload: The largest long-polling payload accepted, in bytes.

    Returns:
        The OPEN packet.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a negative number, or an empty sid.
    """
    if not isinstance(sid, str) or not sid:
        raise ValueError("sid must be a non-empty str")
    if isinstance(upgrades, str) or not all(isinstance(u, str) for u in upgrades):
        raise TypeError("upgrades must be a sequence of str")
    handshake = {
        "sid": sid,
        "upgrades": list(upgrades),
        "pingInterval": _check_ms("ping_interval_ms", ping_interval_ms),
        "pingTimeout": _check_ms("ping_timeout_ms", ping_timeout_ms),
        "maxPayload": _check_ms("max_payload", max_payload),
    }
    return EnginePacket(EnginePacketType.OPEN, jsonjs.dumps(handshake))


def _non_negative_int(handshake: dict[str, object], key: str, default: int | None = None) -> int:
    value = handshake.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LocalProtocolError(f"OPEN packet: {key} must be a non-negative integer")
    return value


def parse_open(data: str) -> OpenInfo:
    """Read the handshake data of an OPEN packet (client side).

    ``upgrades`` may be absent (read as ``()``) and ``maxPayload`` too (read as ``DEFAULT_MAX_PAYLOAD``), as
    in the spec's WebSocket-only sample session; the other keys are mandatory. Unknown keys are ignored.

    Args:
        data: The OPEN packet's data (the JSON text after the ``0``).

    Returns:
        The handshake.

    Raises:
        RemoteProtocolError: not a JSON object, or a key missing or of the wrong type.
    """
    with reraise_as_remote():
        handshake = jsonjs.loads(data, max_depth=2)
        if not isinstance(handshake, dict):
            raise LocalProtocolError("OPEN packet: the handshake is not a JSON object")
        sid = handshake.get("sid")
        if not isinstance(sid, str) or not sid:
            raise LocalProtocolError("OPEN packet: sid must be a non-empty string")
        upgrades = handshake.get("upgrades", [])
        if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
            raise LocalProtocolError("OPEN packet: upgrades must be an array of strings")
        return OpenInfo(
            sid=sid,
            upgrades=tuple(upgrades),
            ping_interval_ms=_non_negative_int(handshake, "pingInterval"),
            ping_timeout_ms=_non_negative_int(handshake, "pingTimeout"),
            max_payload=_non_negative_int(handshake, "maxPayload", DEFAULT_MAX_PAYLOAD),
        )
