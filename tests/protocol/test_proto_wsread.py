"""The server's frame reader (``protocol.wsread.FrameReader``): the examples of RFC 6455 5.7, every refusal
by name, and a differential test against wsproto's server-side frame parser (the reader it replaces), which
must read the same messages, see the same pings and make the same close decision with the same code,
whatever the frames, their masks and where the reads cut the stream.
"""

from __future__ import annotations

import sys
import tracemalloc
from dataclasses import dataclass, field
from typing import Final

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from trio_rooms.protocol.websocket import pong_frame
from trio_rooms.protocol.wsread import FrameReader, ReadEvent, unmask

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
KEY: Final = b"\x37\xfa\x21\x3d"  # the masking key of RFC 6455 5.7
UNLIMITED: Final = 2**64
DIFFERENTIAL: Final = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bytes | None = KEY,
    rsv: int = 0,
    form: int | None = None,
    claim: int | None = None,
) -> bytes:
    """A client frame: masked with ``mask`` (None: unmasked), its length in the shortest form unless
    ``form`` (7, 16 or 64) says which, ``claim`` a length to state instead of the payload's."""
    length = len(payload) if claim is None else claim
    if form is None:
        form = 7 if length < 126 else 16 if length < 0x10000 else 64
    head = bytes(((0x80 if fin else 0) | rsv << 4 | opcode,))
    bit = 0x80 if mask is not None else 0
    if form == 7:
        head += bytes((bit | length,))
    elif form == 16:
        head += bytes((bit | 126,)) + length.to_bytes(2, "big")
    else:
        head += bytes((bit | 127,)) + length.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + unmask(payload, mask)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


End = tuple[str, int, str] | tuple[str, int] | None


@dataclass
class Outcome:
    """What a reader made of a stream: the whole messages, the pings in order, and how it ended:
    ("closed", code, reason) for a valid close frame, ("failed", code) for a refusal, None if open."""

    messages: list[str | bytes] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    end: End = None


def read_ours(chunks: list[bytes], *, max_message: int = UNLIMITED, pause_every: int = 1) -> Outcome:
    """``FrameReader`` fed ``chunks``; with ``pause_every=1`` it stops after each frame, so that every
    ping is seen (with more, a run of pings leaves only the last one)."""
    reader = FrameReader(max_message=max_message, pause_every=pause_every)
    outcome = Outcome()

    def take_ping() -> None:
        if reader.ping is not None:
            outcome.pings.append(reader.ping)
            reader.ping = None

    for chunk in chunks:
        reader.receive_data(chunk)
        while (event := reader.next_message()) is not ReadEvent.NEED_DATA:
            take_ping()
            if event is ReadEvent.CLOSED:
                outcome.end = ("closed", reader.close_code, reader.close_reason)
                return outcome
            if event is ReadEvent.FAILED:
                outcome.end = ("failed", reader.close_code)
                return outcome
            if not isinstance(event, ReadEvent):
                outcome.messages.append(event)
        take_ping()
    return outcome


def read_wsproto(chunks: list[bytes]) -> Outcome:
    """wsproto's server-side frame parser fed ``chunks``, its frames gathered into messages."""
    protocol = FrameProtocol(client=False, extensions=[])
    outcome = Outcome()
    parts: list[str | bytes] = []
    try:
        for chunk in chunks:
            protocol.receive_bytes(chunk)
            for received in protocol.received_frames():
                if received.opcode is Opcode.PING:
                    assert isinstance(received.payload, bytes | bytearray)
                    outcome.pings.append(bytes(received.payload))
                elif received.opcode is Opcode.CLOSE:
                    assert isinstance(received.payload, tuple)
                    code, reason = received.payload
                    outcome.end = ("closed", int(code), reason)
                    return outcome
                elif received.opcode is not Opcode.PONG:
                    assert not isinstance(received.payload, tuple)
                    parts.append(received.payload)
                    if received.message_finished:
                        text = received.opcode is Opcode.TEXT
                        outcome.messages.append("".join(parts) if text else b"".join(parts))  # type: ignore[arg-type]
                        parts = []
    except ParseFailed as exc:
        outcome.end = ("failed", int(exc.code))
    return outcome


def read_one(data: bytes, **options: int) -> Outcome:
    return read_ours([data], **options)


# ---------------------------------------------------------------------------------------------------------
# RFC 6455 5.7: the examples
# ---------------------------------------------------------------------------------------------------------

HELLO_MASKED: Final = bytes.fromhex("818537fa213d7f9f4d5158")


def test_rfc_single_frame_masked_text() -> None:
    assert frame(TEXT, b"Hello") == HELLO_MASKED
    assert read_one(HELLO_MASKED).messages == ["Hello"]


def test_rfc_single_frame_unmasked_text_is_refused_from_a_client() -> None:
    assert read_one(bytes.fromhex("810548656c6c6f")).end == ("failed", 1002)


def test_rfc_fragmented_text() -> None:
    unmasked = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
    assert read_one(unmasked).end == ("failed", 1002)
    masked = frame(TEXT, b"Hel", fin=False) + frame(CONTINUATION, b"lo")
    assert masked[:2] == b"\x01\x83" and masked[9:11] == b"\x80\x82"
    assert read_one(masked).messages == ["Hello"]


def test_rfc_ping_and_pong() -> None:
    assert read_one(bytes.fromhex("890548656c6c6f")).end == ("failed", 1002)  # a server's (unmasked) ping
    ping = frame(PING, b"Hello")
    assert ping == b"\x89" + HELLO_MASKED[1:]
    assert read_one(ping).pings == [b"Hello"]
    assert pong_frame(b"Hello") == bytes.fromhex("8a0548656c6c6f")  # the answer: the RFC's unmasked pong
    masked_pong = bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert read_one(masked_pong + HELLO_MASKED) == Outcome(messages=["Hello"])


@pytest.mark.parametrize(("size", "head"), [(256, "82fe0100"), (65_536, "82ff0000000000010000")])
def test_rfc_binary_lengths(size: int, head: str) -> None:
    payload = bytes(i % 251 for i in range(size))
    data = frame(BINARY, payload)
    assert data.startswith(bytes.fromhex(head) + KEY)
    assert read_one(data).messages == [payload]
    assert read_ours([data[i : i + 1000] for i in range(0, len(data), 1000)]).messages == [payload]


# ---------------------------------------------------------------------------------------------------------
# Refusals, by name
# ---------------------------------------------------------------------------------------------------------

REFUSED = [
    pytest.param(frame(TEXT, b"hi", mask=None), 1002, id="unmasked"),
    pytest.param(frame(BINARY, b"", mask=None), 1002, id="unmasked-empty"),
    pytest.param(frame(TEXT, b"hi", rsv=4), 1002, id="rsv1"),
    pytest.param(frame(TEXT, b"hi", rsv=2), 1002, id="rsv2"),
    pytest.param(frame(TEXT, b"hi", rsv=1), 1002, id="rsv3"),
    pytest.param(frame(PING, b"", rsv=4), 1002, id="rsv1-ping"),
    *[pytest.param(frame(op, b"x"), 1002, id=f"opcode-{op:#x}") for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xF)],
    pytest.param(frame(PING, b"x" * 126), 1002, id="ping-126-bytes"),
    pytest.param(frame(PING, b"x", form=16), 1002, id="ping-16-bit-length"),
    pytest.param(frame(CLOSE, b"x" * 126), 1002, id="close-126-bytes"),
    pytest.param(frame(PING, b"x", fin=False), 1002, id="fragmented-ping"),
    pytest.param(frame(CLOSE, b"", fin=False), 1002, id="fragmented-close"),
    pytest.param(frame(TEXT, b"x", form=16), 1002, id="16-bit-length-under-126"),
    pytest.param(frame(TEXT, b"x" * 300, form=64), 1002, id="64-bit-length-under-65536"),
    pytest.param(frame(BINARY, b"", form=16, claim=125), 1002, id="16-bit-length-125-no-payload"),
    pytest.param(frame(BINARY, b"", form=64, claim=0xFFFF), 1002, id="64-bit-length-65535-no-payload"),
    pytest.param(frame(BINARY, b"", claim=2**63), 1002, id="64-bit-length-top-bit"),
    pytest.param(frame(BINARY, b"", claim=2**64 - 1), 1002, id="64-bit-length-all-bits"),
    pytest.param(frame(CONTINUATION, b"x"), 1002, id="continuation-without-start"),
    pytest.param(frame(CONTINUATION, b"", fin=False), 1002, id="empty-continuation-without-start"),
    pytest.param(frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002, id="text-inside-a-message"),
    pytest.param(frame(BINARY, b"a", fin=False) + frame(TEXT, b"b"), 1002, id="text-inside-binary"),
    pytest.param(frame(TEXT, b"a") + frame(CONTINUATION, b"b"), 1002, id="continuation-after-the-end"),
    pytest.param(frame(CLOSE, b"\x03"), 1002, id="close-1-byte"),
    *[
        pytest.param(frame(CLOSE, close_payload(code)), 1002, id=f"close-code-{code}")
        for code in (0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2000, 2999, 5000, 65535)
    ],
    pytest.param(frame(CLOSE, close_payload(1000, b"\xff")), 1007, id="close-reason-not-utf8"),
    pytest.param(frame(TEXT, b"\xff"), 1007, id="text-not-utf8"),
    pytest.param(frame(TEXT, b"\xed\xa0\x80"), 1007, id="text-surrogate"),
    pytest.param(
        frame(TEXT, b"\xc3", fin=False) + frame(CONTINUATION, b"\x28"), 1007, id="utf8-across-fragments"
    ),
    pytest.param(
        frame(TEXT, b"ok\xe2\x82", fin=False) + frame(CONTINUATION, b""), 1007, id="utf8-cut-at-end"
    ),
    pytest.param(frame(TEXT, b"ok\xe2\x82"), 1007, id="utf8-cut-in-one-frame"),
]


@pytest.mark.parametrize(("data", "code"), REFUSED)
def test_refused(data: bytes, code: int) -> None:
    """Each violation fails the reading with its code, in one read and byte by byte, as wsproto does."""
    assert read_one(data).end == ("failed", code)
    assert read_ours([data[i : i + 1] for i in range(len(data))]).end == ("failed", code)
    assert read_wsproto([data]).end == ("failed", code)


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 4999]
)
def test_valid_close_codes(code: int) -> None:
    reason = "bye é".encode()
    assert read_one(frame(CLOSE, close_payload(code, reason))).end == ("closed", code, "bye é")


def test_empty_close_is_1005() -> None:
    assert read_one(frame(CLOSE)).end == ("closed", 1005, "")


def test_utf8_split_across_fragments_and_reads() -> None:
    text = "é€😀" * 3
    data = text.encode()
    frames = b"".join(
        frame(CONTINUATION if i else TEXT, data[i : i + 1], fin=i == len(data) - 1) for i in range(len(data))
    )
    assert read_one(frames).messages == [text]
    assert read_ours([frames[i : i + 3] for i in range(0, len(frames), 3)]).messages == [text]


# ---------------------------------------------------------------------------------------------------------
# The size limit: checked from the headers, counted in bytes
# ---------------------------------------------------------------------------------------------------------


def test_message_at_the_limit_is_read_and_one_byte_more_is_refused() -> None:
    assert read_one(frame(TEXT, b"x" * 10), max_message=10).messages == ["x" * 10]
    assert read_one(frame(TEXT, b"x" * 11), max_message=10).end == ("failed", 1009)
    assert read_one(frame(BINARY, b"x" * 11), max_message=10).end == ("failed", 1009)


def test_text_is_counted_in_utf8_bytes() -> None:
    assert read_one(frame(TEXT, ("é" * 5).encode()), max_message=10).messages == ["é" * 5]
    assert read_one(frame(TEXT, ("é" * 6).encode()), max_message=10).end == ("failed", 1009)


def test_fragments_are_counted_together_and_refused_from_the_header() -> None:
    fragments = frame(BINARY, b"x" * 6, fin=False) + frame(CONTINUATION, b"y" * 4)
    assert read_one(fragments, max_message=10).messages == [b"x" * 6 + b"y" * 4]
    too_big = frame(BINARY, b"x" * 6, fin=False) + frame(CONTINUATION, b"y" * 5)
    header_only = too_big[: len(too_big) - 5]  # the payload of the last fragment is not there yet
    assert read_one(header_only, max_message=10).end == ("failed", 1009)


def test_a_huge_claim_is_refused_before_its_payload() -> None:
    head = frame(BINARY, b"", claim=2**63 - 1)
    assert read_one(head, max_message=1_000_000).end == ("failed", 1009)
    assert read_one(frame(TEXT, b"", claim=70_000), max_message=65_536).end == ("failed", 1009)


def test_control_frames_do_not_count() -> None:
    data = frame(TEXT, b"x" * 5, fin=False) + frame(PING, b"p" * 125) + frame(CONTINUATION, b"y" * 5)
    assert read_one(data, max_message=10).messages == ["x" * 5 + "y" * 5]


# ---------------------------------------------------------------------------------------------------------
# Pings, pongs, pauses, the end
# ---------------------------------------------------------------------------------------------------------


def test_a_run_of_pings_leaves_the_last() -> None:
    reader = FrameReader(max_message=100)
    reader.receive_data(frame(PING, b"1") + frame(PONG, b"x") + frame(PING, b"2") + frame(TEXT, b"m"))
    assert reader.next_message() == "m"
    assert reader.ping == b"2"


def test_pause_every_and_resume() -> None:
    reader = FrameReader(max_message=100, pause_every=3)
    reader.receive_data(frame(PING, b"a") * 7 + frame(TEXT, b"m"))
    assert reader.next_message() is ReadEvent.PAUSE
    assert reader.next_message() is ReadEvent.PAUSE
    assert reader.next_message() == "m"  # the 7th ping and the message: 2 frames of the next 3
    reader.receive_data(frame(PING, b"b") * 3 + frame(TEXT, b"n"))  # a read restores the budget
    assert reader.next_message() is ReadEvent.PAUSE
    assert reader.next_message() == "n"
    assert reader.next_message() is ReadEvent.NEED_DATA


def test_the_end_is_final() -> None:
    reader = FrameReader(max_message=100)
    reader.receive_data(frame(TEXT, b"a") + frame(CLOSE, close_payload(1000)) + frame(TEXT, b"b"))
    assert reader.next_message() == "a"
    assert reader.next_message() is ReadEvent.CLOSED
    reader.receive_data(frame(TEXT, b"c"))
    assert reader.next_message() is ReadEvent.CLOSED
    assert (reader.close_code, reader.close_reason) == (1000, "")
    failed = FrameReader(max_message=100)
    failed.receive_data(frame(TEXT, b"a", mask=None))
    assert failed.next_message() is ReadEvent.FAILED
    failed.receive_data(frame(TEXT, b"c"))
    assert failed.next_message() is ReadEvent.FAILED
    assert failed.close_code == 1002


def test_bytes_fed_before_need_data_are_kept() -> None:
    reader = FrameReader(max_message=100)
    data = frame(TEXT, b"one") + frame(TEXT, b"two")
    reader.receive_data(data[:4])
    reader.receive_data(data[4:12])
    reader.receive_data(data[12:])
    assert [reader.next_message(), reader.next_message(), reader.next_message()] == [
        "one",
        "two",
        ReadEvent.NEED_DATA,
    ]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_message"):
        FrameReader(max_message=-1)
    with pytest.raises(ValueError, match="pause_every"):
        FrameReader(max_message=1, pause_every=-1)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 511, 512, 513, 4096, 70_001])
def test_unmask_is_an_involution_with_rotated_keys(size: int) -> None:
    data = bytes(i * 7 % 256 for i in range(size))
    masked = unmask(data, KEY)
    assert masked == bytes(b ^ KEY[i % 4] for i, b in enumerate(data))
    assert unmask(masked, KEY) == data
    for cut in (1, 2, 3, 5):  # unmasked from an offset: the key rotated by it
        if cut < size:
            rotated = KEY[cut % 4 :] + KEY[: cut % 4]
            assert unmask(masked[cut:], rotated) == data[cut:]


def test_an_idle_reader_holds_only_itself() -> None:
    """Between messages, a reader holds no buffer, no parts and no UTF-8 decoder: 1,000 readers that read a
    fragmented text message cut across reads take what 1,000 new readers take."""
    message = (
        frame(TEXT, "é".encode() * 20, fin=False)
        + frame(PING, b"p")
        + frame(CONTINUATION, "😀".encode() * 20)
    )

    def readers(read: bool) -> int:
        tracemalloc.start()
        try:
            kept = []
            for _ in range(1_000):
                reader = FrameReader(max_message=1_000, pause_every=64)
                if read:
                    reader.receive_data(message[:7])
                    assert reader.next_message() is ReadEvent.NEED_DATA
                    reader.receive_data(message[7:50])
                    assert reader.next_message() is ReadEvent.NEED_DATA
                    reader.receive_data(message[50:])
                    assert reader.next_message() == "é" * 20 + "😀" * 20
                    assert reader.next_message() is ReadEvent.NEED_DATA
                    reader.ping = None
                kept.append(reader)
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    idle, fresh = readers(read=True), readers(read=False)
    assert idle <= fresh + 1_000  # a few shared small objects at most, not one per reader
    assert fresh / 1_000 < sys.getsizeof(FrameReader(max_message=1)) + 64


# ---------------------------------------------------------------------------------------------------------
# Differential: the same decisions as wsproto
# ---------------------------------------------------------------------------------------------------------

masks = st.binary(min_size=4, max_size=4)
control_payloads = st.binary(max_size=125)
VALID_CODES: Final = (
    1000,
    1001,
    1002,
    1003,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    3000,
    3999,
    4000,
    4999,
)
INVALID_CODES: Final = (0, 999, 1004, 1005, 1006, 1014, 1015, 1100, 2999, 5000)


@st.composite
def payloads(draw: st.DrawFn, text: bool) -> bytes:
    size = draw(st.sampled_from(["small", "small", "small", "medium", "large"]))
    if size == "large":
        n = draw(st.integers(65_536, 70_000))
        return ("é€x" * (n // 6 + 1)).encode() if text else bytes(i % 253 for i in range(n))
    top = 40 if size == "small" else 700
    if text:
        return draw(st.text(max_size=top)).encode()
    return draw(st.binary(max_size=top))


@st.composite
def controls(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from([PING, PING, PONG]))
    return frame(opcode, draw(control_payloads), mask=draw(masks))


@st.composite
def messages(draw: st.DrawFn) -> list[bytes]:
    """A text or binary message in 1-5 fragments (cut anywhere, even in a UTF-8 sequence), control frames
    between them."""
    text = draw(st.booleans())
    payload = draw(payloads(text))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=4)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    out: list[bytes] = []
    for i, piece in enumerate(pieces):
        if i and draw(st.integers(0, 3)) == 0:
            out.append(draw(controls()))
        opcode = CONTINUATION if i else TEXT if text else BINARY
        out.append(frame(opcode, piece, fin=i == len(pieces) - 1, mask=draw(masks)))
    return out


@st.composite
def violations(draw: st.DrawFn) -> bytes:
    """One frame (or two) that ends the reading: a close frame, valid or not, or a violation."""
    mask = draw(masks)
    kind = draw(
        st.sampled_from(
            [
                "close",
                "close-empty",
                "close-bad-code",
                "close-1-byte",
                "close-bad-reason",
                "unmasked",
                "rsv",
                "opcode",
                "long-control",
                "fragmented-control",
                "continuation",
                "non-minimal-length",
                "top-bit",
                "bad-utf8",
                "unfinished-message",
            ]
        )
    )
    if kind == "close":
        reason = draw(st.text(max_size=20)).encode()[:123]
        return frame(CLOSE, close_payload(draw(st.sampled_from(VALID_CODES)), reason), mask=mask)
    if kind == "close-empty":
        return frame(CLOSE, mask=mask)
    if kind == "close-bad-code":
        return frame(CLOSE, close_payload(draw(st.sampled_from(INVALID_CODES))), mask=mask)
    if kind == "close-1-byte":
        return frame(CLOSE, b"\x03", mask=mask)
    if kind == "close-bad-reason":
        return frame(CLOSE, close_payload(1000, b"ok\xc3\x28"), mask=mask)
    if kind == "unmasked":
        return frame(draw(st.sampled_from([TEXT, BINARY, PING, CLOSE])), draw(control_payloads), mask=None)
    if kind == "rsv":
        return frame(draw(st.sampled_from([TEXT, PING])), b"x", rsv=draw(st.integers(1, 7)), mask=mask)
    if kind == "opcode":
        return frame(draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])), b"x", mask=mask)
    if kind == "long-control":
        return frame(
            draw(st.sampled_from([PING, PONG, CLOSE])), b"p" * draw(st.integers(126, 300)), mask=mask
        )
    if kind == "fragmented-control":
        return frame(draw(st.sampled_from([PING, PONG, CLOSE])), b"", fin=False, mask=mask)
    if kind == "continuation":
        return frame(CONTINUATION, draw(control_payloads), fin=draw(st.booleans()), mask=mask)
    if kind == "non-minimal-length":
        form = draw(st.sampled_from([16, 64]))
        claim = draw(st.integers(0, 125 if form == 16 else 0xFFFF))  # refused from the header
        return frame(BINARY, b"x" * min(claim, 300), form=form, claim=claim, mask=mask)
    if kind == "top-bit":
        return frame(BINARY, b"", claim=draw(st.integers(2**63, 2**64 - 1)), mask=mask)
    if kind == "bad-utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]))
        good = draw(st.text(max_size=10)).encode()
        if draw(st.booleans()):
            return frame(TEXT, good + bad, mask=mask)
        return frame(TEXT, good + bad[:1], fin=False, mask=mask) + frame(CONTINUATION, bad[1:], mask=mask)
    return frame(TEXT, b"a", fin=False, mask=mask) + frame(
        draw(st.sampled_from([TEXT, BINARY])), b"b", mask=mask
    )


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Messages and control frames, maybe a frame that ends the reading, maybe frames after it."""
    frames: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        frames += draw(messages()) if draw(st.integers(0, 3)) else [draw(controls())]
    if draw(st.booleans()):
        frames.insert(draw(st.integers(0, len(frames))), draw(violations()))
    return b"".join(frames)


@st.composite
def cut(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut into reads at random points."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@DIFFERENTIAL
@given(st.data())
def test_same_messages_pings_and_close_as_wsproto(data: st.DataObject) -> None:
    stream = data.draw(streams())
    chunks = data.draw(cut(stream))
    expected = read_wsproto(chunks)
    event(f"end: {expected.end[:2] if expected.end else None}; {min(len(expected.messages), 3)}+ messages")
    assert read_ours(chunks) == expected
    everything = read_ours(chunks, pause_every=0)
    assert (everything.messages, everything.end) == (expected.messages, expected.end)
    assert everything.pings[-1:] == expected.pings[-1:]


@DIFFERENTIAL
@given(st.data())
def test_a_cut_stream_is_decided_no_later_than_by_wsproto(data: st.DataObject) -> None:
    """A stream cut short: the same messages; where wsproto decided, the same decision (the reader may
    decide sooner: it checks a frame's place in the message and its size from the header alone)."""
    stream = data.draw(streams())
    stream = stream[: data.draw(st.integers(0, len(stream)))]
    chunks = data.draw(cut(stream))
    expected = read_wsproto(chunks)
    ours = read_ours(chunks)
    assert ours.messages == expected.messages
    if expected.end is not None:
        assert ours.end == expected.end
    assert ours.pings == expected.pings
