"""Worst cases of every sans-IO decoder of a peer's bytes (tests/helpers/worst_shapes.py), at 1 KB,
64 KB and the payload limit (max_payload, 1 MB): each is decoded or refused with the documented
error, within the hang guard.

The hang guard (``elapsed < HANG_GUARD``) is not a performance figure: a linear decoder meets it many times
over at 1 MB, a quadratic one cannot (issue 11: 32 KB took the JSON depth check 2.6 s, 96 KB 43 s).
"""

from __future__ import annotations

import base64
import gc
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import pytest
from helpers.worst_shapes import (
    HTTP1_HEAD_SHAPES,
    SHAPES,
    TEXT,
    WS_FRAME_SHAPES,
    FrameShape,
    Shape,
    receive_frames,
    receive_over_polling,
    receive_over_websocket,
    shape,
    ws_frame,
)

from trio_rooms.errors import LocalProtocolError, RemoteProtocolError
from trio_rooms.protocol import engineio, jsonjs
from trio_rooms.protocol.cluster.messages import ClusterMessage, MessageError, Request, decode_any
from trio_rooms.protocol.cluster.streams import StreamsWire, decode_session
from trio_rooms.protocol.http1 import FALLBACK, NEED_DATA, SimpleHead, parse_simple_head

from .test_proto_http1 import HEAD_LIMIT
from .test_proto_http1 import check as check_against_h11

#: Seconds; see the module's docstring.
HANG_GUARD: Final = 5.0
MAX_PAYLOAD: Final = engineio.DEFAULT_MAX_PAYLOAD
SIZES: Final = (1_000, 64_000, MAX_PAYLOAD)

STREAMS_WIRE: Final = StreamsWire("socket.io", "/")
CASES = [pytest.param(s, size, id=f"{s.name}-{size}") for s in SHAPES for size in SIZES]


def guarded(decode: Callable[[], Any], errors: tuple[type[Exception], ...]) -> bool:
    """Run ``decode`` under the hang guard; True when it refused the input with one of ``errors``."""
    start = time.perf_counter()
    try:
        decode()
    except errors:
        refused = True
    else:
        refused = False
    elapsed = time.perf_counter() - start
    assert elapsed < HANG_GUARD, f"{elapsed:.1f} s: not linear"
    return refused


def check(expected: bool | None, refused: bool) -> None:
    if expected is not None:
        assert refused == expected, "refused" if refused else "accepted"


@pytest.mark.parametrize(("shape", "size"), CASES)
def test_worst_case_is_decoded_or_refused_in_linear_time(shape: Shape, size: int) -> None:
    messages = shape.build(size)
    wire = messages[0]
    assert len(wire) <= size, "the shape must fit the size"
    if shape.kind == "socketio":
        check(shape.refused, guarded(lambda: receive_over_websocket(messages), (RemoteProtocolError,)))
        check(shape.refused, guarded(lambda: receive_over_polling(messages), (RemoteProtocolError,)))
    elif shape.kind == "payload":
        assert isinstance(wire, str)
        check(shape.refused, guarded(lambda: engineio.decode_payload(wire), (RemoteProtocolError,)))
    elif shape.kind == "open":
        assert isinstance(wire, str)
        check(shape.refused, guarded(lambda: engineio.parse_open(wire), (RemoteProtocolError,)))
    else:
        assert isinstance(wire, bytes)
        check(shape.refused, guarded(lambda: decode_any(wire), (MessageError,)))
        guarded(lambda: ClusterMessage.decode(wire), (MessageError,))
        guarded(lambda: Request.decode(wire, "/"), (MessageError,))
        # the Redis Streams adapter's entry (JSON data, or base64 of msgpack) and stored session
        data = wire if wire[:1] == b"{" else base64.b64encode(wire)
        fields = {b"uid": b"peer", b"nsp": b"/", b"type": b"3", b"data": data}
        guarded(lambda: STREAMS_WIRE.decode_entry(fields), (MessageError,))
        guarded(lambda: STREAMS_WIRE.missed_packet("1-1", fields, frozenset({"r"})), (MessageError,))
        guarded(lambda: decode_session(base64.b64encode(wire)), (MessageError,))


FRAME_CASES = [
    pytest.param(s, size, read, id=f"{s.name}-{size}-{read or 'one'}")
    for s in WS_FRAME_SHAPES
    for size in SIZES
    for read in (0, 65_536, 1_021)
]


@pytest.mark.parametrize(("frames", "size", "read_size"), FRAME_CASES)
def test_websocket_frame_reader_worst_case_in_linear_time(
    frames: FrameShape, size: int, read_size: int
) -> None:
    """The server's frame reader (``protocol.wsread``) on its worst inputs, in one read, in 64 KiB reads,
    and in reads of 1,021 bytes (a prime: the cuts fall anywhere in the frames): each input is read or
    refused with its close code, within the hang guard."""
    data = frames.build(size)
    assert len(data) <= size, "the shape must fit the size"
    start = time.perf_counter()
    _messages, code = receive_frames(data, read_size or len(data), MAX_PAYLOAD)
    elapsed = time.perf_counter() - start
    assert elapsed < HANG_GUARD, f"{elapsed:.1f} s: not linear"
    assert code == frames.close_code


def test_websocket_frame_reader_10_000_pings_in_one_read() -> None:
    """10,000 empty pings, then a message, in one read: the message is read, well within the hang guard."""
    data = WS_FRAME_SHAPES[0].build(6 * 10_000) + ws_frame(TEXT, b"4end")
    start = time.perf_counter()
    assert receive_frames(data, len(data), MAX_PAYLOAD) == (1, None)
    assert time.perf_counter() - start < HANG_GUARD


#: The lean head reader's outcome for each shape (protocol/http1.py): when the shape fits the head limit,
#: and when it does not ("need": NEED_DATA; "head": a SimpleHead; "fallback": FALLBACK, h11 answers).
HTTP1_OUTCOMES: Final = {
    "http1-many-short-headers": ("fallback", "fallback"),
    "http1-crlf-run": ("head", "head"),
    "http1-crlf-fragments": ("fallback", "fallback"),
    "http1-huge-target": ("head", "fallback"),
    "http1-spaces": ("head", "fallback"),
    "http1-spaces-then-bad-name": ("fallback", "fallback"),
    "http1-bare-lfs": ("fallback", "fallback"),
    "http1-no-terminator": ("need", "fallback"),
    "http1-no-empty-line": ("need", "fallback"),
}
HTTP1_CASES = [pytest.param(name, size, id=f"{name}-{size}") for name in HTTP1_HEAD_SHAPES for size in SIZES]


def test_every_http1_shape_has_an_outcome() -> None:
    assert set(HTTP1_OUTCOMES) == set(HTTP1_HEAD_SHAPES)


@pytest.mark.parametrize(("name", "size"), HTTP1_CASES)
def test_http1_worst_head_is_read_or_falls_back_in_linear_time(name: str, size: int) -> None:
    """At the server's head limit (16 KiB: never more examined) and with a limit past the whole input (the
    reader's own time, linear), within the hang guard; what it reads, h11 reads the same (1 KB)."""
    data = HTTP1_HEAD_SHAPES[name](size)
    assert len(data) <= size, "the shape must fit the size"
    for max_head in (HEAD_LIMIT, len(data) + 1):
        start = time.perf_counter()
        result = parse_simple_head(data, max_head=max_head)
        elapsed = time.perf_counter() - start
        assert elapsed < HANG_GUARD, f"{elapsed:.1f} s: not linear"
        fits, over = HTTP1_OUTCOMES[name]
        outcome = "head" if isinstance(result, SimpleHead) else "need" if result is NEED_DATA else "fallback"
        assert outcome == (fits if len(data) < max_head else over), max_head
        if isinstance(result, SimpleHead):
            assert result.body_start <= max_head
    if size <= HEAD_LIMIT:
        check_against_h11(data)


def test_http1_fallback_is_cheap_for_a_megabyte_without_end() -> None:
    """1 MB without an empty line at the 16 KiB limit: FALLBACK at once (nothing past the limit read)."""
    data = HTTP1_HEAD_SHAPES["http1-no-terminator"](MAX_PAYLOAD)
    assert parse_simple_head(data, max_head=HEAD_LIMIT) is FALLBACK


@pytest.mark.parametrize("size", SIZES)
def test_jsonjs_issue_11_shape_in_linear_time(size: int) -> None:
    """The shape of issue 11 straight into ``jsonjs.loads``: more than ``max_depth`` opening brackets,
    then a string of escaped quotes, closed or not (was quadratic: 32 KB took 2.6 s)."""
    quotes = '\\"' * ((size - 50) // 2)
    for text in ("[" * 40 + '"' + quotes, "[" * 40 + '"' + quotes + '"', '["' + quotes + '",' + "[]," * 40):
        assert guarded(partial(jsonjs.loads, text), (LocalProtocolError,))


def test_jsonjs_depth_check_is_exact_with_escapes() -> None:
    """The linear depth check still reads strings as JSON does: escaped quotes and backslash runs."""
    assert jsonjs.loads('["\\\\\\"[[[[", [[1]]]', max_depth=3) == ['\\"[[[[', [[1]]]
    assert jsonjs.loads('["\\\\", ' + "[" * 31 + "]" * 31 + "]") == ["\\", jsonjs.loads("[" * 31 + "]" * 31)]
    with pytest.raises(LocalProtocolError, match="deeper"):
        jsonjs.loads('["\\\\\\\\", [[[1]]]]', max_depth=3)
    with pytest.raises(LocalProtocolError, match="deeper"):
        jsonjs.loads('[{"a\\"]]]]":[[{"b":"\\\\"}]]}]', max_depth=4)
    assert jsonjs.loads('[{"a\\"]]]]":[[{"b":"\\\\"}]]}]', max_depth=5) == [{'a"]]]]': [[{"b": "\\"}]]}]


def test_jsonjs_decodes_many_containers_without_cyclic_gc_passes() -> None:
    """1 MB of small arrays (400,000 lists) took ~120 ms to decode, two thirds of it in the cyclic GC's
    passes over the lists being built, which can hold no cycle: the decode pauses automatic collections,
    then moves what it built to the oldest generation in one pass (left in the young generations, several
    such payloads met one collection of generation 1: 240 ms). The collector is left as it was found.
    Counted in collections and objects, not in time."""
    text = str(shape("dense-shallow-brackets").build(MAX_PAYLOAD)[0])[1:]
    collections = 0

    def count(phase: str, info: dict[str, int]) -> None:
        nonlocal collections
        collections += phase == "start"

    gc.callbacks.append(count)
    try:
        value = jsonjs.loads(text)
    finally:
        gc.callbacks.remove(count)
    assert len(value) > 100_000 and gc.isenabled()
    assert collections <= 1, f"{collections} collections"  # the one pass after the decode
    young = len(gc.get_objects(0)) + len(gc.get_objects(1))
    assert young < 10_000, f"{young} objects left in the young generations"
    gc.disable()
    try:
        jsonjs.loads(text)
        assert not gc.isenabled()
    finally:
        gc.enable()
