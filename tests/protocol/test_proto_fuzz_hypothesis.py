"""Hypothesis: random and mutated packets through the server's decoders (Engine.IO ``decode_ws`` /
``decode_payload``, then Socket.IO ``Decoder.feed``): only ``RemoteProtocolError`` may escape, whatever
the input. The worst shapes of tests/helpers/worst_shapes.py are explicit examples. Also: the linear-time
scanners read what the patterns and parsers they replace read (the JSON depth check, the Socket.IO
header, h11 fed by Http11Connection).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any, Final

import h11
from helpers.worst_shapes import SHAPES, polling_body, websocket_messages
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trio_rooms.errors import LocalProtocolError, RemoteProtocolError
from trio_rooms.protocol import jsonjs
from trio_rooms.protocol.engineio import decode_payload, decode_ws
from trio_rooms.protocol.http11 import Http11Connection
from trio_rooms.protocol.socketio import Decoder, Packet, PacketType, _split_header, encode

Messages = list[str | bytes]
EXAMPLE_SIZE: Final = 4_096
FUZZ: Final = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------------------
# Valid packets, then mutations
# ---------------------------------------------------------------------------------------------------------

SPECIAL: Final = '0123456789-/,[]{}":.e\\ tnu_\x1e\x00é😀\ud800'
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(SPECIAL)
)
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(SPECIAL, max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
arguments = st.lists(json_values | st.binary(max_size=8), max_size=4)
namespaces = st.sampled_from(["/", "/chat", "/a/b"])
ack_ids = st.none() | st.integers(0, 10**15 - 1)


@st.composite
def valid_packets(draw: st.DrawFn) -> Messages:
    """A packet our encoder writes: [text, *attachments]."""
    kind = draw(st.sampled_from(["event", "ack", "connect", "disconnect", "connect_error"]))
    nsp = draw(namespaces)
    if kind == "event":
        packet = Packet(
            PacketType.EVENT, nsp, [draw(st.text(max_size=6)) or "e", *draw(arguments)], draw(ack_ids)
        )
    elif kind == "ack":
        packet = Packet(PacketType.ACK, nsp, draw(arguments), draw(st.integers(0, 10**15 - 1)))
    elif kind == "connect":
        packet = Packet(
            PacketType.CONNECT, nsp, draw(st.none() | st.dictionaries(st.text(max_size=4), json_values))
        )
    elif kind == "disconnect":
        packet = Packet(PacketType.DISCONNECT, nsp)
    else:
        packet = Packet(PacketType.CONNECT_ERROR, nsp, {"message": draw(st.text(max_size=8))})
    try:
        text, attachments = encode(packet)
    except LocalProtocolError:  # a reserved event name drawn
        text, attachments = "0", []
    return [text, *attachments]


def _mutate_text(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["flip", "insert", "truncate", "duplicate", "delete"]))
    at = draw(st.integers(0, len(text)))
    if kind == "flip" and text:
        at = min(at, len(text) - 1)
        return text[:at] + draw(st.sampled_from(SPECIAL)) + text[at + 1 :]
    if kind == "insert":
        return text[:at] + draw(st.text(SPECIAL, min_size=1, max_size=8)) + text[at:]
    if kind == "truncate":
        return text[:at]
    if kind == "duplicate":
        end = draw(st.integers(at, len(text)))
        return text[:end] + text[at:end] * draw(st.integers(1, 40)) + text[end:]
    return text[:at] + text[at + 1 :]


@st.composite
def mutated_packets(draw: st.DrawFn) -> Messages:
    messages = draw(valid_packets())
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(messages) - 1))
        message = messages[index]
        action = draw(st.sampled_from(["text", "text", "drop", "extra", "retype"]))
        if action == "text":
            if isinstance(message, str):
                messages[index] = _mutate_text(draw, message)
            else:
                mutated = _mutate_text(draw, message.decode("latin-1"))
                messages[index] = mutated.encode("utf-8", "surrogatepass")
        elif action == "drop" and len(messages) > 1:
            del messages[index]
        elif action == "extra":
            messages.insert(index, draw(st.binary(max_size=4) | st.text(SPECIAL, max_size=6)))
        elif isinstance(message, str):
            messages[index] = message.encode("utf-8", "surrogatepass")
        else:
            messages[index] = message.decode("latin-1")
    return messages


def _feed_all(messages: Messages) -> None:
    """Each message as the payload of an Engine.IO MESSAGE, through the server's decoders, over both
    transports; only RemoteProtocolError may come out."""
    text, *rest = messages if messages and isinstance(messages[0], str) else ["", *messages]
    for run in (_over_websocket, _over_polling):
        with contextlib.suppress(RemoteProtocolError):
            run([text, *rest])


def _over_websocket(messages: Messages) -> None:
    decoder = Decoder(max_attachments=3)
    for message in websocket_messages(messages):
        decoder.feed(decode_ws(message).data)


def _over_polling(messages: Messages) -> None:
    decoder = Decoder(max_attachments=3)
    body = polling_body(messages)
    for packet in decode_payload(body):
        decoder.feed(packet.data)


def _worst_examples(test: Any) -> Any:
    for shape in SHAPES:
        if shape.kind == "socketio":
            test = example(shape.build(EXAMPLE_SIZE))(test)
        elif shape.kind == "payload":
            test = example(["", str(shape.build(EXAMPLE_SIZE)[0])])(test)
    return test


@FUZZ
@given(st.one_of(mutated_packets(), valid_packets()))
@_worst_examples
def test_only_remote_protocol_error_escapes_the_decoders(messages: Messages) -> None:
    _feed_all(messages)


@FUZZ
@given(st.text(SPECIAL + "4b", max_size=64), st.binary(max_size=32))
def test_random_text_and_bytes_through_every_entry_point(text: str, data: bytes) -> None:
    for call in (
        lambda: decode_ws(text),
        lambda: decode_ws(data),
        lambda: decode_payload(text),
        lambda: Decoder().feed(text),
        lambda: Decoder().feed(data),
    ):
        with contextlib.suppress(RemoteProtocolError):
            call()


# ---------------------------------------------------------------------------------------------------------
# The scanners read what they replace read
# ---------------------------------------------------------------------------------------------------------


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@FUZZ
@given(json_values, st.integers(0, 6))
def test_jsonjs_depth_limit_is_exact_on_valid_json(value: Any, max_depth: int) -> None:
    for text in {jsonjs.dumps(value), json.dumps(value, indent=1)}:
        try:
            jsonjs.loads(text, max_depth=max_depth)
            assert _depth(value) <= max_depth
        except LocalProtocolError as exc:
            assert "deeper" in exc.message and _depth(value) > max_depth


OLD_HEADER: Final = re.compile(r"([0-6])(?:([0-9]+)-)?(?:(/[^,]*),?)?([0-9]+)?")


@FUZZ
@given(st.text("0123456789-/,[a7", max_size=24))
def test_socketio_header_scanner_reads_what_the_pattern_read(message: str) -> None:
    match = OLD_HEADER.match(message)
    try:
        split = _split_header(message)
    except LocalProtocolError:
        assert match is None
    else:
        assert match is not None and split == (*match.groups(), match.end())


# ---------------------------------------------------------------------------------------------------------
# Http11Connection gives the events h11 gives
# ---------------------------------------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    headers = b"".join(
        b"X-%d: %s\r\n" % (i, b"v" * draw(st.integers(0, 300))) for i in range(draw(st.integers(0, 6)))
    )
    body = draw(st.binary(max_size=2000))
    if draw(st.booleans()):
        chunk = draw(st.integers(1, 700))
        ext = b";e=" + b"x" * draw(st.integers(0, 200)) if draw(st.booleans()) else b""
        framed = b"".join(
            b"%x%s\r\n%s\r\n" % (len(body[i : i + chunk]), ext, body[i : i + chunk])
            for i in range(0, len(body), chunk)
        )
        head = b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + headers + b"\r\n"
        message = head + framed + b"0\r\n\r\n"
    else:
        message = (
            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body) + headers + b"\r\n" + body
        )
    text = message.decode("latin-1")
    if draw(st.booleans()):
        text = _mutate_text(draw, text)
    return text.encode("utf-8", "surrogatepass") + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


def _events(conn: h11.Connection, data: bytes, step: int) -> list[Any]:
    out: list[Any] = []
    offset = 0
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if offset >= len(data):
                    return out
                conn.receive_data(data[offset : offset + step])
                offset += step
            elif event is h11.PAUSED:
                if conn.our_state is h11.SEND_RESPONSE:
                    conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                    conn.send(h11.EndOfMessage())
                if conn.their_state is not h11.DONE or conn.our_state is not h11.DONE:
                    return out
                conn.start_next_cycle()
            elif isinstance(event, h11.Data) and out and isinstance(out[-1], bytes):
                out[-1] += bytes(event.data)
            elif isinstance(event, h11.Data):
                out.append(bytes(event.data))
            else:
                out.append(event)
    except h11.RemoteProtocolError as exc:
        # The kind of error, not its detail: h11 quotes the bytes it had, which depend on the slicing.
        out.append(("error", str(exc).partition(":")[0]))
        return out


@settings(max_examples=150, deadline=None)
@given(requests(), st.integers(1, 20_000))
def test_http11_connection_gives_the_events_h11_gives(data: bytes, step: int) -> None:
    ours = _events(Http11Connection(h11.SERVER, max_incomplete_event_size=16_384), data, step)
    theirs = _events(h11.Connection(h11.SERVER, max_incomplete_event_size=16_384), data, step)
    if ours and isinstance(ours[-1], tuple) and "longer than" in ours[-1][1]:
        # refused by our bound on framing lines: up to there, the same events
        assert ours[:-1] == theirs[: len(ours) - 1]
        return
    assert ours == theirs
