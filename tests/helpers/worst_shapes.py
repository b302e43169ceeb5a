"""The worst inputs of each decoder of a peer's bytes, built at any size: shared by the worst-case tests
(tests/protocol/test_proto_worst_case.py, tests/test_worst_case_io.py), the hypothesis tests and
benchmarks/adversarial.py.

A shape builds, for a size in bytes, the messages one peer sends: a Socket.IO packet's text (without the
Engine.IO "4") and its attachments, a long-polling body, an OPEN packet's data, or a cluster message.
Each says whether the decoders must accept it or refuse it (``RemoteProtocolError``; ``MessageError`` for
a cluster message).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from trio_rooms.protocol.engineio import EnginePacket, decode_payload, decode_ws
from trio_rooms.protocol.socketio import Decoder, Packet
from trio_rooms.protocol.wsread import FrameReader, ReadEvent

__all__ = [
    "HTTP1_HEAD_SHAPES",
    "HTTP_BODY_SHAPES",
    "HTTP_HEAD_SHAPES",
    "SHAPES",
    "WS_FRAME_SHAPES",
    "WS_SHAPES",
    "FrameShape",
    "Shape",
    "chunked",
    "http_head",
    "polling_body",
    "receive_over_polling",
    "receive_frames",
    "receive_over_websocket",
    "shape",
    "websocket_messages",
    "ws_frame",
]

Kind = Literal["socketio", "payload", "open", "cluster"]
#: The Socket.IO packet's placeholder for attachment 0.
PLACEHOLDER: Final = '{"_placeholder":true,"num":0}'
#: More opening brackets than the default nesting limit (32), so that the depth check must run.
BRACKETS: Final = 40


@dataclass(frozen=True, slots=True)
class Shape:
    """One worst input.

    Attributes:
        name: Its name in tests and benchmark tables.
        kind: Which decoder reads it: "socketio" (a Socket.IO packet through Engine.IO, over both
            transports), "payload" (a long-polling body), "open" (a client reading an OPEN packet) or
            "cluster" (a message from another server, through Redis).
        build: ``size`` -> the messages: for "socketio" the packet's text then its attachments; else one
            str (bytes for "cluster"). The Engine.IO wire form is at most ``size`` bytes.
        refused: True when the decoders must refuse it, False when they must accept it, None when the size
            decides (Python's 4300-digit int limit, msgpack's nesting limit).
    """

    name: str
    kind: Kind
    build: Callable[[int], list[str | bytes]]
    refused: bool | None


def _times(unit: str, room: int) -> str:
    return unit * max(1, room // len(unit))


def _text(prefix: str, unit: str, suffix: str = "") -> Callable[[int], list[str | bytes]]:
    """A Socket.IO text: ``prefix``, ``unit`` repeated to fill, ``suffix`` (the "4" counted)."""

    def build(size: int) -> list[str | bytes]:
        return [prefix + _times(unit, size - 1 - len(prefix) - len(suffix)) + suffix]

    return build


def _balanced(size: int) -> list[str | bytes]:
    half = (size - 2) // 2
    return ["2" + "[" * half + "]" * half]


def _with_attachment(prefix: str, unit: str, suffix: str) -> Callable[[int], list[str | bytes]]:
    def build(size: int) -> list[str | bytes]:
        # the attachment costs 2 bytes on the wire over polling ("\x1e" "b" + base64 of 1 byte: 6)
        return [prefix + _times(unit, size - 8 - len(prefix) - len(suffix)) + suffix, b"\x00"]

    return build


def _packets(size: int) -> list[str | bytes]:
    count = min(999, size // 4)
    return ["\x1e".join(["6"] * count) + "\x1e4" + "x" * max(1, size - 2 * count - 2)]


def _plain(prefix: str, unit: str, suffix: str = "") -> Callable[[int], list[str | bytes]]:
    def build(size: int) -> list[str | bytes]:
        return [prefix + _times(unit, size - len(prefix) - len(suffix)) + suffix]

    return build


def _raw(
    prefix: bytes, unit: bytes, suffix: bytes = b"", counted: int = 0
) -> Callable[[int], list[str | bytes]]:
    """Bytes; with ``counted`` = 4 or 5, ``prefix`` is a msgpack header whose 32-bit length is the count."""

    def build(size: int) -> list[str | bytes]:
        count = max(1, (size - len(prefix) - 4 - len(suffix)) // len(unit))
        header = prefix + count.to_bytes(4, "big") if counted else prefix
        return [header + unit * count + suffix]

    return build


def _escaped_quotes_unclosed(size: int) -> list[str | bytes]:
    return ["2" + "[" * BRACKETS + '"' + _times('\\"', size - 3 - BRACKETS)]


SHAPES: Final[tuple[Shape, ...]] = (
    # --- Socket.IO packets (the JSON reader, the header, binary reassembly) ---
    # issue 11: more than 32 brackets, then a string of escaped quotes left open (was quadratic)
    Shape("escaped-quotes-unclosed", "socketio", _escaped_quotes_unclosed, True),
    Shape(
        "escaped-quotes-closed",
        "socketio",
        _text("2" + "[" * BRACKETS + '"', '\\"', '"' + "]" * BRACKETS),
        True,
    ),
    Shape("escaped-quotes-shallow", "socketio", _text('2["e",' + "[]," * BRACKETS + '"', '\\"', '"]'), False),
    Shape("backslash-run", "socketio", _text('2["e",' + "[]," * BRACKETS + '"', "\\\\", '"]'), False),
    Shape("backslash-run-unclosed", "socketio", _text("2" + "[" * BRACKETS + '"', "\\"), True),
    Shape("open-brackets", "socketio", _text("2", "["), True),
    Shape("balanced-too-deep", "socketio", _balanced, True),
    Shape("dense-shallow-brackets", "socketio", _text('2["e",', "[[]],", "[]]"), False),
    Shape("many-empty-strings", "socketio", _text('2["e",' + "[]," * BRACKETS, '"",', '""]'), False),
    Shape("unicode-escapes", "socketio", _text('2["e","', "\\ud83d\\ude00", '"]'), False),
    Shape("lone-surrogate-escapes", "socketio", _text('2["e","', "\\udc00", '"]'), False),
    # refused beyond Python's int limit (4300 digits), as JavaScript could not hold it: None (by size)
    Shape("huge-integer", "socketio", _text('2["e",', "7", "]"), None),
    Shape("huge-fraction", "socketio", _text('2["e",0.', "5", "]"), False),
    Shape("huge-exponent", "socketio", _text('2["e",1e', "9", "]"), False),
    Shape("many-arguments", "socketio", _text('2["e"', ",0", "]"), False),
    Shape("many-keys", "socketio", _text('2["e",{', '"k":0,', '"k":0}]'), False),
    Shape("whitespace", "socketio", _text('2["e",', " ", "0]"), False),
    Shape("huge-ack-id", "socketio", _text("2", "1", '["e"]'), True),
    Shape("huge-attachment-count", "socketio", _text("5", "1", '-["e"]'), True),
    Shape("long-namespace", "socketio", _text("2/", "n", ',["e"]'), False),
    Shape("many-placeholders", "socketio", _with_attachment('51-["e"', "," + PLACEHOLDER, "]"), False),
    Shape(
        "placeholder-huge-num",
        "socketio",
        _with_attachment('51-["e",{"_placeholder":true,"num":', "9", "}]"),
        True,
    ),
    # --- long-polling bodies ---
    Shape("payload-max-packets", "payload", _packets, False),
    Shape("payload-separators", "payload", _plain("", "\x1e"), True),
    Shape("payload-base64", "payload", _plain("b", "QUJD"), False),
    Shape("payload-bad-base64", "payload", _plain("b", "QUJD", "Q"), True),
    # --- the client reading an OPEN packet ---
    Shape("open-escaped-quotes", "open", _plain("[" * BRACKETS + '"', '\\"'), True),
    Shape(
        "open-long-sid",
        "open",
        _plain('{"sid":"', "s", '","upgrades":[],"pingInterval":1,"pingTimeout":1}'),
        False,
    ),
    # --- cluster messages from Redis (JSON when the first byte is "{", msgpack otherwise) ---
    Shape("cluster-json-escaped-quotes", "cluster", _raw(b'{"a":' + b"[" * BRACKETS + b'"', b'\\"'), True),
    Shape("cluster-json-open-brackets", "cluster", _raw(b'{"a":', b"["), True),
    Shape("cluster-json-huge-integer", "cluster", _raw(b'{"a":', b"7", b"}"), None),
    Shape("cluster-msgpack-nesting", "cluster", _raw(b"", b"\x91", b"\xc0"), None),
    Shape("cluster-msgpack-huge-claim", "cluster", _raw(b"\xdd\xff\xff\xff\xff", b"\xc0"), True),
    Shape("cluster-msgpack-many-maps", "cluster", _raw(b"\xdd", b"\x80", counted=4), False),
    Shape("cluster-msgpack-long-string", "cluster", _raw(b"\xdb", b"s", counted=4), False),
)


def shape(name: str) -> Shape:
    """The shape called ``name``."""
    for candidate in SHAPES:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------------------
# Wire forms and the server's receive path, sans IO
# ---------------------------------------------------------------------------------------------------------


def websocket_messages(messages: Sequence[str | bytes]) -> list[str | bytes]:
    """The WebSocket messages carrying a Socket.IO packet: "4" + text, then each attachment."""
    text, *attachments = messages
    assert isinstance(text, str)
    return ["4" + text, *attachments]


def polling_body(messages: Sequence[str | bytes]) -> str:
    """The long-polling body carrying a Socket.IO packet ("b" + base64 for each attachment)."""
    parts = []
    for message in websocket_messages(messages):
        parts.append(message if isinstance(message, str) else "b" + base64.b64encode(message).decode())
    return "\x1e".join(parts)


def _feed(packets: Sequence[EnginePacket]) -> Packet | None:
    decoder = Decoder()
    result = None
    for packet in packets:
        result = decoder.feed(packet.data)
    return result


def receive_over_websocket(messages: Sequence[str | bytes]) -> Packet | None:
    """What the server does with these WebSocket messages: ``decode_ws``, then ``Decoder.feed`` (raises
    ``RemoteProtocolError``)."""
    return _feed([decode_ws(message) for message in websocket_messages(messages)])


def receive_over_polling(messages: Sequence[str | bytes]) -> Packet | None:
    """What the server does with this packet in a POST body: ``decode_payload``, then ``Decoder.feed``."""
    return _feed(decode_payload(polling_body(messages)))


# ---------------------------------------------------------------------------------------------------------
# Transport shapes: raw bytes after the WebSocket handshake, HTTP heads, chunked POST bodies
# ---------------------------------------------------------------------------------------------------------

TEXT: Final = 0x1
BINARY: Final = 0x2
CONTINUATION: Final = 0x0
PING: Final = 0x9
_NO_MASK: Final = b"\x00\x00\x00\x00"  # a client's frames are masked; the zero key leaves the payload as is


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One client frame (masked with the zero key)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 0x10000:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + _NO_MASK + payload


def _repeat_frame(frame: bytes) -> Callable[[int], bytes]:
    return lambda size: frame * max(1, size // len(frame))


def _fragmented(size: int) -> bytes:
    """A text message of 1-byte frames: '42["e","xx..."]' (7 bytes of wire per byte of message)."""
    message = b'42["e","' + b"x" * max(1, size // 7 - 11) + b'"]'
    frames = [ws_frame(TEXT, message[:1], fin=False)]
    frames += [ws_frame(CONTINUATION, message[i : i + 1], fin=False) for i in range(1, len(message) - 1)]
    frames.append(ws_frame(CONTINUATION, message[-1:]))
    return b"".join(frames)


#: name -> size -> the bytes a client sends after the handshake (and the "40" CONNECT).
WS_SHAPES: Final[dict[str, Callable[[int], bytes]]] = {
    "ws-ping-flood": _repeat_frame(ws_frame(PING, b"")),
    "ws-tiny-messages": _repeat_frame(ws_frame(TEXT, b"6")),  # Engine.IO NOOP
    "ws-tiny-events": _repeat_frame(ws_frame(TEXT, b'42["e"]')),
    "ws-fragmented-1-byte": _fragmented,
}


@dataclass(frozen=True, slots=True)
class FrameShape:
    """The worst bytes for the server's frame reader (``protocol.wsread.FrameReader``).

    Attributes:
        name: Its name in tests and benchmark tables.
        build: ``size`` -> the bytes a client sends after the handshake, at most ``size`` of them.
        close_code: The code the reader fails with (``ReadEvent.FAILED``), or None when it reads it all.
    """

    name: str
    build: Callable[[int], bytes]
    close_code: int | None


def _claim(length: int) -> Callable[[int], bytes]:
    """A binary frame whose 64-bit length claims ``length`` bytes, then as many bytes as fit."""
    head = bytes((0x80 | BINARY, 0x80 | 127)) + length.to_bytes(8, "big") + _NO_MASK
    return lambda size: head + b"x" * max(0, size - len(head))


def _fragments_between_pings(size: int) -> bytes:
    """A binary message of 1-byte fragments, a ping with a 4-byte payload between two of them."""
    unit = ws_frame(CONTINUATION, b"x", fin=False) + ws_frame(PING, b"ping")
    count = max(1, (size - 14) // len(unit))
    return ws_frame(BINARY, b"x", fin=False) + unit * count + ws_frame(CONTINUATION, b"!")


#: The reader's worst inputs: floods of tiny frames (one frame's fixed cost, many times over), a message of
#: 1-byte fragments (the reassembly), huge length claims (refused from the header, before any payload).
WS_FRAME_SHAPES: Final[tuple[FrameShape, ...]] = (
    FrameShape("ws-ping-flood", WS_SHAPES["ws-ping-flood"], None),
    FrameShape("ws-tiny-messages", WS_SHAPES["ws-tiny-messages"], None),
    FrameShape("ws-2-byte-frames", _repeat_frame(ws_frame(TEXT, b"4x")), None),
    FrameShape("ws-pings-with-payload", _repeat_frame(ws_frame(PING, b"ping")), None),
    FrameShape("ws-fragmented-1-byte", _fragmented, None),
    FrameShape("ws-fragments-between-pings", _fragments_between_pings, None),
    FrameShape("ws-length-2**63", _claim(2**63), 1002),
    FrameShape("ws-length-2**63-1", _claim(2**63 - 1), 1009),
    FrameShape(
        "ws-continuations-without-start", _repeat_frame(ws_frame(CONTINUATION, b"x", fin=False)), 1002
    ),
)


def receive_frames(data: bytes, read_size: int, max_message: int) -> tuple[int, int | None]:
    """What the server's frame reader does with ``data`` in reads of ``read_size`` bytes (pausing every 64
    frames, as the server does): the number of messages read and the close code it failed with (None if
    it did not fail)."""
    reader = FrameReader(max_message=max_message, pause_every=64)
    messages = 0
    for start in range(0, len(data), read_size):
        reader.receive_data(data[start : start + read_size])
        while (event := reader.next_message()) is not ReadEvent.NEED_DATA:
            if event is ReadEvent.FAILED:
                return messages, reader.close_code
            assert event is not ReadEvent.CLOSED
            reader.ping = None
            if event is not ReadEvent.PAUSE:
                messages += 1
    return messages, None


def http_head(target: bytes, headers: bytes, size: int) -> bytes:
    """A request head of about ``size`` bytes: ``headers`` repeated to fill it."""
    start = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    count = max(0, (size - len(start) - 2) // len(headers))
    return start + headers * count + b"\r\n"


def _long_query(size: int) -> bytes:
    target = b"/socket.io/?EIO=4&transport=polling&q=" + b"%41" * max(1, (size - 100) // 3)
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _many_query_fields(size: int) -> bytes:
    target = b"/socket.io/?EIO=4&transport=polling" + b"&a=b" * max(1, (size - 100) // 4)
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _spaced_value(size: int) -> bytes:
    value = b"a " * max(1, (size - 100) // 2)
    return b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX: " + value + b"\x00\r\n\r\n"


_POLLING: Final = b"/socket.io/?EIO=4&transport=polling"

#: name -> size -> a request head (an Engine.IO handshake GET); heads beyond the head limit are refused.
HTTP_HEAD_SHAPES: Final[dict[str, Callable[[int], bytes]]] = {
    "http-many-headers": lambda size: http_head(_POLLING, b"X-H: v\r\n", size),
    "http-long-query": _long_query,
    "http-many-query-fields": _many_query_fields,
    "http-spaced-header-value": _spaced_value,
}


def chunked(data: bytes, chunk: int, extension: bytes = b"") -> bytes:
    """``data`` as a chunked body of ``chunk``-byte chunks, each size line with ``extension``."""
    parts = [
        b"%x%s\r\n%s\r\n" % (len(data[i : i + chunk]), extension, data[i : i + chunk])
        for i in range(0, len(data), chunk)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def _payload_bytes(size: int) -> bytes:
    return b'42["e","' + b"x" * max(1, size - 10) + b'"]'


#: name -> size -> a chunked POST body of about ``size`` bytes of wire (a valid long-polling payload).
HTTP_BODY_SHAPES: Final[dict[str, Callable[[int], bytes]]] = {
    "http-chunked-1-byte": lambda size: chunked(_payload_bytes(size // 6), 1),
    "http-chunk-extensions": lambda size: chunked(_payload_bytes(size // 410), 1, b";" + b"e" * 400),
}


def _fill(start: bytes, unit: bytes, end: bytes, size: int) -> bytes:
    """``start``, ``unit`` repeated, ``end``: at most ``size`` bytes (at least one ``unit``)."""
    return start + unit * max(1, (size - len(start) - len(end)) // len(unit)) + end


_GET: Final = b"GET " + _POLLING + b" HTTP/1.1\r\nHost: x\r\n"

#: name -> size -> the bytes before a body, for the lean head reader (``protocol.http1``), which finds the
#: end of a head, splits it and checks each line, or falls back to h11. Read with ``max_head`` at the head
#: limit (what the server does: never more than 16 KiB examined) and at the whole size (linear time).
HTTP1_HEAD_SHAPES: Final[dict[str, Callable[[int], bytes]]] = {
    # many short headers (more than MAX_HEADERS: falls back)
    "http1-many-short-headers": lambda size: _fill(_GET, b"a:\r\n", b"\r\n", size),
    # a head, then CRLF after CRLF (the head ends at the first empty line; the rest is "body")
    "http1-crlf-run": lambda size: _fill(_GET, b"\r\n", b"", size),
    # CR LF CR fragments that never make an empty line: bare CRs, no end
    "http1-crlf-fragments": lambda size: _fill(_GET[:-2], b"\r\n\r", b"", size),
    # one request target filling the head
    "http1-huge-target": lambda size: _fill(b"GET /", b"a", b" HTTP/1.1\r\nHost: x\r\n\r\n", size),
    # a header value of spaces (stripped) between two visible characters
    "http1-spaces": lambda size: _fill(_GET + b"X: a", b" ", b"b\r\n\r\n", size),
    # spaces before the colon of the last header: not a token, after a long value of spaces
    "http1-spaces-then-bad-name": lambda size: _fill(_GET + b"X:", b" ", b"\r\nY :z\r\n\r\n", size),
    # header lines ending in bare LFs (h11 reads them; the lean reader falls back)
    "http1-bare-lfs": lambda size: _fill(b"GET / HTTP/1.1\nHost: x\n", b"X: a\n", b"\n", size),
    # a request line that never ends
    "http1-no-terminator": lambda size: _fill(b"GET /", b"a", b"", size),
    # header lines that never end in an empty line
    "http1-no-empty-line": lambda size: _fill(_GET, b"X: a\r\n", b"", size),
}
