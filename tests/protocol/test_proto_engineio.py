"""Engine.IO v4: every example of the spec as a golden vector, round trips, malformed input."""

from __future__ import annotations

import pytest

from trio_rooms.errors import LocalProtocolError, RemoteProtocolError
from trio_rooms.protocol import engineio
from trio_rooms.protocol.engineio import (
    EnginePacket,
    EnginePacketType,
    OpenInfo,
    decode_payload,
    decode_ws,
    encode_payload,
    encode_ws,
    open_packet,
    parse_open,
)

T = EnginePacketType

SPEC_OPEN = (
    '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000,'
    '"maxPayload":1000000}'
)

# (packet, WebSocket frame content) from the spec's examples and sample sessions.
WS_VECTORS: list[tuple[EnginePacket, str | bytes]] = [
    (EnginePacket(T.OPEN, SPEC_OPEN), "0" + SPEC_OPEN),
    (EnginePacket(T.MESSAGE, "hello"), "4hello"),
    (EnginePacket(T.MESSAGE, "hey"), "4hey"),
    (EnginePacket(T.MESSAGE, "world"), "4world"),
    (EnginePacket(T.MESSAGE, "HelloWorld"), "4HelloWorld"),
    (EnginePacket(T.MESSAGE, ""), "4"),
    (EnginePacket(T.MESSAGE, '2["foo"]'), '42["foo"]'),
    (EnginePacket(T.MESSAGE, b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04"),
    (EnginePacket(T.MESSAGE, b"\x00\x01\x02\x03\x04\x05"), b"\x00\x01\x02\x03\x04\x05"),
    (EnginePacket(T.MESSAGE, b""), b""),
    (engineio.PING, "2"),
    (engineio.PONG, "3"),
    (engineio.PROBE_PING, "2probe"),
    (engineio.PROBE_PONG, "3probe"),
    (engineio.UPGRADE, "5"),
    (engineio.NOOP, "6"),
    (engineio.CLOSE, "1"),
]


@pytest.mark.parametrize(("packet", "wire"), WS_VECTORS, ids=[repr(v[1]) for v in WS_VECTORS])
def test_websocket_golden_vectors(packet: EnginePacket, wire: str | bytes) -> None:
    assert encode_ws(packet) == wire
    assert decode_ws(wire) == packet


# (packets, long-polling body)
PAYLOAD_VECTORS: list[tuple[list[EnginePacket], str]] = [
    ([EnginePacket(T.MESSAGE, "hey")], "4hey"),
    ([EnginePacket(T.OPEN, SPEC_OPEN)], "0" + SPEC_OPEN),
    ([EnginePacket(T.MESSAGE, "hello"), EnginePacket(T.MESSAGE, "world")], "4hello\x1e4world"),
    (
        [EnginePacket(T.MESSAGE, "hello"), engineio.PING, EnginePacket(T.MESSAGE, "world")],
        "4hello\x1e2\x1e4world",
    ),
    ([EnginePacket(T.MESSAGE, "hello"), EnginePacket(T.MESSAGE, b"\x01\x02\x03\x04")], "4hello\x1ebAQIDBA=="),
    ([EnginePacket(T.MESSAGE, "hello"), EnginePacket(T.MESSAGE, "€")], "4hello\x1e4€"),
    ([EnginePacket(T.MESSAGE, "€"), EnginePacket(T.MESSAGE, b"\x01\x02\x03\x04")], "4€\x1ebAQIDBA=="),
    # engine.io-parser 4.0.0 changelog
    ([EnginePacket(T.MESSAGE, "hello"), EnginePacket(T.MESSAGE, "€€€")], "4hello\x1e4€€€"),
    ([EnginePacket(T.MESSAGE, "hello"), EnginePacket(T.MESSAGE, b"\x01\x02\x03")], "4hello\x1ebAQID"),
    # Socket.IO sample session
    (
        [EnginePacket(T.MESSAGE, '2["hello"]'), EnginePacket(T.MESSAGE, '2["world"]')],
        '42["hello"]\x1e42["world"]',
    ),
    ([EnginePacket(T.MESSAGE, "0")], "40"),
    ([engineio.NOOP], "6"),
    ([engineio.CLOSE], "1"),
    ([EnginePacket(T.MESSAGE, b"")], "b"),
]


@pytest.mark.parametrize(("packets", "body"), PAYLOAD_VECTORS, ids=[repr(v[1]) for v in PAYLOAD_VECTORS])
def test_polling_payload_golden_vectors(packets: list[EnginePacket], body: str) -> None:
    assert encode_payload(packets) == body
    assert decode_payload(body) == packets


def test_open_packet_matches_the_spec_exactly() -> None:
    packet = open_packet(
        "lv_VI97HAXpY6yYWAAAC",
        upgrades=["websocket"],
        ping_interval_ms=25000,
        ping_timeout_ms=5000,
        max_payload=1000000,
    )
    assert encode_ws(packet) == "0" + SPEC_OPEN
    assert encode_payload([packet]) == "0" + SPEC_OPEN
    # the handshake example of the Handshake section, and sub-second values kept exact
    packet = open_packet("s", upgrades=[], ping_interval_ms=300, ping_timeout_ms=200, max_payload=1000000)
    assert (
        packet.data == '{"sid":"s","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}'
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (SPEC_OPEN, OpenInfo("lv_VI97HAXpY6yYWAAAC", ("websocket",), 25000, 5000, 1000000)),
        (
            '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,'
            '"maxPayload":1000000}',
            OpenInfo("lv_VI97HAXpY6yYWAAAC", ("websocket",), 25000, 20000, 1000000),
        ),
        # "Sample session with WebSocket only" of the first v4 revision: no upgrades, no maxPayload
        (
            '{"sid":"lv_VI97HAXpY6yYWAAAC","pingInterval":25000,"pingTimeout":5000}',
            OpenInfo("lv_VI97HAXpY6yYWAAAC", (), 25000, 5000, engineio.DEFAULT_MAX_PAYLOAD),
        ),
        (
            '{"pingTimeout":1,"pingInterval":2,"sid":"x","extra":{"a":1},"upgrades":[]}',
            OpenInfo("x", (), 2, 1, 10**6),
        ),
    ],
)
def test_parse_open(data: str, expected: OpenInfo) -> None:
    assert parse_open(data) == expected


def test_open_round_trip() -> None:
    packet = open_packet("abc", upgrades=("websocket",), ping_interval_ms=1, ping_timeout_ms=0, max_payload=7)
    assert parse_open(str(decode_ws(encode_ws(packet)).data)) == OpenInfo("abc", ("websocket",), 1, 0, 7)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "x",
        "[]",
        '"sid"',
        "{}",
        '{"sid":"","pingInterval":1,"pingTimeout":1}',
        '{"sid":1,"pingInterval":1,"pingTimeout":1}',
        '{"sid":"a","pingTimeout":1}',
        '{"sid":"a","pingInterval":1}',
        '{"sid":"a","pingInterval":-1,"pingTimeout":1}',
        '{"sid":"a","pingInterval":1.5,"pingTimeout":1}',
        '{"sid":"a","pingInterval":true,"pingTimeout":1}',
        '{"sid":"a","pingInterval":"1","pingTimeout":1}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":null}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1,"upgrades":"websocket"}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1,"upgrades":[1]}',
        '{"sid":"a","pingInterval":NaN,"pingTimeout":1}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1,"x":[[[]]]}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1}x',
    ],
)
def test_parse_open_malformed(data: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_open(data)


@pytest.mark.parametrize(
    "message",
    ["", "7", "9", "a", "-1", " 4hello", "\x1e", "1x", "5probe", "6 ", "٤hello", "4hello"[1:]],
)
def test_decode_ws_malformed(message: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_ws(message)


def test_decode_ws_accepts_bytes_like() -> None:
    assert decode_ws(bytearray(b"\x01")) == EnginePacket(T.MESSAGE, b"\x01")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decode_ws(4)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "\x1e",
        "4a\x1e",
        "\x1e4a",
        "4a\x1e\x1e4b",
        "7",
        "4a\x1e9",
        "bAQIDBA=",
        "bAQIDBA===",
        "bAQ!DBA==",
        "b€",
        "bAQID BA==",
        "bAQIDBA==\n",
        "4a\x1ebAQIDBA==x",
        "1close",
    ],
)
def test_decode_payload_malformed(body: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_payload(body)


def test_decode_payload_packet_limit() -> None:
    assert len(decode_payload("\x1e".join(["4a"] * 1000))) == 1000
    with pytest.raises(RemoteProtocolError, match="more than 1000"):
        decode_payload("\x1e".join(["4a"] * 1001))
    assert len(decode_payload("2\x1e3", max_packets=2)) == 2
    with pytest.raises(RemoteProtocolError):
        decode_payload("2\x1e3\x1e6", max_packets=2)


@pytest.mark.parametrize(
    "packet",
    [
        EnginePacket(T.PING, b"x"),
        EnginePacket(T.OPEN, b"{}"),
        EnginePacket(T.CLOSE, "now"),
        EnginePacket(T.UPGRADE, "x"),
        EnginePacket(T.NOOP, "x"),
    ],
)
def test_encode_rejects_invalid_packets(packet: EnginePacket) -> None:
    with pytest.raises(LocalProtocolError):
        encode_ws(packet)
    with pytest.raises(LocalProtocolError):
        encode_payload([packet])


def test_encode_payload_rejects_separator_and_empty() -> None:
    with pytest.raises(LocalProtocolError):
        encode_payload([EnginePacket(T.MESSAGE, "a\x1eb")])
    with pytest.raises(LocalProtocolError):
        encode_payload([])
    # a WebSocket frame may carry it: no framing to break there
    assert encode_ws(EnginePacket(T.MESSAGE, "a\x1eb")) == "4a\x1eb"


@pytest.mark.parametrize(
    "packets",
    [
        [EnginePacket(T.MESSAGE, "é\n\r\t\x00"), EnginePacket(T.MESSAGE, bytes(range(256)))],
        [EnginePacket(T.MESSAGE, "b"), EnginePacket(T.MESSAGE, "bAQID")],  # text starting with "b" is safe
        [engineio.PROBE_PING, engineio.PROBE_PONG, engineio.UPGRADE, engineio.NOOP, engineio.CLOSE],
        [EnginePacket(T.MESSAGE, bytearray(b"\xff"))],  # type: ignore[arg-type]
    ],
)
def test_round_trips(packets: list[EnginePacket]) -> None:
    normalized = [
        EnginePacket(p.type, bytes(p.data) if not isinstance(p.data, str) else p.data) for p in packets
    ]
    assert decode_payload(encode_payload(packets)) == normalized
    assert [decode_ws(encode_ws(p)) for p in packets] == normalized


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ping_interval_ms": -1}, ValueError),
        ({"ping_timeout_ms": 1.5}, TypeError),
        ({"max_payload": True}, TypeError),
        ({"upgrades": "websocket"}, TypeError),
        ({"upgrades": [1]}, TypeError),
    ],
)
def test_open_packet_rejects_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    arguments: dict[str, object] = {
        "upgrades": [],
        "ping_interval_ms": 1,
        "ping_timeout_ms": 1,
        "max_payload": 1,
        **kwargs,
    }
    with pytest.raises(error):
        open_packet("sid", **arguments)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        open_packet("", upgrades=[], ping_interval_ms=1, ping_timeout_ms=1, max_payload=1)
