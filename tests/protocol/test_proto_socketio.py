"""Socket.IO v5: every example of the spec as a golden vector, two-sided round trips, malformed input."""

from __future__ import annotations

from typing import Any

import pytest

from trio_rooms.errors import LocalProtocolError, RemoteProtocolError
from trio_rooms.protocol import engineio
from trio_rooms.protocol.socketio import RESERVED_EVENTS, Decoder, Packet, PacketType, encode

P = PacketType
BUF = b"\x01\x02\x03\x04"
PH0 = '{"_placeholder":true,"num":0}'
PH1 = '{"_placeholder":true,"num":1}'

# (packet as the application builds it, text message, attachments): the spec's tables, its sample
# session, and the examples of the task brief.
GOLDEN: list[tuple[Packet, str, list[bytes]]] = [
    # connection to a namespace
    (Packet(P.CONNECT), "0", []),
    (Packet(P.CONNECT, data={"sid": "wZX3oN0bSVIhsaknAAAI"}), '0{"sid":"wZX3oN0bSVIhsaknAAAI"}', []),
    (Packet(P.CONNECT, "/admin"), "0/admin,", []),
    (
        Packet(P.CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
        '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
        [],
    ),
    (Packet(P.CONNECT, "/admin", {"token": "123"}), '0/admin,{"token":"123"}', []),
    (Packet(P.CONNECT_ERROR, data={"message": "Not authorized"}), '4{"message":"Not authorized"}', []),
    # sending and receiving data
    (Packet(P.EVENT, data=["foo"]), '2["foo"]', []),
    (Packet(P.EVENT, "/admin", ["bar"]), '2/admin,["bar"]', []),
    (Packet(P.EVENT, data=["baz", BUF]), f'51-["baz",{PH0}]', [BUF]),
    (
        Packet(P.EVENT, "/admin", ["baz", b"\x01\x02", b"\x03\x04"]),
        f'52-/admin,["baz",{PH0},{PH1}]',
        [b"\x01\x02", b"\x03\x04"],
    ),
    # acknowledgement
    (Packet(P.EVENT, data=["foo"], ack_id=12), '212["foo"]', []),
    (Packet(P.ACK, data=[], ack_id=12), "312[]", []),
    (Packet(P.EVENT, "/admin", ["foo"], 13), '2/admin,13["foo"]', []),
    (Packet(P.ACK, "/admin", ["bar"], 13), '3/admin,13["bar"]', []),
    (Packet(P.EVENT, data=["foo", BUF], ack_id=14), f'51-14["foo",{PH0}]', [BUF]),
    (Packet(P.ACK, data=["bar"], ack_id=14), '314["bar"]', []),
    (Packet(P.EVENT, data=["foo"], ack_id=15), '215["foo"]', []),
    (Packet(P.ACK, data=["bar", BUF], ack_id=15), f'61-15["bar",{PH0}]', [BUF]),
    # disconnection from a namespace
    (Packet(P.DISCONNECT), "1", []),
    (Packet(P.DISCONNECT, "/admin"), "1/admin,", []),
    # sample session
    (Packet(P.EVENT, data=["hey", "Jude"]), '2["hey","Jude"]', []),
    (Packet(P.EVENT, data=["hello"]), '2["hello"]', []),
    (Packet(P.EVENT, data=["world"]), '2["world"]', []),
    (
        Packet(P.CONNECT, "/admin", {"sid": "-G5j-67EZFp-q59rADQM"}),
        '0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}',
        [],
    ),
    (Packet(P.EVENT, "/admin", ["tellme"], 1), '2/admin,1["tellme"]', []),
    (Packet(P.ACK, "/admin", [b"\xff"], 1), f"61-/admin,1[{PH0}]", [b"\xff"]),
    # the brief's examples
    (Packet(P.EVENT, data=["hello", 1]), '2["hello",1]', []),
    (Packet(P.EVENT, data=["hello", BUF]), f'51-["hello",{PH0}]', [BUF]),
    (Packet(P.EVENT, "/admin", ["project:delete", 123], 456), '2/admin,456["project:delete",123]', []),
    (Packet(P.ACK, "/admin", [], 456), "3/admin,456[]", []),
]


def _normalize(packet: Packet) -> Packet:
    """What the decoder gives back: EVENT/ACK types, lists for tuples, bytes for bytes-like."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    ptype = {P.BINARY_EVENT: P.EVENT, P.BINARY_ACK: P.ACK}.get(packet.type, packet.type)
    return Packet(ptype, packet.nsp, plain(packet.data), packet.ack_id)


def _decode(text: str, attachments: list[bytes], decoder: Decoder | None = None) -> Packet:
    decoder = decoder or Decoder()
    result = decoder.feed(text)
    for index, attachment in enumerate(attachments):
        assert result is None
        assert decoder.awaiting_attachments
        result = decoder.feed(attachment)
        assert decoder.awaiting_attachments == (index < len(attachments) - 1)
    assert result is not None
    assert not decoder.awaiting_attachments
    return result


@pytest.mark.parametrize(("packet", "text", "attachments"), GOLDEN, ids=[v[1] for v in GOLDEN])
def test_golden_vectors_both_ways(packet: Packet, text: str, attachments: list[bytes]) -> None:
    assert encode(packet) == (text, attachments)
    assert _decode(text, attachments) == _normalize(packet)


def test_wire_form_inside_engine_io() -> None:
    text, _ = encode(Packet(P.EVENT, data=["foo"]))
    assert engineio.encode_ws(engineio.EnginePacket(engineio.EnginePacketType.MESSAGE, text)) == '42["foo"]'
    # the sample session's polling bodies, decoded by both layers
    decoder = Decoder()
    packets = engineio.decode_payload('42["hello"]\x1e42["world"]')
    assert [decoder.feed(str(p.data)) for p in packets] == [
        Packet(P.EVENT, data=["hello"]),
        Packet(P.EVENT, data=["world"]),
    ]
    assert decoder.feed(str(engineio.decode_ws("40").data)) == Packet(P.CONNECT)


@pytest.mark.parametrize(
    ("text", "packet"),
    [
        ("0/custom", Packet(P.CONNECT, "/custom")),
        ("0/custom,", Packet(P.CONNECT, "/custom")),
        ('0/custom,{"token":"abc"}', Packet(P.CONNECT, "/custom", {"token": "abc"})),
        ("1/custom", Packet(P.DISCONNECT, "/custom")),
        ('2/,["a"]', Packet(P.EVENT, "/", ["a"])),
        ('4"Invalid namespace"', Packet(P.CONNECT_ERROR, data="Invalid namespace")),
        (
            '4/admin,{"message":"x","data":{"a":1}}',
            Packet(P.CONNECT_ERROR, "/admin", {"message": "x", "data": {"a": 1}}),
        ),
        ("2[1,2]", Packet(P.EVENT, data=[1, 2])),  # numeric event names: socket.io-parser accepts them
        ("2[1.5]", Packet(P.EVENT, data=[1.5])),
        ('2["connection"]', Packet(P.EVENT, data=["connection"])),
        (
            '2["a",{"_placeholder":true,"num":0}]',
            Packet(P.EVENT, data=["a", {"_placeholder": True, "num": 0}]),
        ),
        ('2999999999999999["a"]', Packet(P.EVENT, data=["a"], ack_id=999_999_999_999_999)),
        ('20["a"]', Packet(P.EVENT, data=["a"], ack_id=0)),
        ('2["a"] \n', Packet(P.EVENT, data=["a"])),  # JSON.parse allows trailing whitespace
    ],
)
def test_accepted_forms(text: str, packet: Packet) -> None:
    assert Decoder().feed(text) == packet


def test_placeholders_nested_and_reused() -> None:
    text = '52-/n,3["e",{"a":[{"_placeholder":true,"num":1}],"b":{"_placeholder":true,"num":0,"x":1}}]'
    decoder = Decoder()
    assert decoder.feed(text) is None
    assert decoder.feed(b"zero") is None
    result = decoder.feed(bytearray(b"one"))  # type: ignore[arg-type]  # bytes-like accepted at run time
    assert result == Packet(P.EVENT, "/n", ["e", {"a": [b"one"], "b": b"zero"}], 3)
    # a placeholder may be referenced twice (socket.io-parser allows it); each attachment must be used
    assert _decode(f"61-1[{PH0},{PH0}]", [b"x"]) == Packet(P.ACK, data=[b"x", b"x"], ack_id=1)


ROUND_TRIPS: list[Packet] = [
    Packet(P.CONNECT, "/chat", {"token": "é😀", "n": [1, 2.5, None, True]}),
    Packet(P.CONNECT_ERROR, "/chat", "not allowed"),
    Packet(P.CONNECT_ERROR, data={"message": "Invalid namespace"}),
    Packet(P.EVENT, data=("tuple", (1, 2), {"k": ("v",)})),
    Packet(P.EVENT, data=["n", {"deep": [[{"b": bytearray(b"1")}], memoryview(b"2")]}, b"3"], ack_id=0),
    Packet(P.EVENT, "/a/b", ["bin", b""], 999_999_999_999_999),
    Packet(P.ACK, "/x", [{"a": b"\x00" * 70_000}], 5),
    Packet(P.ACK, data=[], ack_id=1),
    Packet(P.BINARY_EVENT, data=["labelled", b"x"]),
    Packet(P.BINARY_EVENT, data=["labelled but plain"]),
    Packet(P.BINARY_ACK, data=[None], ack_id=2),
    Packet(P.EVENT, data=["control\x00\x1e\n", "\ud800", {"\u2028": -0.0}]),
    Packet(P.EVENT, data=[7, "numeric name"]),
    Packet(P.EVENT, "/ünïcode", ["x"]),
]


@pytest.mark.parametrize("packet", ROUND_TRIPS)
def test_two_sided_round_trip(packet: Packet) -> None:
    text, attachments = encode(packet)
    assert _decode(text, attachments) == _normalize(packet)


def test_one_decoder_many_packets() -> None:
    decoder = Decoder()
    for packet in ROUND_TRIPS * 3:
        text, attachments = encode(packet)
        assert _decode(text, attachments, decoder) == _normalize(packet)


def test_encode_binary_types_and_counts() -> None:
    # no binary: written plain, since socket.io-parser >= 4.2.4 rejects "50-"
    assert encode(Packet(P.BINARY_EVENT, data=["a"])) == ('2["a"]', [])
    assert encode(Packet(P.BINARY_ACK, "/x", [], 3)) == ("3/x,3[]", [])
    text, attachments = encode(Packet(P.EVENT, data=["a", {"x": [b"0", (b"1",)], "y": b"2"}, b"3"]))
    assert text.startswith("54-")
    assert attachments == [b"0", b"1", b"2", b"3"]  # depth first, in order


@pytest.mark.parametrize(
    ("packet", "error"),
    [
        (Packet(P.EVENT, "admin", ["a"]), LocalProtocolError),
        (Packet(P.EVENT, "/a,b", ["a"]), LocalProtocolError),
        (Packet(P.EVENT, "", ["a"]), LocalProtocolError),
        (Packet(P.EVENT, data=["a"], ack_id=-1), LocalProtocolError),
        (Packet(P.EVENT, data=["a"], ack_id=True), LocalProtocolError),
        (Packet(P.EVENT, data=["a"], ack_id=10**15), LocalProtocolError),
        (Packet(P.EVENT, data=[]), LocalProtocolError),
        (Packet(P.EVENT, data=None), LocalProtocolError),
        (Packet(P.EVENT, data="a"), LocalProtocolError),
        (Packet(P.EVENT, data=[None]), LocalProtocolError),
        (Packet(P.EVENT, data=[True]), LocalProtocolError),
        (Packet(P.BINARY_EVENT, data=[b"x"]), LocalProtocolError),
        *[(Packet(P.EVENT, data=[name]), LocalProtocolError) for name in sorted(RESERVED_EVENTS)],
        (Packet(P.ACK, data=[]), LocalProtocolError),
        (Packet(P.ACK, data={}, ack_id=1), LocalProtocolError),
        (Packet(P.CONNECT, data=[], ack_id=None), LocalProtocolError),
        (Packet(P.CONNECT, data={}, ack_id=1), LocalProtocolError),
        (Packet(P.DISCONNECT, data={}), LocalProtocolError),
        (Packet(P.CONNECT_ERROR), LocalProtocolError),
        (Packet(P.CONNECT_ERROR, data=["x"]), LocalProtocolError),
        (Packet(P.EVENT, data=["a", {1, 2}]), TypeError),
        (Packet(P.CONNECT, data={"a": b"x"}), TypeError),
    ],
)
def test_encode_refuses_what_the_decoder_refuses(packet: Packet, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode(packet)


def test_reserved_events() -> None:
    assert (
        frozenset(
            {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
        )
        == RESERVED_EVENTS
    )


RESERVED_AS_EVENTS: list[list[str | bytes]] = [[f'2["{name}"]'] for name in sorted(RESERVED_EVENTS)]
MALFORMED: list[list[str | bytes]] = [
    [""],
    ["7"],
    ["9[]"],
    ["a"],
    ["-1"],
    ['٢["a"]'],  # an Arabic-Indic digit is not a packet type
    ["2"],
    ["2/admin,"],
    ['2"x"'],
    ["2{}"],
    ["2[]"],
    ['2["a"'],
    ['2["a"]x'],
    ['2["a"]\x00'],
    ['2["a"],'],
    *RESERVED_AS_EVENTS,
    ["2[true]"],
    ["2[null]"],
    ["2[[]]"],
    ['2[{"a":1}]'],
    ["2[NaN]"],
    ['2["a",Infinity]'],
    ["2" + "[" * 40 + "]" * 40],
    ['2["a"' + ",[" * 40 + "]" * 40 + "]"],
    ["3[]"],
    ["312"],
    ["312{}"],
    ['312"x"'],
    ["1[]"],
    ['1"x"'],
    ["1/admin,{}"],
    ["11"],
    ["0[]"],
    ["0null"],
    ['2 ["a"]'],  # socket.io-parser reads the space as ack id 0; we refuse to guess
    ['2\n["a"]'],
    ["0/admin,null"],
    ["1null"],
    ["4null"],
    ["2null"],
    ["312null"],
    ['0"x"'],
    ["0123"],
    ["00{}"],
    ["0/admin,1{}"],
    ["4"],
    ["4[]"],
    ["41{}"],
    ["4/admin,"],
    ['5["a"]'],
    ['5-["a"]'],
    ['5x-["a"]'],
    ['51["a"]'],
    ['511-["a"]'],
    ['5999999999-["a"]'],
    ["5" + "9" * 5000 + '-["a"]'],
    ['21-["a"]'],
    ['2admin,["a"]'],
    ['2,["a"]'],
    ['2/admin["a"]'],
    ['2/admin,x["a"]'],
    ["2" + "1" * 16 + '["a"]'],
    ["2" + "1" * 5000 + '["a"]'],
    ['2["a",' + "1" * 5000 + "]"],
    ['2-1["a"]'],
    # binary reassembly
    [b"\x01"],
    ['51-["a",{"_placeholder":true,"num":0}]', '2["b"]'],
    ['51-["a",{"_placeholder":true,"num":1}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":-1}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":"0"}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":true}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":0.0}]', b"x"],
    ['51-["a",{"_placeholder":true}]', b"x"],
    ['51-["a"]', b"x"],
    ['52-["a",{"_placeholder":true,"num":0}]', b"x", b"y"],
    ['52-["a",{"_placeholder":true,"num":1},{"_placeholder":true,"num":1}]', b"x", b"y"],
    ['50-["a",{"_placeholder":true,"num":0}]'],
    ['50-["a"]'],  # socket.io-parser >= 4.2.4: at least one attachment
    ['60-/x,7["a"]'],
    ['500-["a"]'],
    ['51-["a",{"_placeholder":true,"num":0}]', b"x", b"y"],
    ['51-["connect",{"_placeholder":true,"num":0}]'],
    ['61-[{"_placeholder":true,"num":0}]'],
]


@pytest.mark.parametrize("messages", MALFORMED, ids=lambda m: repr(m)[:60])
def test_malformed_input_raises_remote_protocol_error(messages: list[str | bytes]) -> None:
    decoder = Decoder()
    with pytest.raises(RemoteProtocolError):
        for message in messages:
            decoder.feed(message)


def test_decoder_is_broken_after_an_error() -> None:
    decoder = Decoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed("2[]")
    with pytest.raises(RemoteProtocolError, match="earlier"):
        decoder.feed('2["ok"]')
    assert not decoder.awaiting_attachments


def test_decoder_limits_are_configurable() -> None:
    assert Decoder(max_attachments=11).feed("511-" + '["a"' + ",{}" * 1 + "]") is None
    with pytest.raises(RemoteProtocolError, match="too many attachments"):
        Decoder(max_attachments=1).feed('52-["a"]')
    assert Decoder(max_depth=2).feed('2["a",[]]') == Packet(P.EVENT, data=["a", []])
    with pytest.raises(RemoteProtocolError, match="deeper"):
        Decoder(max_depth=2).feed('2["a",[[]]]')


def test_decoder_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        Decoder().feed(42)  # type: ignore[arg-type]
