"""Sans-IO Engine.IO v4 / Socket.IO v5 protocol: str/bytes in, frozen packets out, and back.

Rule: nothing here imports trio, trio_websocket, socket or time (a test enforces it); no clock, no I/O.
"""

from __future__ import annotations

from .engineio import EnginePacket as EnginePacket
from .engineio import EnginePacketType as EnginePacketType
from .engineio import OpenInfo as OpenInfo
from .engineio import decode_payload as decode_payload
from .engineio import decode_ws as decode_ws
from .engineio import encode_payload as encode_payload
from .engineio import encode_ws as encode_ws
from .engineio import open_packet as open_packet
from .engineio import parse_open as parse_open
from .jsonjs import dumps as dumps
from .jsonjs import loads as loads
from .socketio import RESERVED_EVENTS as RESERVED_EVENTS
from .socketio import Decoder as Decoder
from .socketio import Packet as Packet
from .socketio import PacketType as PacketType
from .socketio import encode as encode
from .websocket import binary_frame as binary_frame
from .websocket import close_frame as close_frame
from .websocket import pong_frame as pong_frame
from .websocket import text_frame as text_frame

__all__ = [
    "RESERVED_EVENTS",
    "Decoder",
    "EnginePacket",
    "EnginePacketType",
    "OpenInfo",
    "Packet",
    "PacketType",
    "binary_frame",
    "close_frame",
    "decode_payload",
    "decode_ws",
    "dumps",
    "encode",
    "encode_payload",
    "encode_ws",
    "loads",
    "open_packet",
    "parse_open",
    "pong_frame",
    "text_frame",
]
