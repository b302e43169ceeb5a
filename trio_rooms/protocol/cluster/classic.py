"""Node's classic Redis adapter format (``@socket.io/redis-adapter`` 8.x ``createAdapter``, lib/index.ts):
broadcasts on ``key#nsp#[room#]``, requests on ``key-request#nsp#``, replies on ``key-response#nsp#[uid#]``.

Rule: sans-IO; the model messages map one to one onto Node's ``RequestType``s, except that a reply
without a ``type`` is read as what our pending request expects (Node reads it the same way).
"""

from __future__ import annotations

from typing import Any, assert_never

from ...types import BroadcastOptions, SocketId
from .messages import BroadcastMessage, MessageError, Request, RequestType, Response
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
    ExpectedReply,
    Wire,
    client_count,
    glob_escape,
    nothing_expected,
    random_id,
    socket_info_to_wire,
    sockets_from_wire,
)

__all__ = ["ClassicWire"]


class ClassicWire(Wire):
    """``@socket.io/redis-adapter`` 8.x ``createAdapter`` (PUBLISH/PSUBSCRIBE/SUBSCRIBE, lib/index.ts).

    Args:
        key: Node's ``key`` option.
        nsp: the namespace name.
        specific_response_channel: Node's ``publishOnSpecificResponseChannel``.
    """

    has_all_rooms = True

    def __init__(self, key: str, nsp: str, *, specific_response_channel: bool = False) -> None:
        self.nsp = nsp
        self.uid = random_id(6)
        self.channel = f"{key}#{nsp}#"
        self.request_channel = f"{key}-request#{nsp}#"
        self.response_channel = f"{key}-response#{nsp}#"
        self.specific_response_channel = f"{self.response_channel}{self.uid}#"
        self.count_channel = self.request_channel
        self._specific = specific_response_channel
        self._channel_b = self.channel.encode()
        self._request_b = self.request_channel.encode()
        self._response_b = self.response_channel.encode()
        # How our own broadcasts begin (msgpack: a 3-array, then our uid as a fixstr): each comes
        # back from Redis to us, and is recognised without decoding it.
        uid_b = self.uid.encode()
        assert len(uid_b) < 32
        self._own_broadcast = bytes((0x93, 0xA0 | len(uid_b))) + uid_b

    def subscriptions(self) -> list[str]:
        return [self.request_channel, self.response_channel, self.specific_response_channel]

    def patterns(self) -> list[str]:
        return [glob_escape(self.channel) + "*"]

    def new_request_id(self) -> str:
        return random_id(6)

    # -- outbound ----------------------------------------------------------------------------------
    def encode(self, command: Command) -> tuple[str, bytes]:
        uid = self.uid
        request: Request
        match command:
            case Broadcast(packet=packet, opts=opts):
                channel = self.channel
                if len(opts.rooms) == 1:
                    (room,) = opts.rooms
                    channel = f"{channel}{room}#"
                return channel, BroadcastMessage(uid, packet, opts).encode()
            case BroadcastWithAck(request_id=request_id, packet=packet, opts=opts):
                request = Request(RequestType.BROADCAST, uid, request_id, opts=opts, packet=packet)
            case SocketsJoin(opts=opts, rooms=rooms):
                request = Request(RequestType.REMOTE_JOIN, uid, opts=opts, rooms=rooms)
            case SocketsLeave(opts=opts, rooms=rooms):
                request = Request(RequestType.REMOTE_LEAVE, uid, opts=opts, rooms=rooms)
            case DisconnectSockets(opts=opts, close=close):
                request = Request(RequestType.REMOTE_DISCONNECT, uid, opts=opts, close=close)
            case SocketJoin(sid=sid, room=room, request_id=request_id):
                request = Request(RequestType.REMOTE_JOIN, uid, request_id, sid=sid, room=room)
            case SocketLeave(sid=sid, room=room, request_id=request_id):
                request = Request(RequestType.REMOTE_LEAVE, uid, request_id, sid=sid, room=room)
            case SocketDisconnect(sid=sid, close=close, request_id=request_id):
                request = Request(RequestType.REMOTE_DISCONNECT, uid, request_id, sid=sid, close=close)
            case FetchSockets(request_id=request_id, opts=opts):
                request = Request(RequestType.REMOTE_FETCH, uid, request_id, opts=opts)
            case SocketIds(request_id=request_id, rooms=rooms):
                request = Request(RequestType.SOCKETS, uid, request_id, rooms=tuple(sorted(rooms)))
            case AllRooms(request_id=request_id):
                request = Request(RequestType.ALL_ROOMS, uid, request_id)
            case ServerSideEmit(event=event, args=args, request_id=request_id):
                request = Request(RequestType.SERVER_SIDE_EMIT, uid, request_id, data=[event, *args])
            case Heartbeat() | AdapterClose():
                raise ValueError(f"the classic format has no {type(command).__name__}")
            case _:
                assert_never(command)
        return self.request_channel, request.encode()

    def encode_reply(self, reply: Reply, to: str | None) -> tuple[str, bytes]:
        kind: RequestType | None = None
        body: dict[str, Any]
        match reply:
            case FetchSocketsResponse(sockets=sockets):
                body = {"sockets": [socket_info_to_wire(info) for info in sockets]}
            case SocketIdsResponse(sockets=ids):
                body = {"sockets": list(ids)}
            case AllRoomsResponse(rooms=rooms):
                body = {"rooms": list(rooms)}
            case SocketActionDone():
                body = {}
            case ServerSideEmitResponse(value=value):
                kind, body = RequestType.SERVER_SIDE_EMIT, {"data": value}
            case BroadcastClientCount(count=count):
                kind, body = RequestType.BROADCAST_CLIENT_COUNT, {"clientCount": count}
            case BroadcastAck(value=value):
                kind, body = RequestType.BROADCAST_ACK, {"packet": value}
            case _:
                assert_never(reply)
        channel = self.response_channel
        # Node answers a server-side emit on the common channel whatever the option says.
        if self._specific and to is not None and not isinstance(reply, ServerSideEmitResponse):
            channel = f"{self.response_channel}{to}#"
        return channel, Response(reply.request_id, None if kind is None else int(kind), body).encode()

    # -- inbound -----------------------------------------------------------------------------------
    def decode(
        self, channel: bytes, data: bytes, expected: ExpectedReply = nothing_expected
    ) -> Envelope | None:
        if channel.startswith(self._channel_b):
            if data.startswith(self._own_broadcast):
                return None  # ours
            message = BroadcastMessage.decode(data)
            if message.packet.nsp != self.nsp:
                return None
            return Envelope(message.uid, Broadcast(message.packet, message.opts))
        if channel.startswith(self._response_b):
            reply = _decode_reply(Response.decode(data), expected)
            return None if reply is None else Envelope(None, reply)
        if channel != self._request_b:
            return None
        request = Request.decode(data, self.nsp)
        return Envelope(request.uid, _decode_request(request))


def _decode_request(r: Request) -> Message:
    opts = r.opts or BroadcastOptions()
    match r.type:
        case RequestType.SOCKETS:
            return SocketIds(_request_id(r), frozenset(r.rooms))
        case RequestType.ALL_ROOMS:
            return AllRooms(_request_id(r))
        case RequestType.REMOTE_JOIN | RequestType.REMOTE_LEAVE:
            join = r.type == RequestType.REMOTE_JOIN
            if r.opts is not None:
                return SocketsJoin(opts, r.rooms) if join else SocketsLeave(opts, r.rooms)
            if r.room is None:
                raise MessageError("a single-socket join or leave names its room")
            sid = _sid(r)
            return SocketJoin(sid, r.room, r.request_id) if join else SocketLeave(sid, r.room, r.request_id)
        case RequestType.REMOTE_DISCONNECT:
            if r.opts is not None:
                return DisconnectSockets(opts, r.close)
            return SocketDisconnect(_sid(r), r.close, r.request_id)
        case RequestType.REMOTE_FETCH:
            return FetchSockets(_request_id(r), opts)
        case RequestType.SERVER_SIDE_EMIT:
            if not r.data or not isinstance(r.data[0], str):
                raise MessageError("a server-side emit carries [event, ...args]")
            return ServerSideEmit(r.data[0], tuple(r.data[1:]), r.request_id)
        case RequestType.BROADCAST:
            if r.packet is None or r.request_id is None:
                raise MessageError("a broadcast with acks carries a packet and a requestId")
            return BroadcastWithAck(r.request_id, r.packet, opts)
        case _:
            raise MessageError(f"request type {r.type} is a response type")


def _request_id(r: Request) -> str:
    if r.request_id is None:
        raise MessageError(f"request type {r.type} has a requestId")
    return r.request_id


def _sid(r: Request) -> SocketId:
    if r.sid is None:
        raise MessageError("a single-socket request names its socket")
    return SocketId(r.sid)


def _decode_reply(response: Response, expected: ExpectedReply) -> Reply | None:
    request_id, body = response.request_id, response.body
    match response.type:
        case RequestType.SERVER_SIDE_EMIT:
            return ServerSideEmitResponse(request_id, body.get("data"))
        case RequestType.BROADCAST_CLIENT_COUNT:
            return BroadcastClientCount(request_id, client_count(body.get("clientCount")))
        case RequestType.BROADCAST_ACK:
            return BroadcastAck(request_id, body.get("packet"))
    # No type: what it answers is what the request expects (as Node's onresponse reads it).
    kind = expected(request_id)
    if kind is None:
        return None  # an answer to another server's request
    if kind is FetchSocketsResponse:
        sockets, skipped = sockets_from_wire(body.get("sockets"))
        return FetchSocketsResponse(request_id, sockets, skipped)
    if kind is SocketIdsResponse:
        ids = body.get("sockets")
        if not isinstance(ids, list) or not all(isinstance(sid, str) for sid in ids):
            raise MessageError("socket ids are a list of strings")
        return SocketIdsResponse(request_id, tuple(SocketId(sid) for sid in ids))
    if kind is AllRoomsResponse:
        rooms = body.get("rooms")
        if not isinstance(rooms, list):
            raise MessageError("rooms are a list")
        return AllRoomsResponse(request_id, tuple(str(room) for room in rooms))
    if kind is SocketActionDone:
        return SocketActionDone(request_id)
    raise MessageError(f"an answer without a type to a request that expects {kind.__name__}")
