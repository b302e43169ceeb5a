"""Node's sharded Redis adapter format (``createShardedAdapter``, lib/sharded-adapter.ts): the cluster
adapter's messages (``MessageType``) on ``prefix#nsp#``, ``prefix#nsp#room#`` and ``prefix#nsp#uid#``.

Rule: sans-IO; the model messages map one to one onto Node's ``MessageType``s (the per-socket
commands, ``SocketIds`` and ``AllRooms`` have none here: encoding them raises ``ValueError``).
"""

from __future__ import annotations

import secrets
from typing import Any, assert_never

from ...types import Room
from .messages import (
    ClusterMessage,
    MessageError,
    MessageType,
    options_from_wire,
    options_to_wire,
    packet_from_wire,
    packet_to_wire,
)
from .model import (
    AdapterClose,
    AllRooms,
    AllRoomsResponse,
    Broadcast,
    BroadcastAck,
    BroadcastClientCount,
    BroadcastWithAck,
    Command,
    DisconnectSockets,
    Envelope,
    FetchSockets,
    FetchSocketsResponse,
    Heartbeat,
    Message,
    Reply,
    ServerSideEmit,
    ServerSideEmitResponse,
    SocketActionDone,
    SocketDisconnect,
    SocketIds,
    SocketIdsResponse,
    SocketJoin,
    SocketLeave,
    SocketsJoin,
    SocketsLeave,
)
from .wire import (
    SUBSCRIPTION_MODES,
    ExpectedReply,
    Wire,
    client_count,
    nothing_expected,
    socket_info_to_wire,
    sockets_from_wire,
)

__all__ = ["ShardedWire", "decode_cluster_message", "looks_like_a_socket_id"]


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

    def _message(self, kind: MessageType, data: dict[str, Any] | None = None) -> bytes:
        return ClusterMessage(kind, self.uid, self.nsp, data).encode()

    # -- outbound ----------------------------------------------------------------------------------
    def encode(self, command: Command) -> tuple[str, bytes]:
        channel, kind, data = self.encode_parts(command)
        return channel, self._message(kind, data)

    def encode_parts(self, command: Command) -> tuple[str, MessageType, dict[str, Any] | None]:
        """``command``'s channel, message type and data (the parts of ``encode``).

        Raises:
            ValueError: the format has no such message.
        """
        channel = self.channel
        data: dict[str, Any]
        match command:
            case Broadcast(packet=packet, opts=opts):
                if len(opts.rooms) == 1:
                    (room,) = opts.rooms
                    channel = self.room_channel(room) or channel
                data = {"packet": packet_to_wire(packet), "opts": options_to_wire(opts)}
                return channel, MessageType.BROADCAST, data
            case BroadcastWithAck(request_id=request_id, packet=packet, opts=opts):
                data = {
                    "packet": packet_to_wire(packet),
                    "requestId": request_id,
                    "opts": options_to_wire(opts),
                }
                return channel, MessageType.BROADCAST, data
            case SocketsJoin(opts=opts, rooms=rooms):
                data = {"opts": options_to_wire(opts), "rooms": list(rooms)}
                return channel, MessageType.SOCKETS_JOIN, data
            case SocketsLeave(opts=opts, rooms=rooms):
                data = {"opts": options_to_wire(opts), "rooms": list(rooms)}
                return channel, MessageType.SOCKETS_LEAVE, data
            case DisconnectSockets(opts=opts, close=close):
                data = {"opts": options_to_wire(opts), "close": close}
                return channel, MessageType.DISCONNECT_SOCKETS, data
            case FetchSockets(request_id=request_id, opts=opts):
                data = {"opts": options_to_wire(opts), "requestId": request_id}
                return channel, MessageType.FETCH_SOCKETS, data
            case ServerSideEmit(event=event, args=args, request_id=request_id):
                data = {"packet": [event, *args]}
                if request_id is not None:
                    data["requestId"] = request_id
                return channel, MessageType.SERVER_SIDE_EMIT, data
            case Heartbeat(initial=initial):
                kind = MessageType.INITIAL_HEARTBEAT if initial else MessageType.HEARTBEAT
                return channel, kind, None
            case AdapterClose():
                return channel, MessageType.ADAPTER_CLOSE, None
            case SocketJoin() | SocketLeave() | SocketDisconnect() | SocketIds() | AllRooms():
                raise ValueError(f"the sharded format has no {type(command).__name__}")
            case _:
                assert_never(command)

    def encode_reply(self, reply: Reply, to: str | None) -> tuple[str, bytes]:
        if to is None:
            raise ValueError("the sharded format answers on the requester's channel: its uid is needed")
        data: dict[str, Any] = {"requestId": reply.request_id}
        match reply:
            case BroadcastClientCount(count=count):
                kind, data["clientCount"] = MessageType.BROADCAST_CLIENT_COUNT, count
            case BroadcastAck(value=value):
                kind, data["packet"] = MessageType.BROADCAST_ACK, value
            case ServerSideEmitResponse(value=value):
                kind, data["packet"] = MessageType.SERVER_SIDE_EMIT_RESPONSE, value
            case FetchSocketsResponse(sockets=sockets):
                kind = MessageType.FETCH_SOCKETS_RESPONSE
                data["sockets"] = [socket_info_to_wire(info) for info in sockets]
            case SocketIdsResponse() | AllRoomsResponse() | SocketActionDone():
                raise ValueError(f"the sharded format has no {type(reply).__name__}")
            case _:
                assert_never(reply)
        return f"{self.channel}{to}#", self._message(kind, data)

    # -- inbound -----------------------------------------------------------------------------------
    def decode(
        self, channel: bytes, data: bytes, expected: ExpectedReply = nothing_expected
    ) -> Envelope | None:
        message = ClusterMessage.decode(data)
        if channel != self._response_b and message.nsp != self.nsp:
            return None
        return Envelope(message.uid, decode_cluster_message(message))


def decode_cluster_message(message: ClusterMessage) -> Message:
    """The model message of a decoded cluster message. Raises: MessageError (malformed data)."""
    body = message.data or {}
    request_id = body.get("requestId")
    if request_id is not None and not isinstance(request_id, str):
        raise MessageError("requestId is not a string")
    match message.type:
        case MessageType.INITIAL_HEARTBEAT | MessageType.HEARTBEAT:
            return Heartbeat(initial=message.type == MessageType.INITIAL_HEARTBEAT)
        case MessageType.ADAPTER_CLOSE:
            return AdapterClose()
        case MessageType.BROADCAST:
            packet = packet_from_wire(body.get("packet"), message.nsp)
            opts = options_from_wire(body.get("opts"))
            return (
                Broadcast(packet, opts) if request_id is None else BroadcastWithAck(request_id, packet, opts)
            )
        case MessageType.SOCKETS_JOIN | MessageType.SOCKETS_LEAVE:
            rooms = tuple(sorted(options_from_wire({"rooms": body.get("rooms")}).rooms))
            opts = options_from_wire(body.get("opts"))
            return (
                SocketsJoin(opts, rooms)
                if message.type == MessageType.SOCKETS_JOIN
                else SocketsLeave(opts, rooms)
            )
        case MessageType.DISCONNECT_SOCKETS:
            return DisconnectSockets(options_from_wire(body.get("opts")), bool(body.get("close", False)))
        case MessageType.FETCH_SOCKETS:
            return FetchSockets(_required(request_id, message.type), options_from_wire(body.get("opts")))
        case MessageType.SERVER_SIDE_EMIT:
            packet_args = body.get("packet")
            if not isinstance(packet_args, list) or not packet_args or not isinstance(packet_args[0], str):
                raise MessageError("a server-side emit carries [event, ...args]")
            return ServerSideEmit(packet_args[0], tuple(packet_args[1:]), request_id)
        case MessageType.FETCH_SOCKETS_RESPONSE:
            sockets, skipped = sockets_from_wire(body.get("sockets"))
            return FetchSocketsResponse(_required(request_id, message.type), sockets, skipped)
        case MessageType.SERVER_SIDE_EMIT_RESPONSE:
            return ServerSideEmitResponse(_required(request_id, message.type), body.get("packet"))
        case MessageType.BROADCAST_CLIENT_COUNT:
            count = client_count(body.get("clientCount"))
            return BroadcastClientCount(_required(request_id, message.type), count)
        case MessageType.BROADCAST_ACK:
            return BroadcastAck(_required(request_id, message.type), body.get("packet"))
    raise MessageError(f"unexpected message type {message.type}")  # pragma: no cover


def _required(request_id: str | None, kind: MessageType) -> str:
    if request_id is None:
        raise MessageError(f"{kind.name} has a requestId")
    return request_id
