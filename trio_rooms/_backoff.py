"""Reconnection delays, shared by the Trio client and the Redis adapter."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """socket.io-client's backoff: ``base * 2**attempt``, jittered by +-``randomization``, capped.

    Args:
        base: the first delay, in seconds.
        cap: the largest delay.
        randomization: the jitter factor in [0, 1] (0.5 as socket.io-client; 0 is no jitter).
    """

    def __init__(self, base: float, cap: float, randomization: float = 0.5) -> None:
        self.base, self.cap, self.randomization = base, cap, randomization
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (counts an attempt)."""
        delay: float = self.base * 2.0 ** min(self.attempts, 64)
        self.attempts += 1
        if self.randomization:
            rand = random.random()
            deviation = rand * self.randomization * delay
            delay = delay - deviation if int(rand * 10) & 1 == 0 else delay + deviation
        return min(delay, self.cap)

    def reset(self) -> None:
        """Start again from ``base`` (after a success)."""
        self.attempts = 0
