"""Brute force: thousands of mutated / truncated valid inputs; a decoder either succeeds or raises
RemoteProtocolError (jsonjs.loads: LocalProtocolError), never anything else; what decodes re-encodes."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

import pytest

from trio_rooms.errors import LocalProtocolError, RemoteProtocolError
from trio_rooms.protocol import engineio, jsonjs
from trio_rooms.protocol.socketio import Decoder, Packet, encode

from .test_proto_engineio import PAYLOAD_VECTORS, SPEC_OPEN, WS_VECTORS
from .test_proto_socketio import GOLDEN, ROUND_TRIPS

ALPHABET: list[str] = [
    *'0123456789-/,[]{}":.e\\ atbnu_\x1e\x00é€\ud800😀',
    "",
    "placeholder",
    "null",
    "1e400",
]
EXTRA_MESSAGES: list[str | bytes] = [b"x", b"", '2["a"]', "0"]


def _mutate_text(rng: random.Random, text: str) -> str:
    kind = rng.randrange(6)
    position = rng.randrange(len(text) + 1)
    if kind == 0:
        return text[:position]
    if kind == 1:
        return text[position:]
    if kind == 2:
        return text[:position] + text[position + 1 :]
    if kind == 3:
        return text[:position] + rng.choice(ALPHABET) + text[position + 1 :]
    if kind == 4:
        return text[:position] + rng.choice(ALPHABET) + text[position:]
    end = rng.randrange(position, len(text) + 1)
    return text[:position] + text[position:end] * 2 + text[end:]


def _mutate_messages(rng: random.Random, messages: list[str | bytes]) -> list[str | bytes]:
    messages = list(messages)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(5)
        index = rng.randrange(len(messages))
        message = messages[index]
        if kind <= 1 and isinstance(message, str):
            messages[index] = _mutate_text(rng, message)
        elif kind == 2 and len(messages) > 1:
            del messages[index]
        elif kind == 3:
            messages.insert(index + rng.randint(0, 1), rng.choice(EXTRA_MESSAGES))
        else:
            messages[index] = (
                message.decode("latin-1")
                if isinstance(message, bytes)
                else message.encode("utf-8", "surrogatepass")
            )
    return messages


SOCKETIO_SEEDS: list[list[str | bytes]] = [[text, *attachments] for _, text, attachments in GOLDEN]
for _packet in ROUND_TRIPS:
    _text, _attachments = encode(_packet)
    if len(_text) < 500:
        SOCKETIO_SEEDS.append([_text, *_attachments])


def _check_socketio(messages: list[str | bytes]) -> None:
    decoder = Decoder(max_attachments=3, max_depth=4)
    result: Packet | None = None
    try:
        for message in messages:
            result = decoder.feed(message)
    except RemoteProtocolError:
        return
    if result is None:
        return
    # what we accept, we can write back, and read again to the same wire form (1e400 reads as inf, which
    # JSON.stringify and we write as null: compare the wire forms, not the values)
    text, attachments = encode(result)
    again = Decoder(max_attachments=3, max_depth=4)
    decoded = again.feed(text)
    for attachment in attachments:
        decoded = again.feed(attachment)
    assert decoded is not None
    assert encode(decoded) == (text, attachments)


@pytest.mark.parametrize("seed", range(4))
def test_socketio_decoder_fuzz(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        _check_socketio(_mutate_messages(rng, rng.choice(SOCKETIO_SEEDS)))


def _only(errors: type[Exception], function: Callable[[str], object], argument: str) -> object | None:
    try:
        return function(argument)
    except errors:
        return None


def test_socketio_decoder_every_truncation_and_deletion() -> None:
    for messages in SOCKETIO_SEEDS:
        text = messages[0]
        assert isinstance(text, str)
        for i in range(len(text) + 1):
            _check_socketio([text[:i], *messages[1:]])
            _check_socketio([text[:i] + text[i + 1 :], *messages[1:]])


def test_engineio_decoders_fuzz() -> None:
    rng = random.Random(7)
    ws_seeds = [wire for _, wire in WS_VECTORS if isinstance(wire, str)]
    payload_seeds = [body for _, body in PAYLOAD_VECTORS]
    for _ in range(3000):
        message = _mutate_text(rng, rng.choice(ws_seeds))
        packet = _only(RemoteProtocolError, engineio.decode_ws, message)
        if isinstance(packet, engineio.EnginePacket):
            assert engineio.decode_ws(engineio.encode_ws(packet)) == packet
        body = _mutate_text(rng, rng.choice(payload_seeds))
        packets = _only(RemoteProtocolError, partial(engineio.decode_payload, max_packets=5), body)
        if isinstance(packets, list):
            assert 1 <= len(packets) <= 5
            if not any(isinstance(p.data, str) and "\x1e" in p.data for p in packets):
                assert engineio.decode_payload(engineio.encode_payload(packets)) == packets
        data = _mutate_text(rng, SPEC_OPEN)
        _only(RemoteProtocolError, engineio.parse_open, data)


def test_jsonjs_loads_fuzz() -> None:
    rng = random.Random(11)
    seeds = [
        SPEC_OPEN,
        '["chat",{"user":"ann","text":"hello","n":3}]',
        '[1.5,-0,1e-7,"\\u00e9\\ud800",true,null]',
    ]
    for _ in range(3000):
        text = _mutate_text(rng, rng.choice(seeds))
        value = _only(LocalProtocolError, partial(jsonjs.loads, max_depth=3), text)
        if value is not None:
            jsonjs.dumps(value)
