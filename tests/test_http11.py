"""Http11Connection, sans IO: h11's API and events, an exact head limit across keep-alive cycles, chunked
bodies in slices, Content-Length bodies never fed past their end, and what was not parsed kept."""

from __future__ import annotations

from typing import Any

import h11
import pytest

from trio_rooms.protocol.http11 import MAX_FRAMING_LINE, Http11Connection

LIMIT = 1000


def request_head(size: int, extra: bytes = b"") -> bytes:
    start = b"POST /p HTTP/1.1\r\nHost: x\r\n" + extra + b"X-Pad: "
    return start + b"p" * (size - len(start) - 4) + b"\r\n\r\n"


def events(conn: h11.Connection) -> list[Any]:
    """Every event until NEED_DATA or PAUSED (or the connection's end)."""
    out: list[Any] = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return out
        out.append(event)
        if isinstance(event, h11.ConnectionClosed):
            return out


def respond(conn: h11.Connection) -> None:
    conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
    conn.send(h11.EndOfMessage())


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
def test_a_head_at_the_limit_is_read_in_one_piece_of_data(size: int) -> None:
    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=LIMIT)
    conn.receive_data(request_head(size, b"Content-Length: 3\r\n") + b"abc")
    got = events(conn)
    assert (type(got[0]), type(got[-1])) == (h11.Request, h11.EndOfMessage)
    assert b"".join(e.data for e in got if isinstance(e, h11.Data)) == b"abc"


@pytest.mark.parametrize("extra", [1, 5000])
def test_a_head_over_the_limit_is_431_even_when_complete(extra: int) -> None:
    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=LIMIT)
    conn.receive_data(request_head(LIMIT + extra))
    with pytest.raises(h11.RemoteProtocolError) as info:
        events(conn)
    assert info.value.error_status_hint == 431


def test_the_limit_counts_a_head_that_came_with_the_previous_request() -> None:
    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=LIMIT)
    first = request_head(200, b"Content-Length: 2\r\n") + b"ok"
    conn.receive_data(first + request_head(LIMIT, b"Content-Length: 0\r\n")[:600])
    assert [type(e) for e in events(conn)] == [h11.Request, h11.Data, h11.EndOfMessage]
    respond(conn)
    conn.start_next_cycle()
    assert events(conn) == []  # the rest of the second head has not come yet
    conn.receive_data(request_head(LIMIT, b"Content-Length: 0\r\n")[600:] + b"GET")
    assert [type(e) for e in events(conn)] == [h11.Request, h11.EndOfMessage]
    assert conn.trailing_data == (b"GET", False)
    respond(conn)
    conn.start_next_cycle()
    conn.receive_data(request_head(LIMIT + 1)[3:])
    with pytest.raises(h11.RemoteProtocolError):
        events(conn)


def test_chunked_body_in_slices_and_long_framing_lines_refused() -> None:
    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=LIMIT)
    body = b"".join(b"%x;i=%d\r\n%s\r\n" % (700, i, bytes([65 + i]) * 700) for i in range(3)) + b"0\r\n\r\n"
    conn.receive_data(request_head(100, b"Transfer-Encoding: chunked\r\n") + body)
    got = events(conn)
    assert b"".join(e.data for e in got if isinstance(e, h11.Data)) == b"A" * 700 + b"B" * 700 + b"C" * 700
    assert isinstance(got[-1], h11.EndOfMessage)

    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=LIMIT)
    line = b"1;" + b" " * (MAX_FRAMING_LINE * 3) + b"\n\r\n"
    conn.receive_data(request_head(100, b"Transfer-Encoding: chunked\r\n") + line)
    with pytest.raises(h11.RemoteProtocolError) as info:
        events(conn)
    assert info.value.error_status_hint == 400


def test_upgrade_keeps_what_followed_the_head_and_eof_comes_last() -> None:
    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=LIMIT)
    head = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    conn.receive_data(head + b"\x81\x85frame" * 200)
    assert [type(e) for e in events(conn)] == [h11.Request, h11.EndOfMessage]
    assert conn.trailing_data == (b"\x81\x85frame" * 200, False)

    conn = Http11Connection(h11.SERVER, max_incomplete_event_size=LIMIT)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.receive_data(b"")
    assert [type(e) for e in events(conn)] == [h11.Request, h11.EndOfMessage, h11.ConnectionClosed]
    with pytest.raises(RuntimeError):
        conn.receive_data(b"more")
