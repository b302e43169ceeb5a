"""h11 driven in linear time, with an exact head limit: the HTTP/1.1 connection both sides use.

Rule: h11 only ever holds what it is about to parse: a head in small slices, counted against the head
limit; a chunked body in small slices, with its unfinished framing lines bounded; a Content-Length body
up to its end and never past it. Sans IO, like h11.
"""

from __future__ import annotations

from typing import Final

import h11

__all__ = ["FEED_SLICE", "MAX_FRAMING_LINE", "Http11Connection"]

FEED_SLICE: Final = 512
"""The most bytes h11 gets at once of a head or of a chunked body."""

MAX_FRAMING_LINE: Final = 512
"""The most bytes of an unfinished chunk-size line (or trailer section) h11 may hold before the next slice."""

_NEED_DATA: Final = h11.NEED_DATA
_HEAD_ENDS: Final = (h11.Request, h11.Response, h11.InformationalResponse)


class Http11Connection(h11.Connection):
    """An ``h11.Connection`` that keeps what it receives and gives it to h11 a little at a time.

    Same API as ``h11.Connection`` (``receive_data``, ``next_event``, ``trailing_data``...), with two fixes
    of how h11 is driven:

    * the head limit (``max_incomplete_event_size``) is exact. h11 checks it only while the head is
      incomplete, so a head that completes within one read passed with up to a whole read more (16 KiB
      reads: 32 KiB heads got through a 16 KiB limit). Here h11 gets a head in slices and never more than
      ``limit + 1`` bytes of it, and a complete head longer than the limit raises
      ``h11.RemoteProtocolError`` (status hint 431);
    * h11 never sees a long framing line. Its chunk-size pattern (``;.*`` before ``[ \\t]*\\r\\n``)
      backtracks in time quadratic in the line's length when the line does not match (a chunk
      extension of spaces before a bare LF: 16 KiB cost 0.13 s, 64 KiB 3 s). A chunked body goes to h11
      in slices of ``FEED_SLICE`` bytes, and an unfinished framing line longer than ``MAX_FRAMING_LINE``
      raises ``h11.RemoteProtocolError`` (status hint 400) before the next slice. A Content-Length body
      goes at once, but never past its end, so that the next message's head and body are sliced too.

    Args:
        our_role: ``h11.CLIENT`` or ``h11.SERVER``.
        max_incomplete_event_size: The head limit, in bytes (status line or request line and headers).
    """

    def __init__(self, our_role: type[h11.CLIENT] | type[h11.SERVER], max_incomplete_event_size: int) -> None:
        super().__init__(our_role, max_incomplete_event_size=max_incomplete_event_size)
        self._head_limit = max_incomplete_event_size
        self._unfed = b""
        self._offset = 0
        self._eof = False  # the peer closed (after the kept bytes)
        self._eof_given = False  # ... and h11 was told
        # Bytes of the current head given to h11 (None between a head and the next cycle).
        self._head_fed: int | None = 0
        # The body being read: "chunked", its remaining Content-Length, or None (to EOF, or none).
        self._body: str | int | None = None

    # -- the h11 API ------------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Keep ``data`` (b"": the peer closed) for ``next_event`` to give to h11."""
        if self._eof and data:
            raise RuntimeError("received close, then received more data?")
        if not data:
            self._eof = True
        elif self._offset < len(self._unfed):
            self._unfed = self._unfed[self._offset :] + data
            self._offset = 0
        else:
            self._unfed, self._offset = bytes(data), 0

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """What was received and not parsed (h11's buffer and what it has not got yet), and the EOF flag."""
        buffered, closed = super().trailing_data
        return buffered + self._unfed[self._offset :], closed or self._eof

    def start_next_cycle(self) -> None:
        """As h11's; the next head is counted from what h11 already holds of it."""
        super().start_next_cycle()
        self._head_fed = self._h11_buffered()

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        """As h11's, giving h11 the kept bytes as it needs them.

        Raises:
            h11.RemoteProtocolError: as h11's, and for a head longer than the limit (431) or an unfinished
                chunk framing line longer than ``MAX_FRAMING_LINE`` (400).
        """
        while True:
            event = super().next_event()
            if event is _NEED_DATA:
                if self._offset < len(self._unfed):
                    self._feed()
                    continue
                if self._eof and not self._eof_given:
                    self._eof_given = True
                    super().receive_data(b"")
                    continue
                return event
            if isinstance(event, h11.Data):
                if isinstance(self._body, int):
                    self._body -= len(event.data)
            elif isinstance(event, _HEAD_ENDS):
                self._head_ended(event)
            elif isinstance(event, h11.EndOfMessage):
                self._body = None
            return event

    # -- feeding ---------------------------------------------------------------------------------------
    def _h11_buffered(self) -> int:
        return len(super().trailing_data[0])

    def _feed(self) -> None:
        start = self._offset
        if self._head_fed is not None and self._reading_head():
            room = self._head_limit + 1 - self._head_fed
            end = start + max(1, min(FEED_SLICE, room))
        elif self._body == "chunked":
            if self._h11_buffered() > MAX_FRAMING_LINE:
                raise h11.RemoteProtocolError(
                    f"chunk framing line longer than {MAX_FRAMING_LINE} bytes", error_status_hint=400
                )
            end = start + FEED_SLICE
        elif isinstance(self._body, int):
            end = start + max(1, self._body)
        else:
            end = len(self._unfed)
        piece = self._unfed[start:end]
        self._offset = start + len(piece)
        if self._offset >= len(self._unfed):
            self._unfed, self._offset = b"", 0
        if self._head_fed is not None and self._reading_head():
            self._head_fed += len(piece)
        super().receive_data(piece)

    def _reading_head(self) -> bool:
        state = self.their_state
        if self.their_role is h11.CLIENT:
            return state is h11.IDLE
        return state is h11.IDLE or state is h11.SEND_RESPONSE

    def _head_ended(self, event: h11.Request | h11.Response | h11.InformationalResponse) -> None:
        remaining = self._h11_buffered()
        size = (self._head_fed or 0) - remaining
        if isinstance(event, h11.InformationalResponse):
            self._head_fed = remaining  # another head follows (the final response)
        else:
            self._head_fed = None
            self._body = None
            for name, value in event.headers:
                if name == b"transfer-encoding":
                    self._body = "chunked"
                    break
                if name == b"content-length":
                    self._body = int(value)
        if size > self._head_limit:
            raise h11.RemoteProtocolError(f"head larger than {self._head_limit} bytes", error_status_hint=431)
