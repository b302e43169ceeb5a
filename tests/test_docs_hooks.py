"""What the guide's page on hooks (docs/guide/hooks.md) shows with curl is what its servers answer
(issue 18): the page's own ``app`` (CORS) and ``sticky`` (an ``initial_headers`` hook) servers,
built by running the page's blocks, are served on 127.0.0.1 and asked with the page's requests."""

from __future__ import annotations

import re
from typing import Any

import trio
from helpers import docs_blocks
from helpers.serving import serving_port

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def shown_lines(command_part: str) -> list[str]:
    """The output lines the page shows after the curl command that contains ``command_part``."""
    shown: dict[str, list[str]] = {}
    for block in docs_blocks.blocks("guide/hooks.md"):
        if block.info == "console":
            for line in block.source.splitlines():
                if line.startswith("$ "):
                    output = shown[line] = []
                else:
                    output.append(line)
    (found,) = [output for command, output in shown.items() if command_part in command]
    return found


async def get(port: int, *headers: str) -> list[str]:
    """GET the polling handshake as curl does; the status line and the header lines (lower-cased names)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        head = [f"GET {HANDSHAKE} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close", *headers]
        await stream.send_all(("\r\n".join(head) + "\r\n\r\n").encode())
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
    status, *lines = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return [status] + [re.sub(r"^[^:]+", lambda m: m[0].lower(), line) for line in lines]


async def page_servers() -> dict[str, Any]:
    namespace, _ = await docs_blocks.run_blocks("guide/hooks.md")
    return namespace


async def test_cors_answers_are_the_pages() -> None:
    with trio.fail_after(20):
        app = (await page_servers())["app"]
        async with serving_port(app) as port:
            allowed = await get(port, "Origin: https://app.example.com")
            refused = await get(port, "Origin: https://elsewhere.example")
    assert allowed[0].split()[1] == "200"
    assert [line for line in allowed if line.startswith("access-control")] == shown_lines("app.example.com")
    assert [refused[0].split()[1]] == shown_lines("elsewhere.example")


async def test_the_sticky_cookie_is_the_pages() -> None:
    with trio.fail_after(20):
        sticky = (await page_servers())["sticky"]
        async with serving_port(sticky) as port:
            answer = await get(port)
    assert answer[0].split()[1] == "200"
    assert [line for line in answer if line.startswith("set-cookie")] == shown_lines("set-cookie")
