"""Server WebSocket frames, read back by wsproto's client-side frame parser."""

from __future__ import annotations

import pytest
from wsproto.frame_protocol import CloseReason, Frame, FrameProtocol, Opcode

from trio_rooms.errors import LocalProtocolError
from trio_rooms.protocol.websocket import binary_frame, close_frame, pong_frame, text_frame

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70_000]


def _parse(data: bytes) -> Frame:
    protocol = FrameProtocol(client=True, extensions=[])
    protocol.receive_bytes(data)
    frames = list(protocol.received_frames())
    assert len(frames) == 1
    frame = frames[0]
    assert frame.frame_finished and frame.message_finished
    return frame


@pytest.mark.parametrize("length", LENGTHS)
def test_text_frame_lengths(length: int) -> None:
    payload = "x" * length
    frame = _parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT
    assert frame.payload == payload


@pytest.mark.parametrize("length", LENGTHS)
def test_binary_frame_lengths(length: int) -> None:
    payload = bytes(i % 251 for i in range(length))
    frame = _parse(binary_frame(payload))
    assert frame.opcode is Opcode.BINARY
    assert frame.payload == payload


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_length_forms_exact_bytes(length: int, header: bytes) -> None:
    assert text_frame("a" * length) == header + b"a" * length
    assert binary_frame(b"a" * length) == bytes((0x82,)) + header[1:] + b"a" * length


def test_text_frame_utf8() -> None:
    text = '42["é€😀"]' * 30
    frame = _parse(text_frame(text))
    assert frame.payload == text
    assert text_frame("é") == b"\x81\x02\xc3\xa9"


def test_text_frame_rejects_lone_surrogates() -> None:
    with pytest.raises(LocalProtocolError):
        text_frame("\ud800")


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, ""), (1001, "going away"), (1008, "é" * 61), (1011, "x" * 123), (3000, ""), (4999, "private")],
)
def test_close_frame(code: int, reason: str) -> None:
    frame = _parse(close_frame(code, reason))
    assert frame.opcode is Opcode.CLOSE
    assert frame.payload == (code, reason)
    assert isinstance(frame.payload[0], int)


def test_close_frame_default() -> None:
    assert close_frame() == b"\x88\x02\x03\xe8"
    assert _parse(close_frame()).payload == (CloseReason.NORMAL_CLOSURE, "")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (999, ""),
        (1004, ""),
        (1005, ""),
        (1006, ""),
        (1015, ""),
        (2000, ""),
        (5000, ""),
        (1000, "x" * 124),
        (1000, "\udc00"),
    ],
)
def test_close_frame_rejects(code: int, reason: str) -> None:
    with pytest.raises(LocalProtocolError):
        close_frame(code, reason)


@pytest.mark.parametrize("length", [0, 1, 125])
def test_pong_frame(length: int) -> None:
    frame = _parse(pong_frame(b"p" * length))
    assert frame.opcode is Opcode.PONG
    assert frame.payload == b"p" * length


def test_pong_frame_rejects_long_payload() -> None:
    with pytest.raises(LocalProtocolError):
        pong_frame(b"p" * 126)


def test_frames_concatenate_into_a_stream() -> None:
    protocol = FrameProtocol(client=True, extensions=[])
    protocol.receive_bytes(text_frame('42["a"]') + binary_frame(b"\x01") + pong_frame(b"") + text_frame("3"))
    assert [(f.opcode, f.payload) for f in protocol.received_frames()] == [
        (Opcode.TEXT, '42["a"]'),
        (Opcode.BINARY, b"\x01"),
        (Opcode.PONG, b""),
        (Opcode.TEXT, "3"),
    ]
