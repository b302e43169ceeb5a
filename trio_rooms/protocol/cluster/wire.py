"""The channels and messages of one namespace, in Node's classic or sharded redis-adapter format.

Rule: sans-IO. Outbound: an intent in, ``(channel, bytes)`` out. Inbound: ``(channel, bytes)`` in, a
normalized ``Inbound`` out (or ``MessageError``), so that the adapter has one code path for both formats.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any, Final

from ...types import BroadcastOptions, Room
from ..socketio import Packet
from .messages import (
    BroadcastMessage,
    ClusterMessage,
    MessageError,
    MessageType,
    Request,
    RequestType,
    Response,
    options_from_wire,
    options_to_wire,
    packet_from_wire,
    packet_to_wire,
)

__all__ = ["ClassicWire", "Inbound", "Op", "ShardedWire", "Wire", "glob_escape"]

SUBSCRIPTION_MODES: Final = ("static", "dynamic", "dynamic-private")
_UID_ALPHABET: Final = string.ascii_letters + string.digits


def _uid2(length: int) -> str:
    return "".join(secrets.choice(_UID_ALPHABET) for _ in range(length))


def glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, for a PSUBSCRIBE pattern."""
    return "".join("\\" + char if char in "\\*?[]" else char for char in text)


class Op(Enum):
    """What an inbound message asks for (or answers)."""

    BROADCAST = auto()
    BROADCAST_WITH_ACK = auto()
    JOIN = auto()
    LEAVE = auto()
    DISCONNECT = auto()
    SOCKET_JOIN = auto()  # classic: one socket by id, answered with {requestId}
    SOCKET_LEAVE = auto()
    SOCKET_DISCONNECT = auto()
    FETCH = auto()
    SOCKET_IDS = auto()  # classic SOCKETS
    ALL_ROOMS = auto()
    SERVER_SIDE_EMIT = auto()
    RESPONSE = auto()  # an answer whose meaning the pending request gives (sockets, rooms, done)
    RESPONSE_SERVER_SIDE_EMIT = auto()
    RESPONSE_CLIENT_COUNT = auto()
    RESPONSE_ACK = auto()
    HEARTBEAT = auto()


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from another server, normalized.

    Attributes:
        op: what it asks for or answers.
        uid: the sender's server id (None when the format has none).
        request_id: the request it belongs to (an answer is expected, or it is one).
        packet: the EVENT packet of a broadcast.
        opts: the selection.
        rooms: rooms to join/leave, or to list.
        sid: the socket of a single-socket operation.
        close: for a disconnect.
        value: server-side emit ``[event, ...args]``, or a response's payload.
    """

    op: Op
    uid: str | None = None
    request_id: str | None = None
    packet: Packet | None = None
    opts: BroadcastOptions = field(default_factory=BroadcastOptions)
    rooms: tuple[Room, ...] = ()
    sid: str | None = None
    close: bool = False
    value: Any = None


class Wire:
    """The channels of one namespace and the encoding of its messages (see the two subclasses)."""

    uid: str
    channel: str
    count_channel: str
    #: Whether rooms have channels of their own to subscribe to while they exist here.
    follows_rooms: bool = False
    #: Whether the format has an ALL_ROOMS request.
    has_all_rooms: bool = False

    def subscriptions(self) -> list[str]:
        """Channels subscribed for the adapter's whole life."""
        raise NotImplementedError

    def patterns(self) -> list[str]:
        """Patterns subscribed for the adapter's whole life (classic only)."""
        return []

    def room_channel(self, room: Room) -> str | None:
        """The channel to subscribe to while ``room`` exists here (sharded dynamic modes), or None."""
        return None

    def new_request_id(self) -> str:
        raise NotImplementedError

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> tuple[str, bytes]:
        raise NotImplementedError

    def broadcast_with_ack(
        self, request_id: str, packet: Packet, opts: BroadcastOptions
    ) -> tuple[str, bytes]:
        raise NotImplementedError

    def sockets_op(
        self, op: Op, opts: BroadcastOptions, rooms: tuple[Room, ...], close: bool
    ) -> tuple[str, bytes]:
        """JOIN / LEAVE / DISCONNECT for the selected sockets (no answer)."""
        raise NotImplementedError

    def fetch(self, request_id: str, opts: BroadcastOptions) -> tuple[str, bytes]:
        raise NotImplementedError

    def all_rooms(self, request_id: str) -> tuple[str, bytes] | None:
        """The ALL_ROOMS request, or None when the format has none."""
        return None

    def server_side_emit(self, request_id: str | None, data: list[Any]) -> tuple[str, bytes]:
        raise NotImplementedError

    def respond(self, to: Inbound, op: Op, body: dict[str, Any]) -> tuple[str, bytes]:
        """The answer ``op`` to the request ``to``; ``body`` in the classic response's field names."""
        raise NotImplementedError

    def decode(self, channel: bytes, data: bytes) -> Inbound | None:
        """The message, or None when it is not for this namespace (another channel or namespace).

        Raises:
            MessageError: malformed.
        """
        raise NotImplementedError


class ClassicWire(Wire):
    """``@socket.io/redis-adapter`` 8.x ``createAdapter`` (PUBLISH/PSUBSCRIBE/SUBSCRIBE, lib/index.ts).

    Args:
        key: Node's ``key`` option.
        nsp: the namespace name.
        specific_response_channel: Node's ``publishOnSpecificResponseChannel``.
    """

    def __init__(self, key: str, nsp: str, *, specific_response_channel: bool = False) -> None:
        self.nsp = nsp
        self.uid = _uid2(6)
        self.channel = f"{key}#{nsp}#"
        self.request_channel = f"{key}-request#{nsp}#"
        self.response_channel = f"{key}-response#{nsp}#"
        self.specific_response_channel = f"{self.response_channel}{self.uid}#"
        self.count_channel = self.request_channel
        self.has_all_rooms = True
        self._specific = specific_response_channel
        self._channel_b = self.channel.encode()
        self._request_b = self.request_channel.encode()
        self._response_b = self.response_channel.encode()

    def subscriptions(self) -> list[str]:
        return [self.request_channel, self.response_channel, self.specific_response_channel]

    def patterns(self) -> list[str]:
        return [glob_escape(self.channel) + "*"]

    def new_request_id(self) -> str:
        return _uid2(6)

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> tuple[str, bytes]:
        channel = self.channel
        if len(opts.rooms) == 1:
            (room,) = opts.rooms
            channel = f"{channel}{room}#"
        return channel, BroadcastMessage(self.uid, packet, opts).encode()

    def broadcast_with_ack(
        self, request_id: str, packet: Packet, opts: BroadcastOptions
    ) -> tuple[str, bytes]:
        request = Request(RequestType.BROADCAST, self.uid, request_id, opts=opts, packet=packet)
        return self.request_channel, request.encode()

    def sockets_op(
        self, op: Op, opts: BroadcastOptions, rooms: tuple[Room, ...], close: bool
    ) -> tuple[str, bytes]:
        kind = {Op.JOIN: RequestType.REMOTE_JOIN, Op.LEAVE: RequestType.REMOTE_LEAVE}.get(
            op, RequestType.REMOTE_DISCONNECT
        )
        return self.request_channel, Request(kind, self.uid, opts=opts, rooms=rooms, close=close).encode()

    def fetch(self, request_id: str, opts: BroadcastOptions) -> tuple[str, bytes]:
        return self.request_channel, Request(
            RequestType.REMOTE_FETCH, self.uid, request_id, opts=opts
        ).encode()

    def all_rooms(self, request_id: str) -> tuple[str, bytes] | None:
        return self.request_channel, Request(RequestType.ALL_ROOMS, self.uid, request_id).encode()

    def server_side_emit(self, request_id: str | None, data: list[Any]) -> tuple[str, bytes]:
        request = Request(RequestType.SERVER_SIDE_EMIT, self.uid, request_id, data=data)
        return self.request_channel, request.encode()

    def respond(self, to: Inbound, op: Op, body: dict[str, Any]) -> tuple[str, bytes]:
        assert to.request_id is not None
        kind = {
            Op.RESPONSE_SERVER_SIDE_EMIT: RequestType.SERVER_SIDE_EMIT,
            Op.RESPONSE_CLIENT_COUNT: RequestType.BROADCAST_CLIENT_COUNT,
            Op.RESPONSE_ACK: RequestType.BROADCAST_ACK,
        }.get(op)
        channel = self.response_channel
        # Node answers a server-side emit on the common channel whatever the option says.
        if self._specific and to.uid is not None and op != Op.RESPONSE_SERVER_SIDE_EMIT:
            channel = f"{self.response_channel}{to.uid}#"
        if op == Op.RESPONSE_ACK:
            body = {"packet": body.get("packet")}
        elif op == Op.RESPONSE_SERVER_SIDE_EMIT:
            body = {"data": body.get("data")}
        return channel, Response(to.request_id, None if kind is None else int(kind), body).encode()

    def decode(self, channel: bytes, data: bytes) -> Inbound | None:
        if channel.startswith(self._channel_b):
            message = BroadcastMessage.decode(data)
            if message.packet.nsp != self.nsp:
                return None
            return Inbound(Op.BROADCAST, message.uid, packet=message.packet, opts=message.opts)
        if channel.startswith(self._response_b):
            return self._decode_response(Response.decode(data))
        if channel != self._request_b:
            return None
        request = Request.decode(data, self.nsp)
        return self._decode_request(request)

    def _decode_request(self, r: Request) -> Inbound:
        opts = r.opts or BroadcastOptions()
        match r.type:
            case RequestType.SOCKETS:
                return Inbound(Op.SOCKET_IDS, r.uid, r.request_id, rooms=r.rooms)
            case RequestType.ALL_ROOMS:
                return Inbound(Op.ALL_ROOMS, r.uid, r.request_id)
            case RequestType.REMOTE_JOIN | RequestType.REMOTE_LEAVE:
                join = r.type == RequestType.REMOTE_JOIN
                if r.opts is not None:
                    return Inbound(Op.JOIN if join else Op.LEAVE, r.uid, opts=opts, rooms=r.rooms)
                if r.room is None:
                    raise MessageError("a single-socket join or leave names its room")
                op = Op.SOCKET_JOIN if join else Op.SOCKET_LEAVE
                return Inbound(op, r.uid, r.request_id, sid=r.sid, rooms=(r.room,))
            case RequestType.REMOTE_DISCONNECT:
                if r.opts is not None:
                    return Inbound(Op.DISCONNECT, r.uid, opts=opts, close=r.close)
                return Inbound(Op.SOCKET_DISCONNECT, r.uid, r.request_id, sid=r.sid, close=r.close)
            case RequestType.REMOTE_FETCH:
                return Inbound(Op.FETCH, r.uid, r.request_id, opts=opts)
            case RequestType.SERVER_SIDE_EMIT:
                if not r.data or not isinstance(r.data[0], str):
                    raise MessageError("a server-side emit carries [event, ...args]")
                return Inbound(Op.SERVER_SIDE_EMIT, r.uid, r.request_id, value=r.data)
            case RequestType.BROADCAST:
                if r.packet is None or r.request_id is None:
                    raise MessageError("a broadcast with acks carries a packet and a requestId")
                return Inbound(Op.BROADCAST_WITH_ACK, r.uid, r.request_id, packet=r.packet, opts=opts)
            case _:
                raise MessageError(f"request type {r.type} is a response type")

    @staticmethod
    def _decode_response(response: Response) -> Inbound:
        body = response.body
        match response.type:
            case RequestType.SERVER_SIDE_EMIT:
                return Inbound(
                    Op.RESPONSE_SERVER_SIDE_EMIT, request_id=response.request_id, value=body.get("data")
                )
            case RequestType.BROADCAST_CLIENT_COUNT:
                count = body.get("clientCount")
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise MessageError("clientCount is not a count")
                return Inbound(Op.RESPONSE_CLIENT_COUNT, request_id=response.request_id, value=count)
            case RequestType.BROADCAST_ACK:
                return Inbound(Op.RESPONSE_ACK, request_id=response.request_id, value=body.get("packet"))
            case _:
                return Inbound(Op.RESPONSE, request_id=response.request_id, value=body)


def looks_like_a_socket_id(room: Room) -> bool:
    """Node's test for a private room (its socket ids have 20 characters)."""
    return len(room) == 20


class ShardedWire(Wire):
    """``createShardedAdapter`` (SPUBLISH/SSUBSCRIBE, the cluster adapter's messages; sharded-adapter.ts).

    Args:
        prefix: Node's ``channelPrefix``.
        nsp: the namespace name.
        subscription_mode: "static", "dynamic" or "dynamic-private".
    """

    def __init__(self, prefix: str, nsp: str, *, subscription_mode: str = "dynamic") -> None:
        if subscription_mode not in SUBSCRIPTION_MODES:
            raise ValueError(f"subscription_mode must be one of {SUBSCRIPTION_MODES}")
        self.nsp = nsp
        self.mode = subscription_mode
        self.uid = secrets.token_hex(8)
        self.channel = f"{prefix}#{nsp}#"
        self.response_channel = f"{self.channel}{self.uid}#"
        self.count_channel = self.channel
        self.follows_rooms = subscription_mode != "static"
        self._response_b = self.response_channel.encode()

    def subscriptions(self) -> list[str]:
        return [self.channel, self.response_channel]

    def _uses_room_channel(self, room: Room) -> bool:
        # The publisher's rule (computeChannel); subscribing by the same rule means that every message
        # sent to a room channel, by Node or by us, has a subscriber wherever the room exists.
        return self.mode == "dynamic-private" or (self.mode == "dynamic" and not looks_like_a_socket_id(room))

    def room_channel(self, room: Room) -> str | None:
        return f"{self.channel}{room}#" if self._uses_room_channel(room) else None

    def new_request_id(self) -> str:
        return secrets.token_hex(8)

    def _message(self, kind: MessageType, data: dict[str, Any] | None) -> bytes:
        return ClusterMessage(kind, self.uid, self.nsp, data).encode()

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> tuple[str, bytes]:
        channel = self.channel
        if len(opts.rooms) == 1:
            (room,) = opts.rooms
            channel = self.room_channel(room) or channel
        data = {"packet": packet_to_wire(packet), "opts": options_to_wire(opts)}
        return channel, self._message(MessageType.BROADCAST, data)

    def broadcast_with_ack(
        self, request_id: str, packet: Packet, opts: BroadcastOptions
    ) -> tuple[str, bytes]:
        data = {"packet": packet_to_wire(packet), "requestId": request_id, "opts": options_to_wire(opts)}
        return self.channel, self._message(MessageType.BROADCAST, data)

    def sockets_op(
        self, op: Op, opts: BroadcastOptions, rooms: tuple[Room, ...], close: bool
    ) -> tuple[str, bytes]:
        data: dict[str, Any] = {"opts": options_to_wire(opts)}
        if op == Op.DISCONNECT:
            data["close"] = close
            return self.channel, self._message(MessageType.DISCONNECT_SOCKETS, data)
        data["rooms"] = list(rooms)
        kind = MessageType.SOCKETS_JOIN if op == Op.JOIN else MessageType.SOCKETS_LEAVE
        return self.channel, self._message(kind, data)

    def fetch(self, request_id: str, opts: BroadcastOptions) -> tuple[str, bytes]:
        data = {"opts": options_to_wire(opts), "requestId": request_id}
        return self.channel, self._message(MessageType.FETCH_SOCKETS, data)

    def server_side_emit(self, request_id: str | None, data: list[Any]) -> tuple[str, bytes]:
        body: dict[str, Any] = {"packet": data}
        if request_id is not None:
            body["requestId"] = request_id
        return self.channel, self._message(MessageType.SERVER_SIDE_EMIT, body)

    def respond(self, to: Inbound, op: Op, body: dict[str, Any]) -> tuple[str, bytes]:
        assert to.request_id is not None and to.uid is not None
        data: dict[str, Any] = {"requestId": to.request_id}
        if op == Op.RESPONSE_CLIENT_COUNT:
            kind, data["clientCount"] = MessageType.BROADCAST_CLIENT_COUNT, body["clientCount"]
        elif op == Op.RESPONSE_ACK:
            kind, data["packet"] = MessageType.BROADCAST_ACK, body.get("packet")
        elif op == Op.RESPONSE_SERVER_SIDE_EMIT:
            kind, data["packet"] = MessageType.SERVER_SIDE_EMIT_RESPONSE, body.get("data")
        elif "sockets" in body and to.op == Op.FETCH:
            kind, data["sockets"] = MessageType.FETCH_SOCKETS_RESPONSE, body["sockets"]
        else:
            raise ValueError(f"the sharded format has no answer for {to.op}")
        return f"{self.channel}{to.uid}#", self._message(kind, data)

    def decode(self, channel: bytes, data: bytes) -> Inbound | None:
        message = ClusterMessage.decode(data)
        body = message.data or {}
        if channel != self._response_b and message.nsp != self.nsp:
            return None
        request_id = body.get("requestId")
        if request_id is not None and not isinstance(request_id, str):
            raise MessageError("requestId is not a string")
        uid = message.uid
        match message.type:
            case MessageType.INITIAL_HEARTBEAT | MessageType.HEARTBEAT | MessageType.ADAPTER_CLOSE:
                return Inbound(Op.HEARTBEAT, uid)
            case MessageType.BROADCAST:
                packet = packet_from_wire(body.get("packet"), message.nsp)
                opts = options_from_wire(body.get("opts"))
                op = Op.BROADCAST if request_id is None else Op.BROADCAST_WITH_ACK
                return Inbound(op, uid, request_id, packet=packet, opts=opts)
            case MessageType.SOCKETS_JOIN | MessageType.SOCKETS_LEAVE:
                rooms = options_from_wire({"rooms": body.get("rooms")}).rooms
                op = Op.JOIN if message.type == MessageType.SOCKETS_JOIN else Op.LEAVE
                return Inbound(op, uid, opts=options_from_wire(body.get("opts")), rooms=tuple(sorted(rooms)))
            case MessageType.DISCONNECT_SOCKETS:
                opts = options_from_wire(body.get("opts"))
                return Inbound(Op.DISCONNECT, uid, opts=opts, close=bool(body.get("close", False)))
            case MessageType.FETCH_SOCKETS:
                if request_id is None:
                    raise MessageError("FETCH_SOCKETS has a requestId")
                return Inbound(Op.FETCH, uid, request_id, opts=options_from_wire(body.get("opts")))
            case MessageType.SERVER_SIDE_EMIT:
                packet_args = body.get("packet")
                if (
                    not isinstance(packet_args, list)
                    or not packet_args
                    or not isinstance(packet_args[0], str)
                ):
                    raise MessageError("a server-side emit carries [event, ...args]")
                return Inbound(Op.SERVER_SIDE_EMIT, uid, request_id, value=packet_args)
            case MessageType.FETCH_SOCKETS_RESPONSE:
                return Inbound(Op.RESPONSE, uid, request_id, value={"sockets": body.get("sockets")})
            case MessageType.SERVER_SIDE_EMIT_RESPONSE:
                return Inbound(Op.RESPONSE_SERVER_SIDE_EMIT, uid, request_id, value=body.get("packet"))
            case MessageType.BROADCAST_CLIENT_COUNT:
                count = body.get("clientCount")
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise MessageError("clientCount is not a count")
                return Inbound(Op.RESPONSE_CLIENT_COUNT, uid, request_id, value=count)
            case MessageType.BROADCAST_ACK:
                return Inbound(Op.RESPONSE_ACK, uid, request_id, value=body.get("packet"))
        raise MessageError(f"unexpected message type {message.type}")  # pragma: no cover
