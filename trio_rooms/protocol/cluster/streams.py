"""Node's ``@socket.io/redis-streams-adapter`` 0.3 format: stream entries, pub/sub messages, sessions.

Rule: sans-IO. Facts (from socketio/socket.io-redis-streams-adapter lib/adapter.ts and lib/util.ts, and
socket.io-adapter's cluster-adapter.ts):

- The commands that need no answer (``Broadcast`` without acks, ``SocketsJoin``, ``SocketsLeave``,
  ``DisconnectSockets``) are stream entries: ``XADD <stream> MAXLEN ~ <max_len> *`` with the fields
  ``uid``, ``nsp``, ``type`` (the cluster ``MessageType`` as a decimal string) and ``data``: the JSON
  text of the message's data, or, when a type that may carry binary does, the base64 of its msgpack.
  Readers tell them apart by a leading ``{``. An entry's id is its offset.
- The others (a broadcast with acks, ``FetchSockets``, ``ServerSideEmit``) go by pub/sub on
  ``prefix#nsp#``, and every answer on the requester's ``prefix#nsp#uid#``: msgpack of
  ``{uid, nsp, type, data}``, always (the Node side decodes them as msgpack only).
- A session is ``base64(msgpack({sid, pid, rooms, data}))``, under ``<session_key_prefix><pid>``.
- A recovering client's offset must look like an entry id (``<ms>-<seq>``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ...types import BroadcastOptions, Room
from ..socketio import Packet, PacketType
from .messages import ClusterMessage, MessageError, MessageType, decode_any, encode_json, encode_msgpack
from .messages import may_carry_binary as _may_carry_binary
from .model import Broadcast, Command, DisconnectSockets, Envelope, SocketsJoin, SocketsLeave
from .sharded import ShardedWire, decode_cluster_message

__all__ = [
    "STREAM_COMMANDS",
    "StreamsWire",
    "decode_session",
    "encode_session",
    "is_offset",
    "next_offset",
    "offset_key",
    "replays_to",
]

#: The commands that go through the stream (the others, and every reply, go by pub/sub).
STREAM_COMMANDS: Final = (Broadcast, SocketsJoin, SocketsLeave, DisconnectSockets)

_OFFSET: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_BROADCAST_TYPE: Final = str(int(MessageType.BROADCAST)).encode()


def is_offset(value: str) -> bool:
    """Whether ``value`` is an entry id (``<ms>-<seq>``), as a client's offset must be."""
    return _OFFSET.fullmatch(value) is not None


def offset_key(offset: str) -> tuple[int, int]:
    """An entry id as a sortable pair. Raises: ValueError (not an entry id)."""
    if not is_offset(offset):
        raise ValueError(f"not a stream entry id: {offset!r}")
    ms, seq = offset.split("-")
    return int(ms), int(seq)


def next_offset(offset: str) -> str:
    """The smallest entry id after ``offset`` (an exclusive XRANGE start that Redis < 6.2 reads too)."""
    ms, seq = offset_key(offset)
    return f"{ms}-{seq + 1}"


def _text(value: bytes | None, what: str) -> str:
    if value is None:
        raise MessageError(f"the entry has no {what}")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise MessageError(f"the entry's {what} is not UTF-8") from None


def _data_from_field(raw: bytes) -> Any:
    """A stream entry's ``data``: JSON when it starts with ``{``, otherwise base64 of msgpack."""
    if raw[:1] == b"{":
        return decode_any(raw)
    try:
        packed = base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        raise MessageError("the entry's data is neither JSON nor base64") from None
    if not packed or packed[:1] == b"{":
        raise MessageError("the entry's data is not msgpack")
    return decode_any(packed)


def replays_to(rooms: frozenset[Room], opts: BroadcastOptions) -> bool:
    """Whether a broadcast to ``opts`` reached a socket in ``rooms`` (its own room included)."""
    if opts.rooms and not (opts.rooms & rooms):
        return False
    return not (opts.except_rooms & rooms)


class StreamsWire(ShardedWire):
    """The Redis Streams adapter's format for one namespace (classic pub/sub, no room channels).

    Args:
        prefix: Node's ``channelPrefix`` (``socket.io``).
        nsp: the namespace name.
    """

    def __init__(self, prefix: str, nsp: str) -> None:
        super().__init__(prefix, nsp, subscription_mode="static")
        self._nsp_b = nsp.encode()

    def _message(self, kind: MessageType, data: dict[str, Any] | None = None) -> bytes:
        return ClusterMessage(kind, self.uid, self.nsp, data).encode(always_msgpack=True)

    # -- stream entries ----------------------------------------------------------------------------
    def entry(self, command: Command) -> list[bytes]:
        """The fields of ``command``'s stream entry, as XADD takes them: ``[name, value, ...]``.

        Raises:
            ValueError: ``command`` does not go through the stream.
            TypeError: an argument cannot be sent to other servers.
        """
        if not isinstance(command, STREAM_COMMANDS):
            raise ValueError(f"{type(command).__name__} does not go through the stream")
        _channel, kind, data = self.encode_parts(command)
        binary = _may_carry_binary(kind, data)
        value = base64.b64encode(encode_msgpack(data)) if binary else encode_json(data)
        return [
            b"uid",
            self.uid.encode(),
            b"nsp",
            self._nsp_b,
            b"type",
            str(int(kind)).encode(),
            b"data",
            value,
        ]

    def decode_entry(self, fields: Mapping[bytes, bytes]) -> Envelope | None:
        """The message of a stream entry, or None when it is another namespace's (or has none).

        Raises:
            MessageError: malformed.
        """
        nsp = fields.get(b"nsp")
        if not nsp:
            return None  # as Node: an entry without a namespace is not a message
        if nsp != self._nsp_b:
            return None
        uid = _text(fields.get(b"uid"), "uid")
        raw_type = fields.get(b"type", b"")
        if not raw_type.isdigit() or len(raw_type) > 3:
            raise MessageError("the entry's type is not a message type")
        try:
            kind = MessageType(int(raw_type))
        except ValueError:
            raise MessageError(f"unknown message type {raw_type!r}") from None
        raw = fields.get(b"data")
        data = None if not raw else _data_from_field(raw)
        if data is not None and not isinstance(data, dict):
            raise MessageError("the entry's data is not an object")
        return Envelope(uid, decode_cluster_message(ClusterMessage(kind, uid, self.nsp, data)))

    def replayable(
        self, entry_id: str, fields: Mapping[bytes, bytes]
    ) -> tuple[Packet, BroadcastOptions] | None:
        """The packet a recovering socket gets for this entry (its args ending with the entry id) and
        the broadcast's selection, or None: not a broadcast of this namespace, with acks, or volatile.

        Raises:
            MessageError: malformed.
        """
        if fields.get(b"type") != _BROADCAST_TYPE or fields.get(b"nsp") != self._nsp_b:
            return None
        envelope = self.decode_entry(fields)
        if envelope is None or not isinstance(envelope.message, Broadcast):
            return None
        packet, opts = envelope.message.packet, envelope.message.opts
        if opts.flags.volatile:
            return None
        return Packet(PacketType.EVENT, packet.nsp, [*packet.data, entry_id]), opts

    def missed_packet(
        self, entry_id: str, fields: Mapping[bytes, bytes], rooms: frozenset[Room]
    ) -> Packet | None:
        """The packet a socket in ``rooms`` missed with this entry (``replayable``, if it reached those
        rooms), or None.

        Raises:
            MessageError: malformed.
        """
        found = self.replayable(entry_id, fields)
        return found[0] if found is not None and replays_to(rooms, found[1]) else None


# -- sessions ----------------------------------------------------------------------------------------------
def encode_session(sid: str, pid: str, rooms: Sequence[Room], data: Any) -> bytes:
    """``base64(msgpack({sid, pid, rooms, data}))``, as the Node adapter stores a session.

    Raises:
        TypeError: ``data`` holds something msgpack cannot carry.
    """
    value = {"sid": sid, "pid": pid, "rooms": list(rooms), "data": data}
    try:
        packed = encode_msgpack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"the session's data cannot be stored: {exc}") from None
    return base64.b64encode(packed)


def decode_session(raw: bytes) -> tuple[str, str, tuple[Room, ...], Any]:
    """``(sid, pid, rooms, data)`` of a stored session.

    Raises:
        MessageError: malformed.
    """
    try:
        packed = base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        raise MessageError("a session is base64") from None
    if not packed:
        raise MessageError("empty session")
    value = decode_any(packed)
    if not isinstance(value, dict):
        raise MessageError("a session is an object")
    sid, pid, rooms = value.get("sid"), value.get("pid"), value.get("rooms")
    if not isinstance(sid, str) or not isinstance(pid, str):
        raise MessageError("a session has a string sid and pid")
    if not isinstance(rooms, list):
        raise MessageError("a session's rooms are a list")
    return sid, pid, tuple(str(room) for room in rooms), value.get("data")
