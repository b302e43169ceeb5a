"""python-socketio's AsyncClient against a trio_rooms server with connection state recovery on
(tests/test_interop_recovery.py serves it). That client does not know recovery: each broadcast event
reaches its handler with one more argument, the offset (a string), as the README says; an ack carries
none. Prints ``ok <check>`` or ``FAIL <check>: <detail>`` per check; exits 0 only when all passed.

Usage: python py_recovery_client.py http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import socketio  # type: ignore[import-untyped, import-not-found, unused-ignore]


async def main(url: str) -> int:
    client = socketio.AsyncClient(reconnection=False)
    ticks: asyncio.Queue[list[Any]] = asyncio.Queue()

    async def tick(*args: Any) -> None:
        await ticks.put(list(args))

    client.on("tick", tick)

    failed = 0

    def check(name: str, ok: bool, detail: Any) -> None:
        nonlocal failed
        failed += not ok
        print(f"ok {name}" if ok else f"FAIL {name}: {json.dumps(detail)}", flush=True)

    await client.connect(url, transports=["websocket"], wait_timeout=5)
    try:
        await client.call("tick", {"room": "r", "from": 0, "to": 1}, timeout=5)
        args = await asyncio.wait_for(ticks.get(), 5)
        check("a broadcast event has one more argument, the offset", len(args) == 2, args)
        check("the offset is a string", len(args) == 2 and isinstance(args[1], str), args)
        who = await client.call("whoami", timeout=5)
        check("an ack carries no offset", isinstance(who, dict) and who.get("recovered") is False, who)
    finally:
        await client.disconnect()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
