"""The demo's chat page (``trio_rooms.chat_page``, served at ``/`` by ``python -m trio_rooms``).

Over HTTP: the fixed list of files with their types and headers, GET and HEAD only, the bundle from
the ``dist`` directory given (bounded), and a plain-words install hint when it is missing. In a real
headless Chromium (``helpers.browser``; the stock ``socket.io-client`` bundle of
``npm ci --prefix examples/browser``, or of tests/interop): two pages join a room, one says something
and the other shows it; each page lists both members and shows the WebSocket transport once upgraded;
a private message reaches its target only; a departure or a leave updates the member list; without
the bundle the page says which command installs it. Without chromium, its driver, selenium or the
bundle the browser tests skip, except in CI (CI=true), where they fail.

Set ``TRIO_ROOMS_DEMO_SCREENSHOT=path.png`` to save a screenshot of a page showing a conversation
(docs/demo-page.png is one).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers.browser import console_errors, open_chromium, page_text, wait_for
from helpers.interop_harness import missing
from helpers.raw_clients import request
from test_demo_events import Recorder

import trio_rooms
import trio_rooms.__main__ as demo
from trio_rooms.chat_page import BUNDLE, MAX_BUNDLE_SIZE, chat_page, default_client_dists, find_client_dist
from trio_rooms.client import open_client

TIMEOUT = 10.0  # seconds, for the HTTP tests
BROWSER_TIMEOUT = 120.0  # seconds, for a whole browser test (each of its steps: PAGE_TIMEOUT)
INSTALL = "npm ci --prefix examples/browser"


@asynccontextmanager
async def page_server(client_dist: Path | None) -> AsyncIterator[tuple[trio_rooms.Server, int]]:
    """The demo server with the page (as ``python -m trio_rooms`` makes it) on a free loopback port."""
    server = demo.build_demo_server(fallback=chat_page(client_dist))
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        yield server, listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


# -- over HTTP ---------------------------------------------------------------------------------------
async def test_the_page_files_and_their_headers(tmp_path: Path) -> None:
    bundle = b"/* the bundle */ var io = function () {};"
    (tmp_path / BUNDLE).write_bytes(bundle)
    (tmp_path / "secret.txt").write_text("not served")
    with trio.fail_after(TIMEOUT):
        async with page_server(tmp_path) as (_, port):
            page = await request(port, "GET", "/")
            assert page.status == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["cache-control"] == "no-cache"
            assert page.headers["x-content-type-options"] == "nosniff"
            assert '<script src="socket.io.min.js"' in page.text and INSTALL in page.text
            assert (await request(port, "GET", "/index.html")).body == page.body
            for path, kind in [("/chat.js", "text/javascript"), ("/chat.css", "text/css")]:
                answer = await request(port, "GET", path)
                assert (answer.status, answer.headers["content-type"]) == (200, f"{kind}; charset=utf-8")
                assert answer.body.startswith(b"/* The chat page") or answer.body.startswith(b"// The chat")
            served = await request(port, "GET", f"/{BUNDLE}?v=1")
            assert (served.status, served.body) == (200, bundle)
            assert served.headers["content-type"] == "text/javascript; charset=utf-8"
            head = await request(port, "HEAD", "/")
            assert (head.status, head.body, head.headers["content-type"]) == (
                200,
                b"",
                "text/html; charset=utf-8",
            )
            assert head.headers["content-length"] == str(len(page.body))  # the GET's (RFC 9110 9.3.2)
            for method in ("POST", "PUT", "DELETE"):
                refused = await request(port, method, "/chat.js", "x")
                assert (refused.status, refused.headers["allow"]) == (405, "GET, HEAD")
            # Only the listed paths: nothing of a request's path reaches the file system.
            for path in ["/secret.txt", f"/{BUNDLE}.map", "/chat.js/", "/../secret.txt", "/%2e%2e/secret.txt",
                         "/index.html/../secret.txt", "//chat.js", "/CHAT.JS"]:  # fmt: skip
                assert (await request(port, "GET", path)).status == 404, path
            # The Socket.IO path is still the server's.
            assert (await request(port, "GET", "/socket.io/?EIO=4&transport=polling")).status == 200


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


@pytest.mark.parametrize("path", ["/", "/chat.js", f"/{BUNDLE}"])
async def test_a_head_has_the_gets_length_and_no_body(tmp_path: Path, path: str) -> None:
    # Raw bytes, on both of the native door's HTTP paths: the lean one (an HTTP/1.1 head, then a GET
    # on the same connection, which would read a stray body as its answer's start) and h11's (HTTP/1.0).
    (tmp_path / BUNDLE).write_bytes(b"/* the bundle */")
    with trio.fail_after(TIMEOUT):
        async with page_server(tmp_path) as (_, port):
            get = await request(port, "GET", path)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(
                    f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                    f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                )
                lean = await read_to_eof(stream)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
                old = await read_to_eof(stream)
    length = f"content-length: {len(get.body)}\r\n".encode()
    head, rest = lean.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and length in head.lower() + b"\r\n"
    assert rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(b"\r\n\r\n" + get.body)
    head, rest = old.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and length in head.lower() + b"\r\n"
    assert rest == b""


async def test_without_the_bundle_the_page_says_how_to_install_it() -> None:
    with trio.fail_after(TIMEOUT):
        async with page_server(None) as (_, port):
            assert (await request(port, "GET", "/")).status == 200
            answer = await request(port, "GET", f"/{BUNDLE}")
            assert answer.status == 404
            assert INSTALL in answer.text and "--client-dist" in answer.text


async def test_a_bundle_too_large_is_not_served(tmp_path: Path) -> None:
    (tmp_path / BUNDLE).write_bytes(b"x" * (MAX_BUNDLE_SIZE + 1))
    with trio.fail_after(TIMEOUT):
        async with page_server(tmp_path) as (_, port):
            answer = await request(port, "GET", f"/{BUNDLE}")
            assert answer.status == 500 and "larger than" in answer.text
            (tmp_path / BUNDLE).write_bytes(b"x" * MAX_BUNDLE_SIZE)  # read again at each request
            assert (await request(port, "GET", f"/{BUNDLE}")).status == 200


def test_find_client_dist(tmp_path: Path) -> None:
    first, second, empty = tmp_path / "first", tmp_path / "second", tmp_path / "empty"
    for directory in (first, second, empty):
        directory.mkdir()
    (second / BUNDLE).write_text("")
    assert find_client_dist([empty, second, first]) == second
    (first / BUNDLE).write_text("")
    assert find_client_dist([empty, first, second]) == first
    assert find_client_dist([empty]) is None
    examples, interop = default_client_dists()
    assert examples.parts[-5:] == ("examples", "browser", "node_modules", "socket.io-client", "dist")
    assert interop.parts[-5:] == ("tests", "interop", "node_modules", "socket.io-client", "dist")


def test_the_command_line_option_and_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--client-dist`` must hold the bundle; without a bundle the demo says how to install it."""
    with pytest.raises(SystemExit) as exited:
        demo.main(["--client-dist", str(tmp_path)])
    assert exited.value.code == 2
    assert f"no {BUNDLE} there" in capsys.readouterr().err
    served: list[trio_rooms.Server] = []

    def run_server(server: trio_rooms.Server, host: str, port: int, **_: Any) -> int:
        served.append(server)  # stands in for serving: what main built is looked at below
        return 0

    monkeypatch.setattr(demo, "run_server", run_server)
    monkeypatch.setattr(demo, "find_client_dist", lambda: None)
    assert demo.main(["--port", "0"]) == 0
    assert f"bundle is missing; run `{INSTALL}`" in capsys.readouterr().out
    (tmp_path / BUNDLE).write_text("var io;")
    assert demo.main(["--port", "0", "--client-dist", str(tmp_path)]) == 0
    assert f"with {tmp_path / BUNDLE}" in capsys.readouterr().out
    assert len(served) == 2


# -- in Chromium ------------------------------------------------------------------------------------
class ChatPage:
    """One browser's view of the chat page (blocking selenium calls: run them in a thread)."""

    def __init__(self, driver: Any, url: str) -> None:
        self.driver = driver
        self.url = url

    def _by_id(self, element: str) -> Any:
        return self.driver.find_element("id", element)

    def _wait_text(self, element: str, expected: str) -> None:
        wait_for(self.driver, lambda _: self._by_id(element).text == expected, f"#{element} = {expected!r}")

    def connect(self, name: str) -> None:
        self.driver.get(self.url)
        wait_for(self.driver, lambda _: self._by_id("name").is_displayed(), "the name field")
        self._by_id("name").send_keys(name)
        assert not self._by_id("chat").is_displayed()
        self._by_id("connect").click()
        self._wait_text("status", f"connected as {name}")
        assert self._by_id("chat").is_displayed() and not self._by_id("connect-form").is_displayed()

    def join(self, room: str) -> None:
        self._by_id("room").send_keys(room)
        self._by_id("join").click()
        self._wait_text("current-room", room)

    def leave(self, room: str) -> None:
        self.driver.find_element("css selector", f"#rooms li[data-room='{room}'] .leave").click()
        wait_for(self.driver, lambda _: not self.driver.find_elements("css selector", "#rooms li"), "no room")

    def members(self) -> list[str]:
        return [item.text for item in self.driver.find_elements("css selector", "#members li")]

    def wait_members(self, expected: list[str]) -> None:
        wait_for(self.driver, lambda _: self.members() == expected, f"the members {expected}")

    def log(self) -> list[str]:
        return [item.text for item in self.driver.find_elements("css selector", "#log li")]

    def wait_log(self, text: str) -> None:
        wait_for(self.driver, lambda _: any(text in line for line in self.log()), f"{text!r} in the log")

    def write_to(self, name: str) -> None:
        """Click ``name`` in the member list: the next message goes to that member only."""
        [member] = [
            item for item in self.driver.find_elements("css selector", "#members li") if item.text == name
        ]
        member.click()

    def send(self, text: str) -> None:
        self._by_id("text").send_keys(text)
        self._by_id("send").click()
        wait_for(self.driver, lambda _: self._by_id("text").get_attribute("value") == "", "the message sent")


@pytest.fixture
def client_dist() -> Path:
    """The bundle's directory (skip when missing; fail when CI=true)."""
    found = find_client_dist()
    if found is None:
        missing(f"the socket.io-client bundle is missing: run `{INSTALL}`")
    return found


# Sync fixtures: a missing browser skips (or fails) with its reason, outside the test's nursery.
@pytest.fixture
def two_browsers() -> Iterator[tuple[Any, Any]]:
    """Two headless Chromiums (the first one's window sized for the screenshot)."""
    with open_chromium(width=1000, height=620) as first, open_chromium() as second:
        yield first, second


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium."""
    with open_chromium() as driver:
        yield driver


async def test_two_browsers_chat_in_a_room(client_dist: Path, two_browsers: tuple[Any, Any]) -> None:
    alice_driver, bob_driver = two_browsers
    with trio.fail_after(BROWSER_TIMEOUT):
        async with page_server(client_dist) as (server, port):
            url = f"http://127.0.0.1:{port}/"
            await _chat(server, port, ChatPage(alice_driver, url), ChatPage(bob_driver, url))


async def _chat(server: trio_rooms.Server, port: int, alice: ChatPage, bob: ChatPage) -> None:
    run = trio.to_thread.run_sync
    await run(alice.connect, "alice")
    await run(bob.connect, "bob")
    await run(alice.join, "lobby")
    await run(bob.join, "lobby")
    await run(alice.wait_members, ["alice (you)", "bob"])
    await run(bob.wait_members, ["alice", "bob (you)"])
    # The stock client starts on long-polling and upgrades: both pages show it.
    await run(alice._wait_text, "transport", "websocket")
    await run(bob._wait_text, "transport", "websocket")
    assert {socket.conn.transport for socket in server.of("/").sockets.values()} == {"websocket"}

    # carol, a Trio client in the room: she sees the room's messages, and no private one.
    async with open_client(f"http://127.0.0.1:{port}", auth={"name": "carol"}) as carol:
        heard = Recorder(carol, "said", "private")
        await carol.emit_with_ack("join", "lobby")
        await run(alice.wait_members, ["alice (you)", "bob", "carol"])
        await run(alice.send, "hello from alice")
        await run(bob.wait_log, "alice: hello from alice")
        await run(bob.write_to, "alice")
        await run(bob.send, "just for you")
        await run(alice.wait_log, "bob to you (private): just for you")
        await run(bob.wait_log, "you to alice (private): just for you")
        await run(alice.send, "see you")  # a marker: after the private message, for everyone
        with trio.fail_after(TIMEOUT):
            await heard.wait_for("said", lambda said: said["text"] == "see you")
        assert [said["text"] for said in heard.seen["said"]] == ["hello from alice", "see you"]
        assert heard.seen["private"] == []
    # carol's departure reaches both pages' member lists.
    await run(alice.wait_members, ["alice (you)", "bob"])
    await run(bob.wait_members, ["alice", "bob (you)"])
    await run(bob.wait_log, "carol left")
    for page in (alice, bob):  # no script error, no refused request (the page's CSP included)
        assert await run(console_errors, page.driver) == []
    screenshot = os.environ.get("TRIO_ROOMS_DEMO_SCREENSHOT")
    if screenshot:
        await run(alice.driver.save_screenshot, screenshot)
    # bob leaves the room: alice's page sees it go.
    await run(bob.leave, "lobby")
    await run(alice.wait_members, ["alice (you)"])
    await run(alice.wait_log, "bob left (leave)")
    assert await run(bob.members) == []


async def test_without_the_bundle_the_browser_page_says_how_to_install_it(browser: Any) -> None:
    driver = browser
    with trio.fail_after(BROWSER_TIMEOUT):
        async with page_server(None) as (_, port):

            def notice() -> str:
                driver.get(f"http://127.0.0.1:{port}/")
                wait_for(driver, lambda d: d.find_element("id", "missing").is_displayed(), "the notice")
                assert not driver.find_element("id", "connect-form").is_displayed()
                errors = console_errors(driver)
                assert [error for error in errors if f"/{BUNDLE} " in error and "404" in error], errors
                return page_text(driver)

            text = await trio.to_thread.run_sync(notice)
    assert INSTALL in text and "socket.io-client" in text and "is not installed" in text
