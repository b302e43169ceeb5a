"""Interop checks: python-socketio's ``AsyncClient`` (asyncio) against the trio_rooms interop app.

The app is ``app.py`` beside this file. The checks mirror those of ``js_client.mjs`` where the Python
client can express them, over one transport mode:

    default    the client's default options (HTTP long-polling, then the upgrade to WebSocket)
    websocket  ``transports=["websocket"]`` (WebSocket from the first request)

Usage: ``python py_client.py http://127.0.0.1:PORT [default|websocket] [overall_timeout_s]``

Prints one line per check, ``ok <name>`` or ``FAIL <name>: <detail>``, then a summary line, and exits
0 only when every check passed (1 on a failed check, 2 on the overall timeout, 3 on bad usage). Every
connect, ack and awaited event is bounded (2 s), every check too (5 s), the whole run as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import socketio  # type: ignore[import-untyped, import-not-found, unused-ignore]

MODES: dict[str, list[str] | None] = {"default": None, "websocket": ["websocket"]}
FIRST_TRANSPORT = {"default": "polling", "websocket": "websocket"}
CHECK_S = 5.0  # the bound of one check
STEP_S = 2.0  # the bound of one connect, ack or expected event
SETTLE_S = 0.25  # how long to wait for deliveries that must NOT (or not twice) arrive
DEFAULT_OVERALL_S = 40.0


class CheckError(Exception):
    """A check's expectation was not met; the message says which and how."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckError(what)


def expect_eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise CheckError(f"{what}: expected {expected!r}, got {actual!r}")


_tags = 0


def tag(what: str) -> str:
    global _tags
    _tags += 1
    return f"{what}-{_tags}-{os.urandom(4).hex()}"


def describe(value: Any) -> Any:
    """Replace every bytes value by ``{"bytes": <hex>}``, as app.py's describe() does on the server."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]
    return value


async def ack(client: Any, event: str, *args: Any, namespace: str = "/") -> list[Any]:
    """Emit with a callback; return the list of the ack's arguments."""
    answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    def callback(*values: Any) -> None:
        if not answer.done():
            answer.set_result(list(values))

    # A tuple is sent as that many arguments (an empty tuple as none).
    await client.emit(event, tuple(args), namespace=namespace, callback=callback)
    try:
        return await asyncio.wait_for(answer, STEP_S)
    except TimeoutError:
        raise CheckError(f'no ack for "{event}" within {STEP_S} s') from None


async def ack1(client: Any, event: str, *args: Any, namespace: str = "/") -> Any:
    answer = await ack(client, event, *args, namespace=namespace)
    expect(len(answer) == 1, f'ack of "{event}" should carry one argument, got {answer!r}')
    return answer[0]


class Inbox:
    """Every event of some names received by one client (on one namespace), for counting."""

    def __init__(self, client: Any, *events: str, namespace: str = "/") -> None:
        self.received: dict[str, list[tuple[Any, ...]]] = {event: [] for event in events}
        self._changed = asyncio.Event()
        for event in events:
            client.on(event, self._handler(event), namespace=namespace)

    def _handler(self, event: str) -> Callable[..., Awaitable[None]]:
        async def handler(*args: Any) -> None:
            self.received[event].append(args)
            self._changed.set()

        return handler

    def count(self, event: str, wanted_tag: str) -> int:
        return sum(1 for args in self.received[event] if args and describe(args[0]) == {"tag": wanted_tag})

    async def next(self, event: str, timeout: float = STEP_S) -> tuple[Any, ...]:
        """The first event of that name (waiting for it)."""
        deadline = time.monotonic() + timeout
        while not self.received[event]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckError(f'timed out after {timeout} s waiting for "{event}"')
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.received[event][0]


class Ctx:
    """One per check: it opens clients and disconnects every one of them when the check ends."""

    def __init__(self, url: str, mode: str) -> None:
        self.url = url
        self.mode = mode
        self.clients: list[Any] = []

    def new(self) -> Any:
        """A new client (its own Engine.IO connection), to register handlers on before connecting."""
        client = socketio.AsyncClient(reconnection=False, request_timeout=STEP_S)
        self.clients.append(client)
        return client

    async def connect(
        self,
        client: Any = None,
        namespaces: Sequence[str] = ("/",),
        auth: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Any:
        """Connect ``client`` (a new one when None) to ``namespaces``; return it once connected."""
        client = self.new() if client is None else client
        url = self.url + ("?" + urlencode(query) if query else "")
        try:
            await asyncio.wait_for(
                client.connect(
                    url,
                    auth=auth,
                    transports=MODES[self.mode],
                    namespaces=list(namespaces),
                    wait=wait,
                    wait_timeout=STEP_S,
                ),
                2 * STEP_S,
            )
        except TimeoutError:
            raise CheckError(f"connecting to {list(namespaces)} timed out") from None
        except socketio.exceptions.ConnectionError as exc:
            raise CheckError(f"connecting to {list(namespaces)} failed: {exc}") from None
        return client

    async def refused(self, namespace: str, auth: dict[str, Any] | None = None) -> Any:
        """A connection that must be refused: return what the ``connect_error`` handler received."""
        client = self.new()
        errors: list[Any] = []

        async def on_connect_error(*data: Any) -> None:
            errors.append(data[0] if len(data) == 1 else list(data))

        client.on("connect_error", on_connect_error, namespace=namespace)
        try:
            await asyncio.wait_for(
                client.connect(
                    self.url,
                    auth=auth,
                    transports=MODES[self.mode],
                    namespaces=[namespace],
                    wait_timeout=STEP_S,
                ),
                2 * STEP_S,
            )
        except TimeoutError:
            raise CheckError(f"no connect_error from {namespace} within {2 * STEP_S} s") from None
        except socketio.exceptions.ConnectionError:
            pass
        else:
            raise CheckError(f"connected to {namespace}, expected connect_error")
        expect_eq(len(errors), 1, f"connect_error events for {namespace}")
        return errors[0]

    async def close(self) -> None:
        for client in self.clients:
            # Best effort: the outcome of the check is already known.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), STEP_S)


async def last_disconnect(observer: Any, sid: str) -> dict[str, Any]:
    """Poll ``last_disconnect`` until the server recorded what its disconnect handlers saw."""
    deadline = time.monotonic() + STEP_S
    while True:
        answer = await ack(observer, "last_disconnect", sid)
        if len(answer) == 1 and answer[0]:
            found: dict[str, Any] = answer[0]
            return found
        if time.monotonic() > deadline:
            raise CheckError(f"the server recorded no disconnect for {sid}")
        await asyncio.sleep(0.05)


async def wait_until(condition: Callable[[], bool], timeout: float = STEP_S) -> bool:
    """Poll ``condition`` every 20 ms until it holds (True) or ``timeout`` passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def sid_of(client: Any, namespace: str = "/") -> str:
    sid = client.get_sid(namespace)
    expect(isinstance(sid, str) and bool(sid), f"no socket id on {namespace}")
    assert isinstance(sid, str)
    return sid


# ---------------------------------------------------------------- checks

Check = Callable[[Ctx], Awaitable[None]]
CHECKS: list[tuple[str, Check]] = []


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS.append((name, fn))
        return fn

    return register


@check("connect and handshake auth/query")
async def _connect_handshake(ctx: Ctx) -> None:
    auth = {"token": "good", "n": 1, "nested": {"a": [1, "x"]}}
    c = await ctx.connect(auth=auth, query={"foo": "bar", "n": "2"})
    sid = sid_of(c)
    hs = await ack1(c, "handshake")
    expect_eq(hs["id"], sid, "server socket.id vs the id in the CONNECT answer")
    expect_eq(hs["auth"], auth, "handshake.auth")
    query = hs["query"]
    expect_eq(query.get("foo"), "bar", f"handshake.query.foo (query {query!r})")
    expect_eq(query.get("n"), "2", f"handshake.query.n (query {query!r})")
    expect_eq(query.get("EIO"), "4", f"handshake.query.EIO (query {query!r})")
    expect_eq(query.get("transport"), FIRST_TRANSPORT[ctx.mode], f"handshake.query.transport ({query!r})")
    expect_eq(hs["rooms"], [sid], "a new socket is in its own room only")
    expect(sid != c.eio.sid, "the namespace socket id must not be the Engine.IO sid")
    bare = await ctx.connect()
    expect_eq((await ack1(bare, "handshake"))["auth"], {}, "handshake.auth without auth")
    expect(sid_of(bare) != sid, "two sockets got the same id")


@check("middleware refusal (connect_error message and data)")
async def _middleware_refusal(ctx: Ctx) -> None:
    err = await ctx.refused("/", auth={"token": "bad"})
    expect_eq(err, {"message": "not authorized", "data": {"code": 42}}, "connect_error of /")
    err = await ctx.refused("/admin", auth={"role": "guest"})
    expect_eq(err, {"message": "admins only"}, "connect_error of /admin (no data)")


@check("unknown namespace -> Invalid namespace")
async def _unknown_namespace(ctx: Ctx) -> None:
    expect_eq(await ctx.refused("/nope"), {"message": "Invalid namespace"}, "connect_error of /nope")
    err = await ctx.refused("/dyn-abc")
    expect_eq(err, {"message": "Invalid namespace"}, "/dyn-abc does not match ^/dyn-\\d+$")


@check("rooms join/leave")
async def _rooms_join_leave(ctx: Ctx) -> None:
    c = await ctx.connect()
    sid = sid_of(c)
    r1, r2, r3 = tag("r"), tag("r"), tag("r")
    expect_eq(await ack1(c, "join", r1), sorted([r1, sid]), "join one room")
    expect_eq(await ack1(c, "join", [r2, r3]), sorted([r1, r2, r3, sid]), "join a list of rooms")
    expect_eq(await ack1(c, "join", r1), sorted([r1, r2, r3, sid]), "joining again is a no-op")
    expect_eq(await ack1(c, "leave", r2), sorted([r1, r3, sid]), "leave")
    expect_eq(await ack1(c, "leave", tag("never")), sorted([r1, r3, sid]), "leaving a non-member room")
    inbox = Inbox(c, "msg")
    sender = await ctx.connect()
    t2, t3 = tag("t"), tag("t")
    await ack(sender, "to_rooms", r2, [], {"tag": t2})
    await ack(sender, "to_rooms", r3, [], {"tag": t3})
    await asyncio.sleep(SETTLE_S)
    expect_eq(inbox.count("msg", t2), 0, "deliveries to a left room")
    expect_eq(inbox.count("msg", t3), 1, "deliveries to a joined room")


@check("union broadcast to overlapping rooms (each member once)")
async def _union(ctx: Ctx) -> None:
    a, b, both, none, sender = await asyncio.gather(*(ctx.connect() for _ in range(5)))
    r1, r2 = tag("r"), tag("r")
    await ack(a, "join", r1)
    await ack(b, "join", r2)
    await ack(both, "join", [r1, r2])
    await ack(sender, "join", r1)
    inboxes = [Inbox(c, "msg") for c in (a, b, both, none, sender)]
    t = tag("union")
    expect_eq(await ack(sender, "to_rooms", [r1, r2], [], {"tag": t}), [True], "to_rooms ack")
    await asyncio.sleep(SETTLE_S)
    got = [i.count("msg", t) for i in inboxes]
    expect_eq(got, [1, 1, 1, 0, 1], "arrivals per socket [in r1, in r2, in both, in none, sender in r1]")


@check("except_ (rooms and socket ids)")
async def _except(ctx: Ctx) -> None:
    a, b, both, sender = await asyncio.gather(*(ctx.connect() for _ in range(4)))
    r1, r2 = tag("r"), tag("r")
    await ack(a, "join", r1)
    await ack(b, "join", r2)
    await ack(both, "join", [r1, r2])
    inboxes = [Inbox(c, "msg") for c in (a, b, both, sender)]
    t1, t2, t3 = tag("except"), tag("except-id"), tag("except-all")
    await ack(sender, "to_rooms", [r1, r2], [r2], {"tag": t1})
    await ack(sender, "to_rooms", [r1, r2], [sid_of(a)], {"tag": t2})
    await ack(sender, "to_rooms", r1, [r1], {"tag": t3})
    await asyncio.sleep(SETTLE_S)
    expect_eq(
        [i.count("msg", t1) for i in inboxes], [1, 0, 0, 0], "to(r1,r2).except_(r2) [a, b, both, sender]"
    )
    expect_eq([i.count("msg", t2) for i in inboxes], [0, 1, 1, 0], "to(r1,r2).except_(a.id)")
    expect_eq([i.count("msg", t3) for i in inboxes], [0, 0, 0, 0], "to(r1).except_(r1)")


@check("socket.to / socket.broadcast exclude the sender")
async def _socket_to(ctx: Ctx) -> None:
    a, b, c, outsider = await asyncio.gather(*(ctx.connect() for _ in range(4)))
    r1, r2 = tag("r"), tag("r")
    await ack(a, "join", [r1, r2])
    await ack(b, "join", r1)
    await ack(c, "join", [r1, r2])
    inboxes = [Inbox(x, "msg") for x in (a, b, c, outsider)]
    t, tb = tag("socket-to"), tag("broadcast")
    await ack(a, "socket_to", [r1, r2], {"tag": t})
    await ack(a, "socket_broadcast", {"tag": tb})
    await asyncio.sleep(SETTLE_S)
    expect_eq([i.count("msg", t) for i in inboxes], [0, 1, 1, 0], "socket.to(r1,r2) [sender, b, c, outsider]")
    expect_eq(
        [i.count("msg", tb) for i in inboxes], [0, 1, 1, 1], "socket.broadcast [sender, b, c, outsider]"
    )


@check("private message by socket id")
async def _private(ctx: Ctx) -> None:
    a, b, c = await asyncio.gather(*(ctx.connect() for _ in range(3)))
    inboxes = [Inbox(x, "private") for x in (a, b, c)]
    t = tag("private")
    await ack(a, "private", sid_of(b), {"tag": t})
    await asyncio.sleep(SETTLE_S)
    expect_eq(
        inboxes[1].received["private"], [({"tag": t}, sid_of(a))], "the target got (payload, sender id)"
    )
    expect_eq(inboxes[0].received["private"], [], "private messages to the sender")
    expect_eq(inboxes[2].received["private"], [], "private messages to a third socket")


@check("acks client->server (callback and call(); 0, 1, 2+ args)")
async def _acks_client_to_server(ctx: Ctx) -> None:
    c = await ctx.connect()
    expect_eq(await ack(c, "ack_none"), [], "handler returning None acks with no argument")
    expect_eq(await ack(c, "echo"), [], "echo of nothing acks with no argument")
    expect_eq(await ack(c, "echo", "one"), ["one"], "one argument")
    many = ["two", 2, 2.5, True, None, {"k": [1, {"v": "é✓😀"}]}, [], {}, -(2**53 - 1)]
    expect_eq(await ack(c, "echo", *many), many, "2+ arguments (a tuple is spread)")
    big = "x" * 200_000
    expect_eq(await ack(c, "echo", big), [big], "a 200 kB argument")
    answers = await asyncio.gather(*(ack(c, "echo", i, f"n{i}") for i in range(50)))
    for i, answer in enumerate(answers):
        expect_eq(answer, [i, f"n{i}"], f"concurrent ack #{i}")
    # call(): one value, several values (a tuple), none (None)
    expect_eq(await c.call("echo", "solo", timeout=STEP_S), "solo", "call() with a one-argument ack")
    expect_eq(await c.call("echo", (1, "b"), timeout=STEP_S), (1, "b"), "call() with a two-argument ack")
    expect_eq(await c.call("ack_none", timeout=STEP_S), None, "call() with an empty ack")


@check("acks server->client (emit_with_ack)")
async def _acks_server_to_client(ctx: Ctx) -> None:
    c = ctx.new()

    async def question(q: dict[str, Any]) -> Any:
        # python-socketio acks with what the handler returns: a tuple is several arguments.
        mode = q.get("mode")
        if mode == "one":
            return q["x"] * 2
        if mode == "many":
            return (q["x"], "b", {"c": [True]})
        if mode == "binary":
            return (bytes([q["x"]]), {"b": b"ok"})
        if mode == "late":
            await asyncio.sleep(0.6)  # the ack goes out after the server's 0.3 s timeout
        return None

    c.on("question", question)
    await ctx.connect(c)
    expect_eq(await ack1(c, "ask_client", {"mode": "one", "x": 21}, 2), {"n": 1, "args": [42]}, "1 argument")
    expect_eq(await ack1(c, "ask_client", {"mode": "none"}, 2), {"n": 0, "args": []}, "no argument")
    expect_eq(
        await ack1(c, "ask_client", {"mode": "many", "x": 1}, 2),
        {"n": 3, "args": [1, "b", {"c": [True]}]},
        "3 arguments",
    )
    expect_eq(
        await ack1(c, "ask_client", {"mode": "binary", "x": 7}, 2),
        {"n": 2, "args": [{"bytes": "07"}, {"b": {"bytes": b"ok".hex()}}]},
        "binary ack",
    )
    expect_eq(await ack1(c, "ask_client", {"mode": "late"}, 0.3), {"timeout": True}, "AckTimeout")
    await asyncio.sleep(0.5)  # the late ack arrives: the server ignores it
    expect_eq(await ack(c, "echo", "after late ack"), ["after late ack"], "the socket after a late ack")


@check("broadcast with acks (to(room).timeout().emit_with_ack)")
async def _broadcast_acks(ctx: Ctx) -> None:
    clients: list[Any] = []
    for answer_mode in ("sid", "sid", "late"):
        c = ctx.new()

        def make(client: Any, answer_mode: str) -> Callable[[Any], Awaitable[Any]]:
            async def question(q: Any) -> Any:
                if answer_mode == "late":
                    await asyncio.sleep(0.6)
                    return "late"
                return client.get_sid("/")

            return question

        c.on("question", make(c, answer_mode))
        clients.append(c)
    await asyncio.gather(*(ctx.connect(c) for c in clients))
    a, b, late = clients
    asker = await ctx.connect()
    r, rs = tag("r"), tag("r")
    await ack(a, "join", [r, rs])
    await ack(b, "join", [r, rs])
    await ack(late, "join", rs)
    ok = await ack1(asker, "ask_room", r, "who?", 2)
    expect_eq(ok["timeout"], False, f"unexpected timeout ({ok!r})")
    expect_eq(sorted(ok["responses"]), sorted([sid_of(a), sid_of(b)]), "one answer per member")
    partial = await ack1(asker, "ask_room", rs, "who?", 0.3)
    expect_eq(partial["timeout"], True, f"expected AckTimeout ({partial!r})")
    expect_eq(sorted(partial["responses"]), sorted([sid_of(a), sid_of(b)]), "AckTimeout.responses")


@check("binary both ways")
async def _binary(ctx: Ctx) -> None:
    c = ctx.new()
    inbox = Inbox(c, "binary")
    await ctx.connect(c)
    args = [
        {"a": bytes([0, 1, 2, 255]), "list": [b"hello", {"deep": b""}], "n": 1},
        os.urandom(1024),
        "text",
        [bytes([9]), bytes([10])],
    ]
    expect_eq(await ack1(c, "describe", *args), describe(args), "server-side view of the binary arguments")
    echoed = await ack(c, "echo_binary", *args)
    expect_eq(describe(echoed), describe(args), "binary ack")
    expect(isinstance(echoed[1], bytes), f"top-level binary argument came back as {type(echoed[1]).__name__}")
    await ack(c, "send_binary")
    received = await inbox.next("binary")
    expect_eq(
        describe(received),
        [
            {
                "a": {"bytes": "000102"},
                "nested": [{"bytes": "ff"}, {"deep": {"bytes": b"trio".hex()}}],
                "text": "t",
            },
            {"bytes": ""},
            {"bytes": b"last".hex()},
        ],
        "server-emitted binary event",
    )


@check("server emits keep their order (text and binary interleaved)")
async def _order(ctx: Ctx) -> None:
    c = ctx.new()
    seen: list[list[int]] = []

    async def on_burst(i: int, buf: bytes | None = None) -> None:
        seen.append([i, int.from_bytes(buf, "big")] if buf is not None else [i])

    c.on("burst", on_burst)
    await ctx.connect(c)
    await ack(c, "burst", 300)
    await wait_until(lambda: len(seen) >= 300)
    expected = [[i, i] if i % 3 == 0 else [i] for i in range(300)]
    expect(
        seen == expected,
        f"burst out of order or incomplete: {len(seen)} events, first wrong {first_diff(seen, expected)}",
    )


def first_diff(got: list[Any], expected: list[Any]) -> str:
    for i, (g, e) in enumerate(zip(got, expected, strict=False)):
        if g != e:
            return f"#{i}: {g!r} instead of {e!r}"
    return f"none in the first {min(len(got), len(expected))}"


@check("handler exception keeps the socket connected")
async def _handler_exception(ctx: Ctx) -> None:
    c = ctx.new()
    reasons: list[Any] = []

    async def on_disconnect(reason: Any = None) -> None:
        reasons.append(reason)

    c.on("disconnect", on_disconnect)
    await ctx.connect(c)
    acked: list[Any] = []
    await c.emit("boom", callback=lambda *a: acked.append(a))
    await asyncio.sleep(0.3)
    expect_eq(acked, [], "a handler that raised acked")
    expect_eq(await ack(c, "echo", "still here"), ["still here"], "echo after the exception")
    expect_eq(reasons, [], "disconnects")


@check("several namespaces on one connection (multiplexed) and dynamic namespaces")
async def _namespaces(ctx: Ctx) -> None:
    c = ctx.new()
    welcome = Inbox(c, "welcome", namespace="/admin")
    admin_inbox = Inbox(c, "admin_msg", namespace="/admin")
    main_inbox = Inbox(c, "admin_msg", "msg", "dyn_msg")
    dyn_inbox = Inbox(c, "dyn_msg", namespace="/dyn-42")
    await ctx.connect(c, namespaces=["/", "/admin", "/dyn-42"], auth={"role": "admin"})
    main_sid, admin_sid, dyn_sid = sid_of(c), sid_of(c, "/admin"), sid_of(c, "/dyn-42")
    expect_eq(len({main_sid, admin_sid, dyn_sid}), 3, "socket ids are per namespace")
    expect_eq(await welcome.next("welcome"), ("/admin", admin_sid), "emit from the connection handler")
    expect_eq(
        await ack1(c, "whoami", namespace="/admin"),
        {"nsp": "/admin", "id": admin_sid, "auth": {"role": "admin"}},
        "whoami on /admin",
    )
    expect_eq(
        await ack1(c, "whoami", namespace="/dyn-42"), {"nsp": "dyn", "id": dyn_sid}, "whoami on /dyn-42"
    )

    # server.of("/admin").to(room).except_(...) reaches /admin sockets only.
    admin2 = await ctx.connect(namespaces=["/admin"], auth={"role": "admin"})
    room = tag("r")
    await ack(c, "join", room, namespace="/admin")
    await ack(admin2, "join", room, namespace="/admin")
    await ack(c, "join", room)
    admin2_inbox = Inbox(admin2, "admin_msg", namespace="/admin")
    t = tag("admin")
    await ack(c, "admin_to", room, [sid_of(admin2, "/admin")], {"tag": t})
    await asyncio.sleep(SETTLE_S)
    expect_eq(admin_inbox.received["admin_msg"], [({"tag": t},)], "/admin socket in the room")
    expect_eq(admin2_inbox.received["admin_msg"], [], "the excepted /admin socket")
    expect_eq(main_inbox.received, {"admin_msg": [], "msg": [], "dyn_msg": []}, "the / socket in the room")

    # Emitting on the dynamic parent reaches every child namespace.
    dyn7 = ctx.new()
    dyn7_inbox = Inbox(dyn7, "dyn_msg", namespace="/dyn-7")
    await ctx.connect(dyn7, namespaces=["/dyn-7"])
    td = tag("dyn")
    await ack(c, "dyn_broadcast", {"tag": td})
    await asyncio.sleep(SETTLE_S)
    expect_eq(dyn_inbox.received["dyn_msg"], [({"tag": td},)], "/dyn-42")
    expect_eq(dyn7_inbox.received["dyn_msg"], [({"tag": td},)], "/dyn-7")
    expect_eq(main_inbox.received["dyn_msg"], [], "/ got a dynamic namespace's event")

    # A refused namespace on a shared connection leaves the others connected.
    refused: list[Any] = []
    shared = ctx.new()

    async def on_refused(*data: Any) -> None:
        refused.append(data[0] if len(data) == 1 else list(data))

    shared.on("connect_error", on_refused, namespace="/admin-nope")
    await ctx.connect(shared, namespaces=["/", "/admin-nope"], wait=False)
    await wait_until(lambda: bool(refused) and shared.get_sid("/") is not None)
    expect_eq(refused, [{"message": "Invalid namespace"}], "connect_error of /admin-nope")
    expect(shared.get_sid("/") is not None, "/ did not connect beside the refused namespace")
    expect_eq(await ack(shared, "echo", 1), [1], "/ after a refused namespace on its connection")


@check("fetch_sockets / sockets_join / sockets_leave")
async def _fetch_sockets(ctx: Ctx) -> None:
    a, b, c = await asyncio.gather(*(ctx.connect() for _ in range(3)))
    r, extra = tag("r"), tag("extra")
    await ack(a, "join", r)
    await ack(b, "join", r)
    found = await ack1(c, "fetch_sockets", r)
    expected = sorted(
        ({"id": sid_of(x), "rooms": sorted([r, sid_of(x)])} for x in (a, b)), key=lambda d: str(d["id"])
    )
    expect_eq(found, expected, "fetch_sockets")
    await ack(c, "sockets_join", r, extra)
    expect_eq(await ack1(a, "rooms"), sorted([r, extra, sid_of(a)]), "sockets_join")
    expect_eq(await ack1(c, "rooms"), [sid_of(c)], "sockets_join touched a non-member")
    await ack(c, "sockets_leave", r, extra)
    expect_eq(await ack1(b, "rooms"), sorted([r, sid_of(b)]), "sockets_leave")


@check("server-side disconnect (io server disconnect)")
async def _server_disconnect(ctx: Ctx) -> None:
    c = ctx.new()
    reasons: list[Any] = []

    async def on_disconnect(reason: Any = None) -> None:
        reasons.append(reason)

    c.on("disconnect", on_disconnect)
    await ctx.connect(c)
    observer = await ctx.connect()
    room = tag("r")
    await ack(c, "join", room)
    sid = sid_of(c)
    await c.emit("server_disconnect_me")
    await wait_until(lambda: bool(reasons))
    # python-socketio's name for Node's "io server disconnect" (the server disconnected the namespace)
    expect_eq(reasons, [c.reason.SERVER_DISCONNECT], "client-side disconnect reason(s)")
    rec = await last_disconnect(observer, sid)
    expect_eq(rec.get("disconnecting_reason"), "server namespace disconnect", f"disconnecting reason ({rec})")
    expect_eq(rec.get("disconnect_reason"), "server namespace disconnect", f"disconnect reason ({rec})")
    expect_eq(rec.get("disconnecting_rooms"), sorted([room, sid]), "rooms seen by disconnecting")
    expect_eq(rec.get("disconnect_rooms"), [], "rooms seen by disconnect")


@check("disconnect_sockets by room")
async def _disconnect_sockets(ctx: Ctx) -> None:
    clients = [ctx.new() for _ in range(2)]
    reasons: list[list[Any]] = [[], []]
    for c, got in zip(clients, reasons, strict=True):

        def make(got: list[Any]) -> Callable[..., Awaitable[None]]:
            async def on_disconnect(reason: Any = None) -> None:
                got.append(reason)

            return on_disconnect

        c.on("disconnect", make(got))
    a, b = await asyncio.gather(*(ctx.connect(c) for c in clients))
    keep = await ctx.connect()
    room = tag("r")
    await ack(a, "join", room)
    await ack(b, "join", room)
    await ack(keep, "disconnect_sockets", room)
    await wait_until(lambda: all(reasons))
    expected = [[a.reason.SERVER_DISCONNECT], [b.reason.SERVER_DISCONNECT]]  # "server disconnect"
    expect_eq(reasons, expected, "client-side reasons")
    expect(keep.connected, "a socket outside the room was disconnected")
    expect_eq(await ack(keep, "echo", "k"), ["k"], "echo on the socket outside the room")


@check("namespace DISCONNECT -> reason client namespace disconnect, the connection stays")
async def _namespace_disconnect(ctx: Ctx) -> None:
    c = await ctx.connect(namespaces=["/", "/dyn-5"])
    observer = await ctx.connect()
    r1, r2 = tag("r"), tag("r")
    await ack(c, "join", [r1, r2])
    sid = sid_of(c)
    # python-socketio has no public way to leave one namespace: send its DISCONNECT packet (what
    # socket.disconnect() of the JavaScript client sends) and forget the namespace.
    await c._send_packet(c.packet_class(socketio.packet.DISCONNECT, namespace="/"))
    del c.namespaces["/"]
    rec = await last_disconnect(observer, sid)
    expect_eq(rec.get("disconnecting_reason"), "client namespace disconnect", f"disconnecting reason ({rec})")
    expect_eq(rec.get("disconnect_reason"), "client namespace disconnect", f"disconnect reason ({rec})")
    expect_eq(rec.get("disconnecting_rooms"), sorted([r1, r2, sid]), "rooms seen by disconnecting")
    expect_eq(rec.get("disconnect_rooms"), [], "rooms seen by disconnect")
    expect_eq(await ack1(observer, "fetch_sockets", [r1, r2]), [], "rooms left after disconnect")
    dyn = await ack1(c, "whoami", namespace="/dyn-5")
    expect_eq(dyn, {"nsp": "dyn", "id": sid_of(c, "/dyn-5")}, "/dyn-5 on the same connection afterwards")


@check("client disconnect() -> the server cleans up (disconnecting saw the rooms)")
async def _client_disconnect(ctx: Ctx) -> None:
    c, observer = await asyncio.gather(ctx.connect(), ctx.connect())
    r1, r2 = tag("r"), tag("r")
    await ack(c, "join", [r1, r2])
    sid = sid_of(c)
    await asyncio.wait_for(c.disconnect(), STEP_S)
    rec = await last_disconnect(observer, sid)
    # disconnect() queues DISCONNECT and an Engine.IO close, then closes the WebSocket without waiting
    # for them to be written (python-socketio 5.x): Node's server then records "transport close",
    # and "client namespace disconnect" only when the packet got out first.
    reasons = {"client namespace disconnect", "transport close"}
    expect(rec.get("disconnecting_reason") in reasons, f"disconnecting reason ({rec})")
    expect_eq(rec.get("disconnect_reason"), rec.get("disconnecting_reason"), f"disconnect reason ({rec})")
    expect_eq(rec.get("disconnecting_rooms"), sorted([r1, r2, sid]), "rooms seen by disconnecting")
    expect_eq(rec.get("disconnect_rooms"), [], "rooms seen by disconnect")
    expect_eq(await ack1(observer, "fetch_sockets", [r1, r2]), [], "rooms left after disconnect")


@check("transport close -> reason transport close")
async def _transport_close(ctx: Ctx) -> None:
    c, observer = await asyncio.gather(ctx.connect(), ctx.connect())
    room = tag("r")
    await ack(c, "join", room)
    sid = sid_of(c)
    expect_eq(c.transport(), "websocket", "the transport to close")
    await asyncio.wait_for(c.eio.ws.close(), STEP_S)  # the WebSocket closes without any packet
    rec = await last_disconnect(observer, sid)
    expect_eq(rec.get("disconnecting_reason"), "transport close", f"disconnecting reason ({rec})")
    expect_eq(rec.get("disconnect_reason"), "transport close", f"disconnect reason ({rec})")
    expect_eq(rec.get("disconnecting_rooms"), sorted([room, sid]), "rooms seen by disconnecting")


@check("the transport of the mode (default: polling, then upgraded to websocket)")
async def _transport_of_mode(ctx: Ctx) -> None:
    c = await ctx.connect()
    hs = await ack1(c, "handshake")
    expect_eq(hs["query"].get("transport"), FIRST_TRANSPORT[ctx.mode], "the transport of the first request")
    expect_eq(c.transport(), "websocket", "the transport in use once connected")
    expect_eq(await ack(c, "echo", b"\x00bin"), [b"\x00bin"], "a binary round trip on it")
    await asyncio.sleep(SETTLE_S)
    expect_eq(c.transport(), "websocket", "the transport a moment later")


# ---------------------------------------------------------------- runner


async def run_checks(url: str, mode: str, results: list[bool]) -> None:
    for name, fn in CHECKS:
        ctx = Ctx(url, mode)
        try:
            await asyncio.wait_for(fn(ctx), CHECK_S)
        except TimeoutError:
            print(f"FAIL {name}: check did not finish within {CHECK_S} s", flush=True)
            results.append(False)
        except CheckError as exc:
            print(f"FAIL {name}: {exc}", flush=True)
            results.append(False)
        except Exception as exc:
            detail = re.sub(r"\s*\n\s*", " | ", f"{type(exc).__name__}: {exc}")
            print(f"FAIL {name}: {detail}", flush=True)
            results.append(False)
        else:
            print(f"ok {name}", flush=True)
            results.append(True)
        finally:
            await ctx.close()


async def main(url: str, mode: str, overall: float) -> int:
    results: list[bool] = []
    try:
        await asyncio.wait_for(run_checks(url, mode, results), overall)
    except TimeoutError:
        passed = results.count(True)
        print(f"FAIL overall: the checks did not finish within {overall} s", flush=True)
        print(f"summary: {passed} passed, {len(CHECKS) - passed} failed (timeout)", flush=True)
        return 2
    passed = results.count(True)
    print(f"summary: {passed} passed, {len(CHECKS) - passed} failed", flush=True)
    return 0 if passed == len(CHECKS) else 1


def cli(argv: list[str]) -> int:
    usage = "usage: python py_client.py http://HOST:PORT [default|websocket] [overall_timeout_s]"
    if not 2 <= len(argv) <= 4:
        print(usage, file=sys.stderr)
        return 3
    url = argv[1].rstrip("/")
    mode = argv[2] if len(argv) > 2 else "default"
    try:
        overall = float(argv[3]) if len(argv) > 3 else DEFAULT_OVERALL_S
    except ValueError:
        overall = -1.0
    if not re.fullmatch(r"https?://[^/]+", url) or mode not in MODES or overall <= 0:
        print(usage, file=sys.stderr)
        return 3
    return asyncio.run(main(url, mode, overall))


if __name__ == "__main__":
    sys.exit(cli(sys.argv))
