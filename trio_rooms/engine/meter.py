"""``TrafficMeter``: the Engine.IO messages and bytes in and out of the metered sessions (the Admin
UI's aggregated events, or any tool like it). A session with no meter writes straight to its
transport: the broadcast path does no per-recipient work for it.
"""

from __future__ import annotations

from ..protocol.encoded import Encoded

__all__ = ["TrafficMeter"]


class TrafficMeter:
    """Running totals of the Engine.IO MESSAGE packets of every metered session (never reset; a reader
    takes differences). ``bytes_*`` counts each packet's data (a text packet's UTF-8 bytes after its
    type character, a binary packet's bytes), as Node's ``packet`` and ``packetCreate`` events carry.

    Attributes:
        packets_in: messages received.
        bytes_in: their bytes.
        packets_out: messages written (a Socket.IO packet with attachments is one per part).
        bytes_out: their bytes.
    """

    __slots__ = ("bytes_in", "bytes_out", "packets_in", "packets_out")

    def __init__(self) -> None:
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0

    def count_in(self, message: str | bytes) -> None:
        """One message received."""
        self.packets_in += 1
        self.bytes_in += len(message.encode()) if isinstance(message, str) else len(message)

    def count_out(self, item: Encoded) -> None:
        """``item`` was written to one session."""
        self.packets_out += len(item.segments)
        self.bytes_out += item.payload_size

    def totals(self) -> dict[str, int]:
        """The four totals by the names of the Admin UI's aggregated events."""
        return {
            "packetsIn": self.packets_in,
            "packetsOut": self.packets_out,
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
        }
