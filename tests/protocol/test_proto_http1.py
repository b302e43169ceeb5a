"""The lean HTTP/1.1 reader and writer of long-polling (protocol/http1.py) against h11.

Every head ``parse_simple_head`` reads, h11 (``Http11Connection`` with the same head limit, and a plain
``h11.Connection``) reads into the same request, with the body at the same offset; when it asks for more
data, h11 could not have parsed the bytes either; every response ``simple_response`` writes is the one
h11 writes, byte for byte, and it refuses the headers h11 refuses. Anything else falls back to h11.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Final

import h11
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from trio_rooms.protocol.http1 import (
    FALLBACK,
    MAX_HEADERS,
    NEED_DATA,
    Fallback,
    NeedData,
    SimpleHead,
    parse_simple_head,
    reason_phrase,
    simple_response,
    switching_protocols,
)
from trio_rooms.protocol.http11 import Http11Connection

#: The server's head limit (engine.h11io.MAX_REQUEST_HEAD_BYTES).
HEAD_LIMIT: Final = 16 * 1024
FUZZ: Final = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POLLING: Final = b"/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA"

# ---------------------------------------------------------------------------------------------------------
# Reading a head as h11 does
# ---------------------------------------------------------------------------------------------------------


def h11_head(conn: h11.Connection, data: bytes | bytearray) -> h11.Request | None:
    """The request h11 reads from ``data`` (None: NEED_DATA); raises ``h11.RemoteProtocolError``."""
    if data:  # b"" would mean the peer closed
        conn.receive_data(bytes(data))
    event = conn.next_event()
    if event is h11.NEED_DATA:
        return None
    assert isinstance(event, h11.Request), event
    return event


def assert_read_as_h11_reads(
    data: bytes | bytearray, head: SimpleHead, max_head: int, start: int = 0
) -> None:
    """``head``, read from ``data[start:]``, is what h11 reads there: same method, target, headers, body
    offset, body length and keep-alive."""
    data = data[start:]
    connections: list[h11.Connection] = [Http11Connection(h11.SERVER, max_incomplete_event_size=max_head)]
    if head.body_start - start <= HEAD_LIMIT:
        connections.append(h11.Connection(h11.SERVER))
    for conn in connections:
        request = h11_head(conn, data)
        assert request is not None
        assert request.method.decode("ascii") == head.method
        assert request.target.decode("latin-1") == head.target
        assert request.http_version == b"1.1"
        assert [(k.decode("ascii"), v.decode("latin-1")) for k, v in request.headers] == list(head.headers)
        assert conn.trailing_data[0] == data[head.body_start - start :]
        lengths = [int(v) for k, v in request.headers if k == b"content-length"]
        assert head.content_length == (lengths[0] if lengths else 0)
        assert head.upgrade == _proposes_upgrade(request)
    if head.content_length > 65_536:
        return
    # the body's length and keep-alive, on the head followed by a body of content_length bytes
    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=max_head)
    request = h11_head(conn, data[: head.body_start - start] + b"x" * head.content_length)
    assert request is not None
    size = 0
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        size += len(event.data)
    assert size == head.content_length
    expected: object = h11.DONE if head.keep_alive else h11.MUST_CLOSE
    if _proposes_upgrade(request):
        # h11 waits for the server's answer to the proposal (a public state missing from h11.__all__)
        expected = h11.MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]
    assert conn.their_state is expected


def _proposes_upgrade(request: h11.Request) -> bool:
    """Whether h11 takes ``request`` for an upgrade proposal (an Upgrade header with a token)."""
    return any(
        name == b"upgrade" and any(token.strip() for token in value.split(b","))
        for name, value in request.headers
    )


def assert_h11_needs_data(data: bytes | bytearray, max_head: int) -> None:
    """h11 (with the same head limit) can neither read a request from ``data`` nor refuse it yet."""
    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=max_head)
    assert h11_head(conn, data) is None


def check(
    data: bytes | bytearray, max_head: int = HEAD_LIMIT, start: int = 0, *, upgrade: bool = False
) -> SimpleHead | NeedData | Fallback:
    """``parse_simple_head``, with its head or its NEED_DATA checked against h11."""
    result = parse_simple_head(data, start, max_head=max_head, upgrade=upgrade)
    if isinstance(result, SimpleHead):
        assert_read_as_h11_reads(data, result, max_head, start)
    elif result is NEED_DATA:
        assert_h11_needs_data(data[start:], max_head)
    return result


# ---------------------------------------------------------------------------------------------------------
# Simple heads: the ones our clients send, and the edges of the shape
# ---------------------------------------------------------------------------------------------------------

#: What Node's http.request sends with a keep-alive agent (benchmarks/loadclient.mjs), and what
#: socket.io-client's polling transport sends in Node (xmlhttprequest-ssl), captured on the wire.
LOADCLIENT_GET: Final = (
    b"GET " + POLLING + b" HTTP/1.1\r\nHost: 127.0.0.1:36057\r\nConnection: keep-alive\r\n\r\n"
)
LOADCLIENT_POST: Final = (
    b"POST " + POLLING + b" HTTP/1.1\r\ncontent-type: text/plain;charset=UTF-8\r\nHost: 127.0.0.1:36057\r\n"
    b'Connection: keep-alive\r\nContent-Length: 12\r\n\r\n42["echo",1]'
)
NODE_CLIENT_GET: Final = (
    b"GET /socket.io/?EIO=4&transport=polling&t=85qf004k&sid=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n"
    b"User-Agent: node-XMLHttpRequest\r\nAccept: */*\r\nHost: 127.0.0.1:36057\r\nConnection: close\r\n\r\n"
)
NODE_CLIENT_POST: Final = (
    b"POST /socket.io/?EIO=4&transport=polling&t=85qezd7d&sid=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n"
    b"User-Agent: node-XMLHttpRequest\r\nAccept: */*\r\nContent-type: text/plain;charset=UTF-8\r\n"
    b"Host: 127.0.0.1:36057\r\nContent-Length: 2\r\nConnection: close\r\n\r\n40"
)
BROWSER_GET: Final = (
    b"GET " + POLLING + b" HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="124", "Not-A.Brand";v="99"\r\nsec-ch-ua-mobile: ?0\r\n'
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0\r\n"
    b'sec-ch-ua-platform: "Linux"\r\nAccept: */*\r\nOrigin: https://app.example.com\r\n'
    b"Sec-Fetch-Site: same-site\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n"
    b"Referer: https://app.example.com/\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nCookie: io=AAAAAAAAAAAAAAAAAAAA; theme=dark\r\n\r\n"
)
PREFLIGHT: Final = (
    b"OPTIONS " + POLLING + b" HTTP/1.1\r\nHost: example.com\r\nOrigin: https://app.example.com\r\n"
    b"Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
)


def _get(*headers: bytes, target: bytes = b"/") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


SIMPLE: Final = {
    "loadclient-get": LOADCLIENT_GET,
    "loadclient-post": LOADCLIENT_POST,
    "node-client-get": NODE_CLIENT_GET,
    "node-client-post": NODE_CLIENT_POST,
    "browser-get": BROWSER_GET,
    "preflight": PREFLIGHT,
    "minimal": _get(b"Host: x"),
    "empty-host": _get(b"Host:"),
    "empty-values": _get(b"Host: x", b"X:", b"Y: \t ", b"Z:\t"),
    "value-spaces-tabs-inside": _get(b"Host: x", b"X: \ta \t b\t "),
    "obs-text-value": _get(b"Host: x", b"X: \xa0caf\xe9 \x80\xff\x85\xa0"),
    "every-tchar-name": _get(b"Host: x", b"!#$%&'*+-.^_`|~09AZaz: v"),
    "every-vchar-target": _get(b"Host: x", target=b"/" + bytes(range(0x21, 0x7F))),
    "colon-in-value": _get(b"Host: x:80", b"X: a:b::"),
    "content-length-zero": _get(b"Host: x", b"Content-Length: 0"),
    "content-length-padded": _get(b"Host: x", b"Content-Length: \t 0012 "),
    "content-length-10-digits": _get(b"Host: x", b"Content-Length: 9999999999"),
    "post-without-length": b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
    "connection-close-in-list": _get(b"Host: x", b"Connection: Keep-Alive, CLOSE ,x"),
    "connection-close-in-second-header": _get(b"Host: x", b"Connection: keep-alive", b"connection: close"),
    "connection-close-prefix-only": _get(b"Host: x", b"Connection: closed, xclose"),
    "connection-empty-tokens": _get(b"Host: x", b"Connection: ,, ,"),
    "connection-close-obs-text-space": _get(b"Host: x", b"Connection: close\xa0, \x85close"),
    "max-headers": _get(b"Host: x", *[b"X: %d" % i for i in range(MAX_HEADERS - 1)]),
    "pipelined": _get(b"Host: x") + _get(b"Host: y"),
    "body-and-more": LOADCLIENT_POST + LOADCLIENT_GET,
    "head-at-the-limit": _get(b"Host: x", b"X: " + b"v" * (HEAD_LIMIT - 32)),
}


def test_head_at_the_limit_is_exactly_the_limit() -> None:
    assert len(SIMPLE["head-at-the-limit"]) == HEAD_LIMIT


@pytest.mark.parametrize("data", SIMPLE.values(), ids=SIMPLE.keys())
def test_simple_heads_are_read_as_h11_reads_them(data: bytes) -> None:
    assert isinstance(check(data), SimpleHead)


def test_simple_head_fields() -> None:
    assert parse_simple_head(LOADCLIENT_POST, max_head=HEAD_LIMIT) == SimpleHead(
        method="POST",
        target=POLLING.decode(),
        headers=(
            ("content-type", "text/plain;charset=UTF-8"),
            ("host", "127.0.0.1:36057"),
            ("connection", "keep-alive"),
            ("content-length", "12"),
        ),
        content_length=12,
        keep_alive=True,
        body_start=len(LOADCLIENT_POST) - 12,
    )
    head = parse_simple_head(NODE_CLIENT_GET, max_head=HEAD_LIMIT)
    assert isinstance(head, SimpleHead)
    assert (head.method, head.content_length, head.keep_alive) == ("GET", 0, False)
    head = parse_simple_head(SIMPLE["obs-text-value"], max_head=HEAD_LIMIT)
    assert isinstance(head, SimpleHead)
    assert head.headers[1] == ("x", "\xa0café \x80ÿ\x85\xa0")


@pytest.mark.parametrize("data", SIMPLE.values(), ids=SIMPLE.keys())
def test_after_other_bytes_in_a_bytearray(data: bytes) -> None:
    """``start`` and a bytearray: the same head, its offsets in the buffer."""
    before = LOADCLIENT_POST
    head = check(bytearray(before + data), start=len(before))
    alone = parse_simple_head(data, max_head=HEAD_LIMIT)
    assert isinstance(head, SimpleHead) and isinstance(alone, SimpleHead)
    assert head.headers == alone.headers
    assert head.body_start == alone.body_start + len(before)


def test_pipelined_requests_one_after_the_other() -> None:
    buffer = bytearray(LOADCLIENT_POST + NODE_CLIENT_GET + LOADCLIENT_GET[:40])
    first = parse_simple_head(buffer, max_head=HEAD_LIMIT)
    assert isinstance(first, SimpleHead) and first.method == "POST"
    second = parse_simple_head(buffer, first.body_start + first.content_length, max_head=HEAD_LIMIT)
    assert isinstance(second, SimpleHead) and second.method == "GET" and not second.keep_alive
    assert parse_simple_head(buffer, second.body_start, max_head=HEAD_LIMIT) is NEED_DATA


@pytest.mark.parametrize("data", SIMPLE.values(), ids=SIMPLE.keys())
def test_every_prefix_of_a_simple_head_needs_data(data: bytes) -> None:
    """Each prefix without the empty line asks for more data, and h11 could not read it either; with the
    empty line, the head (the same one, whatever follows)."""
    end = data.index(b"\r\n\r\n") + 4
    whole = parse_simple_head(data, max_head=HEAD_LIMIT)
    step = 1 if end < 2_000 else 97
    for size in [*range(0, end, step), end - 1]:
        assert check(data[:size]) is NEED_DATA, size
    for size in (end, end + 1, len(data)):
        assert parse_simple_head(data[:size], max_head=HEAD_LIMIT) == whole


# ---------------------------------------------------------------------------------------------------------
# Falling back
# ---------------------------------------------------------------------------------------------------------

FALLBACKS: Final = {
    # the request line
    "method-lower-case": b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
    "method-head": b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    "method-put": b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "method-connect": b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    "http-1.0": b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    "http-2.0": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "version-lower-case": b"GET / http/1.1\r\nHost: x\r\n\r\n",
    "no-version": b"GET /\r\nHost: x\r\n\r\n",
    "two-spaces": b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    "trailing-space": b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "tab-in-target": b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
    "obs-text-in-target": b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute-target": b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "asterisk-target": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "leading-empty-line": b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n",
    # header lines
    "no-colon": _get(b"Host: x", b"X"),
    "no-colon-known-name": _get(b"Host: x", b"Accept: */*", b"Accept"),
    "empty-name": _get(b"Host: x", b": v"),
    "space-before-colon": _get(b"Host: x", b"X : v"),
    "tab-before-colon": _get(b"Host: x", b"X\t: v"),
    "name-not-a-token": _get(b"Host: x", b"X@Y: v"),
    "name-obs-text": _get(b"Host: x", b"X\xe9: v"),
    "obs-fold-space": _get(b"Host: x", b"X: a", b" b"),
    "obs-fold-tab": _get(b"Host: x", b"X: a", b"\tb"),
    "obs-fold-first-line": b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
    "nul-in-value": _get(b"Host: x", b"X: a\x00b"),
    "ctl-in-value": _get(b"Host: x", b"X: a\x01b"),
    "del-in-value": _get(b"Host: x", b"X: a\x7fb"),
    "vt-in-value": _get(b"Host: x", b"X: a\x0bb"),
    "ff-in-value": _get(b"Host: x", b"X: a\x0cb"),
    "bare-cr-in-value": _get(b"Host: x", b"X: a\rb"),
    "bare-cr-before-crlf": _get(b"Host: x", b"X: a\r"),
    "bare-lf-in-value": _get(b"Host: x", b"X: a\nb"),
    "bare-lf-line-end": b"GET / HTTP/1.1\r\nHost: x\nX: a\r\n\r\n",
    "bare-lf-request-line": b"GET / HTTP/1.1\nHost: x\r\n\r\n",
    "lf-only": b"GET / HTTP/1.1\nHost: x\n\n",
    "lf-crlf-end": b"GET / HTTP/1.1\r\nHost: x\n\r\n",
    "too-many-headers": _get(b"Host: x", *[b"X: %d" % i for i in range(MAX_HEADERS)]),
    # framing and hand-overs h11 deals with
    "transfer-encoding": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding-identity": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
    "two-content-lengths-same": _get(b"Host: x", b"Content-Length: 1", b"Content-Length: 1"),
    "two-content-lengths-differ": _get(b"Host: x", b"Content-Length: 1", b"Content-Length: 2"),
    "content-length-list": _get(b"Host: x", b"Content-Length: 1, 1"),
    "content-length-empty": _get(b"Host: x", b"Content-Length:"),
    "content-length-sign": _get(b"Host: x", b"Content-Length: +1"),
    "content-length-hex": _get(b"Host: x", b"Content-Length: 0x10"),
    "content-length-inner-space": _get(b"Host: x", b"Content-Length: 1 2"),
    "content-length-superscript": _get(b"Host: x", b"Content-Length: \xb2"),
    "content-length-11-digits": _get(b"Host: x", b"Content-Length: 10000000000"),
    "upgrade-websocket": _get(
        b"Host: x",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
    ),
    "upgrade-empty": _get(b"Host: x", b"Upgrade:"),
    "expect-100-continue": b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    "no-host": _get(b"X: y"),
    "two-hosts": _get(b"Host: x", b"Host: x"),
    # the limit
    "head-over-the-limit": _get(b"Host: x", b"X: " + b"v" * (HEAD_LIMIT - 31)),
    "incomplete-at-the-limit": _get(b"Host: x", b"X: " + b"v" * HEAD_LIMIT)[:HEAD_LIMIT],
}


@pytest.mark.parametrize("data", FALLBACKS.values(), ids=FALLBACKS.keys())
def test_other_heads_fall_back(data: bytes) -> None:
    assert parse_simple_head(data, max_head=HEAD_LIMIT) is FALLBACK


def test_the_limit_cases_are_h11s_431() -> None:
    for name in ("head-over-the-limit", "incomplete-at-the-limit"):
        conn = Http11Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
        with pytest.raises(h11.RemoteProtocolError) as caught:
            h11_head(conn, FALLBACKS[name] + b"\r\n\r\n")
        assert caught.value.error_status_hint == 431


#: Prefixes that cannot become a simple head: the fallback comes before the head is complete.
EARLY_FALLBACKS: Final = {
    "method-lower-case": b"ge",
    "method-other": b"HEAD ",
    "method-too-long": b"OPTIONSX",
    "no-slash": b"GET h",
    "leading-cr": b"\r",
    "tls": b"\x16\x03\x01",
    "request-line-1.0": b"GET / HTTP/1.0\r\n",
    "bare-lf": b"GET / HTTP/1.1\r\nHost: x\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: x\rX",
    "nul": b"GET / HTTP/1.1\r\nHost: \x00",
}


@pytest.mark.parametrize("data", EARLY_FALLBACKS.values(), ids=EARLY_FALLBACKS.keys())
def test_prefixes_that_cannot_be_simple_fall_back_at_once(data: bytes) -> None:
    assert parse_simple_head(data, max_head=HEAD_LIMIT) is FALLBACK


def test_never_looks_past_the_limit() -> None:
    """An empty line just past ``start + max_head`` is not seen: the head is over the limit."""
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX: vvvv\r\n\r\n"
    for start in (0, 5):
        buffer = b"x" * start + data
        assert isinstance(parse_simple_head(buffer, start, max_head=len(data)), SimpleHead)
        assert parse_simple_head(buffer, start, max_head=len(data) - 1) is FALLBACK
        assert parse_simple_head(buffer[: start + len(data) - 1], start, max_head=len(data)) is NEED_DATA


# ---------------------------------------------------------------------------------------------------------
# WebSocket handshakes (``upgrade=True``): read as h11 reads them, and h11's 101
# ---------------------------------------------------------------------------------------------------------

WS_HANDSHAKE: Final = _get(
    b"Host: x",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
    target=b"/socket.io/?EIO=4&transport=websocket",
)
#: What the ws package sends for socket.io-client in Node (captured on the wire).
NODE_WS_HANDSHAKE: Final = (
    b"GET /socket.io/?EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nHost: 127.0.0.1:36057\r\n\r\n"
)
UPGRADES: Final = {
    "websocket": WS_HANDSHAKE,
    "node-ws": NODE_WS_HANDSHAKE,
    "frames-after-the-head": WS_HANDSHAKE + b"\x81\x81\x00\x00\x00\x002",
    "upgrade-empty": _get(b"Host: x", b"Upgrade:"),
    "upgrade-list": _get(b"Host: x", b"Upgrade: h2c, websocket", b"Connection: keep-alive, Upgrade"),
}


@pytest.mark.parametrize("data", UPGRADES.values(), ids=UPGRADES.keys())
def test_upgrade_heads_are_read_as_h11_reads_them_when_the_caller_can_answer(data: bytes) -> None:
    head = check(data, upgrade=True)
    assert isinstance(head, SimpleHead)
    assert head.method == "GET" and head.content_length == 0 and head.keep_alive
    assert parse_simple_head(data, max_head=HEAD_LIMIT) is FALLBACK  # a caller that cannot answer


UPGRADE_FALLBACKS: Final = {
    "post": b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
    "options": b"OPTIONS / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
    "get-with-a-body": _get(b"Host: x", b"Upgrade: websocket", b"Content-Length: 1") + b"x",
    "get-with-length-0": _get(b"Host: x", b"Upgrade: websocket", b"Content-Length: 0"),
    "close": _get(b"Host: x", b"Upgrade: websocket", b"Connection: Upgrade, close"),
    "expect": _get(b"Host: x", b"Upgrade: websocket", b"Expect: 100-continue"),
    "transfer-encoding": _get(b"Host: x", b"Upgrade: websocket", b"Transfer-Encoding: chunked"),
}


@pytest.mark.parametrize("data", UPGRADE_FALLBACKS.values(), ids=UPGRADE_FALLBACKS.keys())
def test_upgrades_with_a_body_or_a_close_fall_back(data: bytes) -> None:
    assert parse_simple_head(data, max_head=HEAD_LIMIT, upgrade=True) is FALLBACK


def test_switching_protocols_is_h11s_101() -> None:
    token = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(WS_HANDSHAKE)
    assert isinstance(conn.next_event(), h11.Request)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    expected = conn.send(
        h11.InformationalResponse(
            status_code=101,
            reason=b"Switching Protocols",
            headers=[("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", token)],
        )
    )
    assert switching_protocols(token) == expected
    assert conn.our_state is h11.SWITCHED_PROTOCOL


def test_switching_protocols_with_extra_headers_is_h11s_101() -> None:
    """The 101 with the headers of the engine's hooks (a repeated one included), as h11 writes it."""
    token = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    extra = [("set-cookie", "sticky=1; Path=/"), ("set-cookie", "second=2"), ("X-Hooked", "yes")]
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(WS_HANDSHAKE)
    assert isinstance(conn.next_event(), h11.Request)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    own = [("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", token)]
    expected = conn.send(
        h11.InformationalResponse(status_code=101, reason=b"Switching Protocols", headers=[*own, *extra])
    )
    assert switching_protocols(token, extra) == expected


@pytest.mark.parametrize(
    "header", [("x", "a\r\nset-cookie: evil=1"), ("x", " padded"), ("bad name", "v"), ("x", "\xe9")]
)
def test_switching_protocols_refuses_an_extra_header_h11_would_not_send(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", [header])


@pytest.mark.parametrize("token", ["a b", "a\r\nX: y", "\xe9", "a\x00"])
def test_switching_protocols_refuses_a_token_h11_would_not_send(token: str) -> None:
    with pytest.raises(ValueError, match="Sec-WebSocket-Accept"):
        switching_protocols(token)


# ---------------------------------------------------------------------------------------------------------
# Hypothesis: simple heads, then mutated ones, against h11
# ---------------------------------------------------------------------------------------------------------

VCHAR: Final = "".join(map(chr, range(0x21, 0x7F)))
TCHAR: Final = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
NAMES: Final = ["Accept", "User-Agent", "Content-Type", "Cookie", "Origin", "X-Forwarded-For", "connection"]
header_values = st.text(VCHAR + " \t\x80\x85\xa0\xe9\xff", max_size=12)
#: Names a simple head has once at most (Host, Content-Length) or never: not drawn at random.
FRAMING_NAMES: Final = {"host", "content-length", "transfer-encoding", "upgrade", "expect"}
header_names = st.sampled_from(NAMES) | st.text(TCHAR, min_size=1, max_size=6).filter(
    lambda name: name.lower() not in FRAMING_NAMES
)
SPECIAL_BYTES: Final = b"\r\n \t\x00\x80:,\x7f"


@st.composite
def simple_heads(draw: st.DrawFn, *, upgrade: bool = False) -> bytes:
    """A simple head, its body, and maybe more bytes (a next request); with ``upgrade``, a WebSocket
    handshake (a GET with no body, not asking to close) and maybe frames after it."""
    method = b"GET" if upgrade else draw(st.sampled_from([b"GET", b"POST", b"OPTIONS"]))
    target = b"/" + draw(st.text(VCHAR, max_size=30)).encode()
    headers = [
        (name.encode(), value.encode("latin-1"))
        for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=6))
    ]
    headers.insert(draw(st.integers(0, len(headers))), (draw(st.sampled_from([b"Host", b"host"])), b"x:1"))
    body = b""
    if upgrade:
        handshake = [
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Version", b"13"),
        ]
        for header in handshake:
            headers.insert(draw(st.integers(0, len(headers))), header)
    elif draw(st.booleans()):
        body = draw(st.binary(max_size=8))
        spaces = draw(st.sampled_from([b"", b" ", b" \t"]))
        headers.append((b"Content-Length", spaces + b"%d" % len(body) + spaces))
    if not upgrade and draw(st.booleans()):
        connection = [b"close", b"keep-alive", b"Keep-Alive, Close", b"close\xa0", b"x,\x85close"]
        headers.append((b"Connection", draw(st.sampled_from(connection))))
    lines = b"".join(
        name + b":" + draw(st.sampled_from([b"", b" ", b"\t"])) + value + b"\r\n" for name, value in headers
    )
    more = draw(st.sampled_from([b"", LOADCLIENT_GET, b"GET /", b"\x81\x81\x00\x00\x00\x002"]))
    return method + b" " + target + b" HTTP/1.1\r\n" + lines + b"\r\n" + body + more


@st.composite
def mutated_heads(draw: st.DrawFn, *, upgrade: bool = False) -> bytes:
    data = bytearray(draw(simple_heads(upgrade=upgrade)))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "truncate", "delete", "duplicate-line"]))
        if kind == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[position:position] = draw(st.sampled_from(SPECIAL_BYTES).map(lambda b: bytes([b])))
        elif kind == "truncate":
            del data[position:]
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 4))]
        elif kind == "duplicate-line":
            start = data.rfind(b"\r\n", 0, position) + 2
            end = data.find(b"\r\n", position)
            if start >= 2 and end > start:
                data[end + 2 : end + 2] = data[start : end + 2]
    return bytes(data)


def head_limits(data: bytes, *, over: bool = True) -> list[int]:
    """Head limits to try: the server's, and around the end of the first head in ``data``."""
    end = data.find(b"\r\n\r\n") + 4 if b"\r\n\r\n" in data else len(data)
    return [HEAD_LIMIT, end, end + 1] + ([max(1, end - 1)] if over else [])


@FUZZ
@given(simple_heads(), st.data())
@example(LOADCLIENT_POST, None)
def test_every_simple_head_is_read_as_h11_reads_it(data: bytes, draw: st.DataObject | None) -> None:
    limits = head_limits(data, over=False)
    for max_head in limits if draw is None else [draw.draw(st.sampled_from(limits))]:
        assert isinstance(check(data, max_head), SimpleHead)


@FUZZ
@given(mutated_heads(), st.binary(max_size=4), st.data())
def test_mutated_heads_read_as_h11_reads_them_or_fall_back(
    data: bytes, before: bytes, draw: st.DataObject
) -> None:
    """A head only when h11 reads the same one; NEED_DATA only when h11 needs data too; and the same
    answer at any ``start``."""
    max_head = draw.draw(st.sampled_from(head_limits(data)))
    result = check(data, max_head)
    event(type(result).__name__)
    shifted = check(before + data, max_head, start=len(before))
    if isinstance(result, SimpleHead):
        assert isinstance(shifted, SimpleHead)
        assert shifted.body_start == result.body_start + len(before)
        assert shifted.headers == result.headers
    else:
        assert shifted is result


@FUZZ
@given(mutated_heads())
def test_every_prefix_of_a_mutated_head_is_consistent(data: bytes) -> None:
    """Prefixes of mutated heads: never a head h11 does not read, never NEED_DATA where h11 would answer."""
    for size in range(0, len(data) + 1, max(1, len(data) // 16)):
        check(data[:size])


@FUZZ
@given(simple_heads(upgrade=True))
def test_every_websocket_handshake_is_read_as_h11_reads_it(data: bytes) -> None:
    assert isinstance(check(data, upgrade=True), SimpleHead)


@FUZZ
@given(mutated_heads(upgrade=True), st.data())
def test_mutated_handshakes_read_as_h11_reads_them_or_fall_back(data: bytes, draw: st.DataObject) -> None:
    """Mutated WebSocket handshakes (a POST, a body, a close...), whole and in prefixes."""
    event(type(check(data, draw.draw(st.sampled_from(head_limits(data))), upgrade=True)).__name__)
    for size in range(0, len(data), max(1, len(data) // 8)):
        check(data[:size], upgrade=True)


# ---------------------------------------------------------------------------------------------------------
# simple_response: h11's bytes
# ---------------------------------------------------------------------------------------------------------


def h11_response(
    status: int, headers: Sequence[tuple[str, str]], body: bytes, *, request_keep_alive: bool = True
) -> bytes:
    """What h11 sends as the answer to a GET (with ``Connection: close`` unless ``request_keep_alive``)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(LOADCLIENT_GET if request_keep_alive else NODE_CLIENT_GET)
    assert isinstance(conn.next_event(), h11.Request)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    data = (
        conn.send(h11.Response(status_code=status, headers=list(headers), reason=reason_phrase(status)))
        or b""
    )
    if body:
        data += conn.send(h11.Data(data=body)) or b""
    return data + (conn.send(h11.EndOfMessage()) or b"")


def engine_headers(
    content_type: str,
    body: bytes,
    *,
    close: bool,
    keep_alive: bool = True,
    extra: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The headers h11io.send_response gives h11."""
    headers = [("content-type", content_type), ("content-length", str(len(body)))]
    if close:
        headers.append(("connection", "close"))
    elif keep_alive:
        headers.append(("keep-alive", "timeout=60"))
    return headers + list(extra)


TEXT: Final = "text/plain; charset=UTF-8"
JSON: Final = "application/json"
OPEN: Final = (
    b'0{"sid":"AAAAAAAAAAAAAAAAAAAA","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}'
)
ERROR: Final = b'{"code":1,"message":"Session ID unknown"}'
CORS_ANY: Final = [("access-control-allow-origin", "*")]
CORS_CREDENTIALS: Final = [
    ("access-control-allow-origin", "https://app.example.com"),
    ("vary", "Origin"),
    ("access-control-allow-credentials", "true"),
]
PREFLIGHT_HEADERS: Final = [
    *CORS_CREDENTIALS,
    ("access-control-allow-methods", "GET,HEAD,PUT,PATCH,POST,DELETE"),
    ("access-control-allow-headers", "content-type"),
    ("access-control-max-age", "86400"),
]

RESPONSES: Final = {
    "open": (200, TEXT, OPEN, CORS_ANY),
    "poll-packets": (200, TEXT, b'42["e",1]\x1e42["e",2]', CORS_CREDENTIALS),
    "poll-noop": (200, TEXT, b"6", []),
    "post-ok": (200, "text/html", b"ok", CORS_ANY),
    "json": (200, JSON, b"{}", []),
    "preflight-204": (204, TEXT, b"", PREFLIGHT_HEADERS),
    "error-400": (400, JSON, ERROR, CORS_CREDENTIALS),
    "error-403": (403, JSON, b'{"code":4,"message":"Forbidden"}', CORS_ANY),
    "fallback-404": (404, TEXT, b"Not Found", []),
    "bad-request-431": (431, TEXT, b"Bad Request", []),
}
RESPONSE_CASES: Final = [
    pytest.param(
        *shape,
        close,
        keep_alive,
        request_keep_alive,
        id=f"{name}-{close=}-{keep_alive=}-{request_keep_alive=}",
    )
    for name, shape in RESPONSES.items()
    for close in (False, True)
    for keep_alive in (False, True)
    for request_keep_alive in (True, False)
]


@pytest.mark.parametrize(
    ("status", "content_type", "body", "extra", "close", "keep_alive", "request_keep_alive"), RESPONSE_CASES
)
def test_engine_responses_are_h11s_bytes(
    status: int,
    content_type: str,
    body: bytes,
    extra: list[tuple[str, str]],
    close: bool,
    keep_alive: bool,
    request_keep_alive: bool,
) -> None:
    headers = engine_headers(content_type, body, close=close, keep_alive=keep_alive, extra=extra)
    expected = h11_response(status, headers, body, request_keep_alive=request_keep_alive)
    assert simple_response(status, headers, body, request_keep_alive=request_keep_alive) == expected


def test_response_golden_bytes() -> None:
    headers = engine_headers(TEXT, b"6", close=False, extra=CORS_ANY)
    assert simple_response(200, headers, b"6") == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=UTF-8\r\ncontent-length: 1\r\n"
        b"keep-alive: timeout=60\r\naccess-control-allow-origin: *\r\n\r\n6"
    )
    headers = [("content-length", "2"), ("connection", "close"), ("Vary", "Origin")]
    assert simple_response(400, headers, b"no", request_keep_alive=False) == (
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nVary: Origin\r\nConnection: close\r\n\r\nno"
    )


@pytest.mark.parametrize(
    "headers",
    [
        [("Host", "a"), ("X", "1"), ("host", "b"), ("content-length", "0")],
        [("Connection", "keep-alive, Upgrade"), ("content-length", "0"), ("connection", "x")],
        [("Content-Length", "00"), ("X-Empty", ""), ("X-Tab", "a\tb"), ("X-Ctl", "a\x01\x7fb")],
    ],
    ids=["hosts-first", "connection-tokens", "odd-values"],
)
@pytest.mark.parametrize("request_keep_alive", [True, False])
def test_h11s_header_rewrites(headers: list[tuple[str, str]], request_keep_alive: bool) -> None:
    expected = h11_response(200, headers, b"", request_keep_alive=request_keep_alive)
    assert simple_response(200, headers, b"", request_keep_alive=request_keep_alive) == expected


#: Headers h11 refuses to send.
H11_REFUSES: Final = {
    "cr-in-name": ("X\r", "v"),
    "lf-in-value": ("X", "a\nb"),
    "crlf-injection": ("X", "a\r\nSet-Cookie: evil=1"),
    "nul-in-value": ("X", "a\x00b"),
    "vt-in-value": ("X", "a\x0bb"),
    "ff-in-value": ("X", "a\x0cb"),
    "leading-space": ("X", " a"),
    "trailing-tab": ("X", "a\t"),
    "non-ascii-value": ("X", "café"),
    "space-in-name": ("X Y", "v"),
    "colon-in-name": ("X:", "v"),
    "empty-name": ("", "v"),
    "non-ascii-name": ("Xé", "v"),
}


@pytest.mark.parametrize("header", H11_REFUSES.values(), ids=H11_REFUSES.keys())
def test_headers_h11_refuses_are_refused(header: tuple[str, str]) -> None:
    headers = [header, ("content-length", "0")]
    with pytest.raises((h11.LocalProtocolError, UnicodeEncodeError)):
        h11_response(200, headers, b"")
    with pytest.raises(ValueError):
        simple_response(200, headers, b"")


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (101, [("content-length", "0")], b""),
        (199, [("content-length", "0")], b""),
        (1000, [("content-length", "0")], b""),
        (200, [], b"x"),
        (200, [("content-length", "2")], b"x"),
        (200, [("content-length", "1"), ("Content-Length", "1")], b"x"),
        (200, [("content-length", "1"), ("transfer-encoding", "chunked")], b"x"),
        (200, [("content-length", "+1")], b"x"),
        (204, [("content-length", "1")], b"x"),
        (304, [("content-length", "1")], b"x"),
    ],
    ids=[
        "status-101",
        "status-199",
        "status-1000",
        "no-content-length",
        "wrong-content-length",
        "two-content-lengths",
        "transfer-encoding",
        "content-length-sign",
        "204-with-body",
        "304-with-body",
    ],
)
def test_framing_other_than_one_content_length_is_refused(
    status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    with pytest.raises(ValueError):
        simple_response(status, headers, body)


response_text = st.text(
    st.sampled_from([*"aZ09-_!~ :,;=/\t", "\r", "\n", "\x00", "\x0b", "\x01", "\x1c", "é"]), max_size=6
)
response_values = response_text | st.sampled_from(
    ["close", "keep-alive", "Close,\x1cx", "close\x1c", " close"]
)


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["X", "Host", "connection", "Vary"]) | response_text, response_values),
        max_size=5,
    ),
    st.binary(max_size=4),
    st.sampled_from([200, 204, 400, 403, 404]),
    st.booleans(),
)
def test_simple_response_writes_what_h11_writes_or_refuses(
    headers: list[tuple[str, str]], body: bytes, status: int, request_keep_alive: bool
) -> None:
    if status == 204:
        body = b""
    headers = [*headers, ("Content-Length", str(len(body)))]
    try:
        expected = h11_response(status, headers, body, request_keep_alive=request_keep_alive)
    except (h11.LocalProtocolError, UnicodeEncodeError):
        with pytest.raises(ValueError):
            simple_response(status, headers, body, request_keep_alive=request_keep_alive)
    else:
        assert simple_response(status, headers, body, request_keep_alive=request_keep_alive) == expected


def test_reason_phrases_are_the_standard_ones() -> None:
    assert [reason_phrase(code) for code in (200, 400, 403, 404, 413, 431)] == [
        b"OK",
        b"Bad Request",
        b"Forbidden",
        b"Not Found",
        b"Content Too Large" if sys.version_info >= (3, 13) else b"Request Entity Too Large",
        b"Request Header Fields Too Large",
    ]
    assert reason_phrase(599) == b""  # no standard phrase: an empty one, as HTTP allows
    assert simple_response(599, [("content-length", "0")], b"").startswith(b"HTTP/1.1 599 \r\n")
