"""The messages servers exchange through Redis, typed: Node's ``@socket.io/redis-adapter`` 8.x format.

Rule: sans-IO. Bytes in, a frozen message out (or ``MessageError``); a message in, bytes out. msgpack
and JSON only (never pickle); msgpack is imported on first use, so this module imports without it.

Facts (from socketio/socket.io-redis-adapter lib/index.ts and lib/sharded-adapter.ts, and
socketio/socket.io packages/socket.io-adapter/lib/cluster-adapter.ts):

- classic broadcast: msgpack ``[uid, packet, opts]``, ``packet = {type: 2, data: [event, ...], nsp}``,
  ``opts = {rooms: [...], except: [...], flags: {...}}`` (``flags.timeout`` in milliseconds);
- classic requests and responses: JSON when the first byte is ``{``, msgpack otherwise; the request
  types are ``RequestType``; a response carries ``requestId`` (and ``type`` for 6, 8 and 9 only);
- sharded (cluster adapter model): ``{uid, nsp, type, data}`` with the types of ``MessageType``, JSON
  unless a message that may carry binary does, then msgpack.
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cache
from types import ModuleType
from typing import Any, Final

from ...errors import install_hint
from ...types import BroadcastFlags, BroadcastOptions, Handshake, Room
from ..jsonjs import cyclic_gc_paused
from ..socketio import Packet, PacketType

__all__ = [
    "INSTALL_HINT",
    "BroadcastMessage",
    "ClusterMessage",
    "MessageError",
    "MessageType",
    "Request",
    "RequestType",
    "Response",
    "decode_any",
    "encode_json",
    "encode_msgpack",
    "handshake_from_json",
    "has_binary",
    "import_msgpack",
    "may_carry_binary",
    "options_from_wire",
    "options_to_wire",
    "packet_from_wire",
    "packet_to_wire",
]

INSTALL_HINT: Final = f"the Redis adapter needs coredis and msgpack: {install_hint('redis')}"
_GC_PAUSE_BYTES: Final = 65_536


class MessageError(ValueError):
    """A message on a cluster channel that is not in the expected format (ignored and counted)."""


class RequestType(IntEnum):
    """Request types of the classic adapter (lib/index.ts ``RequestType``)."""

    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9


class MessageType(IntEnum):
    """Message types of the cluster adapter model, used by the sharded adapter (cluster-adapter.ts)."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


_MAY_CARRY_BINARY: Final = frozenset(
    {
        MessageType.BROADCAST,
        MessageType.BROADCAST_ACK,
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
    }
)


# -- codecs -------------------------------------------------------------------------------------------
@cache
def import_msgpack() -> ModuleType:
    """The msgpack module.

    Raises:
        ImportError: msgpack is not installed (the message says what to install).
    """
    try:
        import msgpack  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return msgpack  # type: ignore[no-any-return,unused-ignore]


def _ext_hook(code: int, data: bytes) -> Any:
    # Older notepack.io wrote ``undefined`` as fixext 1 (type 0, data 0): read it as None.
    if code == 0:
        return None
    raise MessageError(f"unsupported msgpack extension type {code}")


def encode_msgpack(value: Any) -> bytes:
    """msgpack with bin for bytes and str for str, as notepack.io writes them."""
    packed: bytes = import_msgpack().packb(value, use_bin_type=True)
    return packed


def _node_json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"type": "Buffer", "data": list(bytes(value))}  # JSON.stringify of a Node Buffer
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot be sent to other servers")


def encode_json(value: Any) -> bytes:
    """Compact JSON, as ``JSON.stringify`` writes it (bytes become Node's Buffer JSON)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_node_json_default).encode()


def decode_any(data: bytes) -> Any:
    """JSON when the first byte is ``{`` (as Node decides), msgpack otherwise.

    Raises:
        MessageError: neither decodes.
    """
    if not data:
        raise MessageError("empty message")
    try:
        # A large message may hold many containers, in no cycle: see jsonjs.GC_PAUSE_CONTAINERS.
        with cyclic_gc_paused() if len(data) > _GC_PAUSE_BYTES else nullcontext():
            if data[0] == 0x7B:
                return json.loads(data)
            return import_msgpack().unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=False)
    except MessageError:
        raise
    except ImportError:
        raise
    except Exception as exc:
        raise MessageError(f"undecodable message ({type(exc).__name__})") from None


def has_binary(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds bytes anywhere (as socket.io's ``hasBinary``)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if depth > 64:
        return False
    if isinstance(value, list | tuple):
        return any(has_binary(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(has_binary(item, depth + 1) for item in value.values())
    return False


def may_carry_binary(kind: MessageType, data: Any) -> bool:
    """Whether a cluster message of type ``kind`` holding ``data`` must go as msgpack (it has bytes)."""
    return kind in _MAY_CARRY_BINARY and has_binary(data)


# -- the parts ----------------------------------------------------------------------------------------
def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise MessageError(f"{what} is not a string")
    return value


def _room(value: Any) -> Room:
    # JavaScript rooms may be numbers; ours are strings.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise MessageError("a room is a string or a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise MessageError("a room is a string or a number")


def _rooms(value: Any) -> frozenset[Room]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise MessageError("rooms are a list")
    return frozenset(_room(item) for item in value)


def options_to_wire(opts: BroadcastOptions) -> dict[str, Any]:
    """``{rooms, except, flags}`` as Node's ``encodeOptions`` writes it (timeout in milliseconds)."""
    flags: dict[str, Any] = {}
    if opts.flags.volatile:
        flags["volatile"] = True
    if opts.flags.timeout is not None:
        flags["timeout"] = round(opts.flags.timeout * 1000)
    return {"rooms": sorted(opts.rooms), "except": sorted(opts.except_rooms), "flags": flags}


def options_from_wire(value: Any) -> BroadcastOptions:
    """The selection a peer sent (``flags.local`` is dropped: the message is the remote part)."""
    if value is None:
        return BroadcastOptions()
    if not isinstance(value, dict):
        raise MessageError("opts is not an object")
    flags = value.get("flags")
    volatile = False
    timeout: float | None = None
    if isinstance(flags, dict):
        volatile = bool(flags.get("volatile"))
        raw_timeout = flags.get("timeout")
        if isinstance(raw_timeout, int | float) and not isinstance(raw_timeout, bool) and raw_timeout > 0:
            timeout = raw_timeout / 1000
    return BroadcastOptions(
        _rooms(value.get("rooms")),
        _rooms(value.get("except")),
        BroadcastFlags(volatile=volatile, timeout=timeout),
    )


def packet_to_wire(packet: Packet) -> dict[str, Any]:
    """The packet object of a broadcast: ``{type: 2, data, nsp}``."""
    return {"type": int(PacketType.EVENT), "data": list(packet.data), "nsp": packet.nsp}


def packet_from_wire(value: Any, default_nsp: str) -> Packet:
    """An EVENT packet from a peer (type 2, or 5 when the sender marked it binary)."""
    if not isinstance(value, dict):
        raise MessageError("packet is not an object")
    if value.get("type") not in (PacketType.EVENT, PacketType.BINARY_EVENT):
        raise MessageError("only EVENT packets are broadcast")
    data = value.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise MessageError("packet data is not [event, ...args]")
    nsp = value.get("nsp", default_nsp)
    return Packet(PacketType.EVENT, _str(nsp, "packet nsp"), data)


def handshake_from_json(value: Any) -> Handshake:
    """A remote socket's handshake (missing fields get neutral values)."""
    if not isinstance(value, dict):
        value = {}

    def mapping(name: str) -> dict[str, Any]:
        item = value.get(name)
        return dict(item) if isinstance(item, dict) else {}

    issued = value.get("issued")
    return Handshake(
        headers=mapping("headers"),
        time=str(value.get("time", "")),
        address=str(value.get("address", "")),
        xdomain=bool(value.get("xdomain", False)),
        secure=bool(value.get("secure", False)),
        issued=int(issued) if isinstance(issued, int | float) and math.isfinite(issued) else 0,
        url=str(value.get("url", "")),
        query=mapping("query"),
        auth=mapping("auth"),
    )


# -- classic messages -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BroadcastMessage:
    """A broadcast on ``key#nsp#`` (or ``key#nsp#room#``): msgpack ``[uid, packet, opts]``."""

    uid: str
    packet: Packet
    opts: BroadcastOptions

    def encode(self) -> bytes:
        return encode_msgpack([self.uid, packet_to_wire(self.packet), options_to_wire(self.opts)])

    @classmethod
    def decode(cls, data: bytes) -> BroadcastMessage:
        """Raises: MessageError."""
        value = decode_any(data)
        if not isinstance(value, list) or len(value) < 3:
            raise MessageError("a broadcast is [uid, packet, opts]")
        uid, packet, opts = value[0], value[1], value[2]
        return cls(_str(uid, "uid"), packet_from_wire(packet, "/"), options_from_wire(opts))


@dataclass(frozen=True, slots=True)
class Request:
    """A request on ``key-request#nsp#`` (fields by type, as lib/index.ts writes them).

    Attributes:
        type: the request type.
        uid: the sender's id (absent in some old requests).
        request_id: set when an answer is expected.
        opts: the selection (join/leave/disconnect/fetch/broadcast).
        rooms: the rooms to join or leave (with ``opts``), or to list (SOCKETS).
        sid: the socket of a single-socket join/leave/disconnect.
        room: the room of a single-socket join/leave.
        close: for a disconnect, close the whole connection.
        data: SERVER_SIDE_EMIT's ``[event, ...args]``.
        packet: BROADCAST's packet.
    """

    type: RequestType
    uid: str | None = None
    request_id: str | None = None
    opts: BroadcastOptions | None = None
    rooms: tuple[Room, ...] = ()
    sid: str | None = None
    room: Room | None = None
    close: bool = False
    data: list[Any] = field(default_factory=list)
    packet: Packet | None = None

    def to_wire(self) -> dict[str, Any]:
        value: dict[str, Any] = {"type": int(self.type)}
        if self.uid is not None:
            value["uid"] = self.uid
        if self.request_id is not None:
            value["requestId"] = self.request_id
        if self.opts is not None:
            wire = options_to_wire(self.opts)
            if self.type != RequestType.BROADCAST:
                del wire["flags"]  # join/leave/disconnect/fetch requests carry rooms and except only
            value["opts"] = wire
        if self.type == RequestType.SOCKETS or (
            self.type in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE) and self.opts is not None
        ):
            value["rooms"] = list(self.rooms)
        if self.sid is not None:
            value["sid"] = self.sid
        if self.room is not None:
            value["room"] = self.room
        if self.type == RequestType.REMOTE_DISCONNECT:
            value["close"] = self.close
        if self.type == RequestType.SERVER_SIDE_EMIT:
            value["data"] = self.data
        if self.packet is not None:
            value["packet"] = packet_to_wire(self.packet)
        return value

    def encode(self) -> bytes:
        """JSON, except BROADCAST (msgpack, so that binary arguments pass), as Node sends them."""
        if self.type == RequestType.BROADCAST:
            return encode_msgpack(self.to_wire())
        return encode_json(self.to_wire())

    @classmethod
    def decode(cls, data: bytes, nsp: str) -> Request:
        """Raises: MessageError."""
        value = decode_any(data)
        if not isinstance(value, dict):
            raise MessageError("a request is an object")
        try:
            kind = RequestType(value["type"])
        except (KeyError, TypeError, ValueError):
            raise MessageError(f"unknown request type {value.get('type')!r}") from None
        uid = value.get("uid")
        request_id = value.get("requestId")
        raw_opts = value.get("opts")
        rooms = value.get("rooms")
        sid = value.get("sid")
        room = value.get("room")
        payload = value.get("data")
        packet = value.get("packet")
        return cls(
            type=kind,
            uid=uid if isinstance(uid, str) else None,
            request_id=None if request_id is None else _str(request_id, "requestId"),
            opts=None if raw_opts is None else options_from_wire(raw_opts),
            rooms=tuple(sorted(_rooms(rooms))) if isinstance(rooms, list) else (),
            sid=sid if isinstance(sid, str) else None,
            room=None if room is None else _room(room),
            close=bool(value.get("close", False)),
            data=payload if isinstance(payload, list) else [],
            packet=None if packet is None else packet_from_wire(packet, nsp),
        )


@dataclass(frozen=True, slots=True)
class Response:
    """A response on ``key-response#nsp#`` (or the requester's own ``key-response#nsp#uid#``).

    Attributes:
        request_id: the request answered.
        type: present for SERVER_SIDE_EMIT (6), BROADCAST_CLIENT_COUNT (8) and BROADCAST_ACK (9).
        body: the rest of the object (``sockets``, ``rooms``, ``data``, ``clientCount``, ``packet``).
    """

    request_id: str
    type: int | None = None
    body: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """msgpack for BROADCAST_ACK (the answer may be binary), JSON otherwise, as Node sends them."""
        value: dict[str, Any] = {}
        if self.type is not None:
            value["type"] = self.type
        value["requestId"] = self.request_id
        value.update(self.body)
        if self.type == RequestType.BROADCAST_ACK:
            return encode_msgpack(value)
        return encode_json(value)

    @classmethod
    def decode(cls, data: bytes) -> Response:
        """Raises: MessageError."""
        value = decode_any(data)
        if not isinstance(value, dict):
            raise MessageError("a response is an object")
        request_id = value.pop("requestId", None)
        if not isinstance(request_id, str):
            raise MessageError("a response has a string requestId")
        kind = value.pop("type", None)
        if kind is not None and (not isinstance(kind, int) or isinstance(kind, bool)):
            raise MessageError("response type is not an int")
        return cls(request_id, kind, value)


# -- sharded (cluster adapter) messages ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClusterMessage:
    """A message of the cluster adapter model: ``{uid, nsp, type, data}``."""

    type: MessageType
    uid: str
    nsp: str
    data: dict[str, Any] | None = None

    def encode(self, *, always_msgpack: bool = False) -> bytes:
        """JSON, or msgpack when a type that may carry binary does (as sharded-adapter.ts decides);
        ``always_msgpack``: msgpack whatever it holds (as the Redis Streams adapter publishes)."""
        value: dict[str, Any] = {"uid": self.uid, "nsp": self.nsp, "type": int(self.type)}
        if self.data is not None:
            value["data"] = self.data
        if always_msgpack or may_carry_binary(self.type, self.data):
            return encode_msgpack(value)
        return encode_json(value)

    @classmethod
    def decode(cls, data: bytes) -> ClusterMessage:
        """Raises: MessageError."""
        value = decode_any(data)
        if not isinstance(value, dict):
            raise MessageError("a cluster message is an object")
        try:
            kind = MessageType(value["type"])
        except (KeyError, TypeError, ValueError):
            raise MessageError(f"unknown message type {value.get('type')!r}") from None
        body = value.get("data")
        if body is not None and not isinstance(body, dict):
            raise MessageError("message data is not an object")
        return cls(kind, _str(value.get("uid"), "uid"), _str(value.get("nsp"), "nsp"), body)
