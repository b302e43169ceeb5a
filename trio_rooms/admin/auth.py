"""The Admin UI's login: basic auth against a bcrypt hash, checked in a worker thread, with a bound on
failed attempts per address, and the session ids a password login earns.

Rule: nothing here blocks the event loop or grows without bound: a bcrypt check (about 100 ms of CPU)
runs in a thread under a small limiter; the failures and the sessions are bounded, oldest first out.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import trio

from ..errors import install_hint

__all__ = ["BasicAuth", "FailedLogins", "SessionIds", "check_auth_option"]

#: A bcrypt hash: "$2a$", "$2b$" or "$2y$", two digits of cost, 53 characters of salt and digest.
_BCRYPT_HASH: Final = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
#: bcrypt reads 72 bytes of a password; a longer one never matches here (bcrypt 5 refuses it).
_MAX_PASSWORD_BYTES: Final = 72


def check_auth_option(auth: Mapping[str, Any] | None) -> tuple[str, bytes] | None:
    """The (username, bcrypt hash) of ``instrument``'s ``auth`` option, or None for no auth.

    Raises:
        ValueError: not None and not ``{"type": "basic", "username": str, "password": bcrypt_hash}``.
        ImportError: bcrypt is not installed (the ``admin`` extra).
    """
    if auth is None:
        return None
    if not isinstance(auth, Mapping) or auth.get("type") != "basic":
        raise ValueError('auth is None or {"type": "basic", "username": ..., "password": bcrypt_hash}')
    username, password = auth.get("username"), auth.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ValueError("auth: username and password are str")
    if _BCRYPT_HASH.fullmatch(password) is None:
        raise ValueError("auth: the password must be a bcrypt hash (bcrypt.hashpw(...).decode())")
    try:
        import bcrypt  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"the Admin UI's basic auth needs bcrypt: {install_hint('admin')}") from exc
    return username, password.encode("ascii")


class FailedLogins:
    """Failed logins per address in a sliding window, for at most ``max_addresses`` addresses (the
    oldest forgotten first): past ``limit`` failures an address is refused without a check until its
    window ends."""

    def __init__(self, *, limit: int = 5, window: float = 60.0, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _entry(self, address: str, now: float) -> tuple[int, float]:
        entry = self._failures.get(address)
        if entry is None or now - entry[1] >= self.window:
            return (0, now)
        return entry

    def blocked(self, address: str) -> bool:
        """Whether ``address`` failed ``limit`` times in its current window."""
        return self._entry(address, trio.current_time())[0] >= self.limit

    def failed(self, address: str) -> None:
        """Count one failure of ``address``."""
        now = trio.current_time()
        count, start = self._entry(address, now)
        self._failures[address] = (count + 1, start)
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """A login of ``address`` succeeded: its failures are forgotten."""
        self._failures.pop(address, None)

    def __len__(self) -> int:
        return len(self._failures)


class SessionIds:
    """The session ids that password logins earned: each valid for ``ttl`` seconds, at most
    ``max_sessions`` at once (the oldest forgotten first)."""

    def __init__(self, *, ttl: float = 24 * 3600.0, max_sessions: int = 1024) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def new(self) -> str:
        """A fresh session id (128 random bits, hex), valid from now."""
        now = trio.current_time()
        self._purge(now)
        session_id = secrets.token_hex(16)
        self._expiry[session_id] = now + self.ttl
        while len(self._expiry) > self.max_sessions:
            self._expiry.popitem(last=False)
        return session_id

    def known(self, session_id: object) -> bool:
        """Whether ``session_id`` is a session id still valid."""
        if not isinstance(session_id, str):
            return False
        expiry = self._expiry.get(session_id)
        return expiry is not None and trio.current_time() < expiry

    def _purge(self, now: float) -> None:
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                return
            del self._expiry[oldest]

    def __len__(self) -> int:
        return len(self._expiry)


class BasicAuth:
    """Checks the ``{username, password}`` or ``{sessionId}`` of an admin's CONNECT.

    Args:
        username: the expected username.
        password_hash: the bcrypt hash of the password.
        checks_at_once: bcrypt checks running at once in worker threads (others wait their turn).
    """

    def __init__(self, username: str, password_hash: bytes, *, checks_at_once: int = 2) -> None:
        self.username = username
        self._hash = password_hash
        self._limiter = trio.CapacityLimiter(checks_at_once)
        self.failures = FailedLogins()
        self.sessions = SessionIds()

    async def login(self, auth: Mapping[str, Any], address: str) -> str | None:
        """Check the CONNECT payload ``auth`` from ``address``.

        Returns:
            None when accepted by a known ``sessionId``, a new session id after a password login.

        Raises:
            PermissionError: refused (wrong credentials, or too many failures from ``address``).
        """
        if self.sessions.known(auth.get("sessionId")):
            await trio.lowlevel.checkpoint()
            return None
        if self.failures.blocked(address):
            await trio.lowlevel.checkpoint()
            raise PermissionError("too many failed logins")
        username, password = auth.get("username"), auth.get("password")
        matched = False
        if isinstance(username, str) and isinstance(password, str):
            secret = password.encode()
            if len(secret) <= _MAX_PASSWORD_BYTES:
                check: Callable[[], bool] = lambda: _checkpw(secret, self._hash)  # noqa: E731
                matched = await trio.to_thread.run_sync(check, limiter=self._limiter)
            matched = matched and secrets.compare_digest(username.encode(), self.username.encode())
        else:
            await trio.lowlevel.checkpoint()
        if not matched:
            self.failures.failed(address)
            raise PermissionError("invalid credentials")
        self.failures.succeeded(address)
        return self.sessions.new()


def _checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    return bool(bcrypt.checkpw(password, hashed))
