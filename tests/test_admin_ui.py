"""The real Socket.IO Admin UI page (``ui/dist`` of the npm package ``@socket.io/admin-ui``, served by
this test on its own origin) in a real headless Chromium, driven by selenium, against
``tests/interop/admin_app.py``: it logs in, shows the connected sockets and their rooms, and a click
on a socket's disconnect button disconnects that client.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromedriver``), selenium, and
``npm ci`` in tests/interop: without them the test skips, except in CI (CI=true), where it fails.
The page's web fonts come from a CDN and fail offline: its buttons are found by their classes.
Set ``TRIO_ROOMS_ADMIN_SCREENSHOT=path.png`` to save a screenshot of the sockets page there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from helpers.browser import open_chromium, page_text, wait_for
from helpers.interop_harness import missing
from test_admin import load_admin_app

import trio_rooms
from trio_rooms.admin import ui_files
from trio_rooms.client import Client, open_client


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium under selenium (skip when missing; fail when CI=true)."""
    if not load_admin_app().UI_DIST.is_dir():
        missing("@socket.io/admin-ui is missing: run `npm ci` in tests/interop")
    with open_chromium() as driver:
        yield driver


def _log_in(driver: Any, page_url: str, server_url: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(page_url)
    wait_for(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".v-dialog input[type=password]"), "the login"
    )
    server_field, username_field = driver.find_elements(By.CSS_SELECTOR, ".v-dialog input[type=text]")[:2]
    server_field.clear()
    server_field.send_keys(server_url)
    username_field.send_keys(username)
    driver.find_element(By.CSS_SELECTOR, ".v-dialog input[type=password]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, ".v-dialog button.primary").click()
    wait_for(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, ".v-dialog--active"), "the dialog closed")


def _show(driver: Any, route: str, texts: list[str]) -> str:
    """Go to ``#/route/`` and wait until the page's text holds every one of ``texts``."""
    driver.execute_script(f"window.location.hash = '#/{route}/'")

    def shown(d: Any) -> str | None:
        text = page_text(d)
        return text if all(t in text for t in texts) else None

    result: str = wait_for(driver, shown, f"{texts} on #/{route}/")
    return result


def _disconnect_button(driver: Any, socket_id: str) -> None:
    from selenium.webdriver.common.by import By

    row = driver.find_element(By.XPATH, f"//tr[td[contains(., '{socket_id}')]]")
    row.find_element(By.CSS_SELECTOR, "button.ml-3").click()


async def test_the_admin_ui_page_in_chromium(browser: Any) -> None:
    app = load_admin_app()
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            # The page on its own origin (as https://admin.socket.io is): a second server serving it.
            page_server = trio_rooms.Server(fallback=ui_files(app.UI_DIST))
            page_listeners = await nursery.start(page_server.serve, "127.0.0.1", 0)
            page_origin = f"http://127.0.0.1:{page_listeners[0].socket.getsockname()[1]}"
            server, admin = app.build_server("dev", origins=[page_origin])
            listeners = await nursery.start(server.serve, "127.0.0.1", 0)
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            async with (
                open_client(url, reconnection=False) as alice,
                open_client(url, reconnection=False, transports=["websocket"]) as bob,
            ):
                assert await alice.emit_with_ack("join", "lobby") == sorted([alice.id or "", "lobby"])
                await _drive_the_page(browser, page_origin, url, alice, bob, app)
                assert alice.connected, "only bob was disconnected"
                assert admin.namespace.sockets, "the page is connected to /admin"
            nursery.cancel_scope.cancel()


async def _drive_the_page(
    driver: Any, page_origin: str, url: str, alice: Client, bob: Client, app: Any
) -> None:
    assert alice.id is not None and bob.id is not None
    bob_id = bob.id
    await trio.to_thread.run_sync(
        _log_in, driver, f"{page_origin}/admin-ui/", url, app.USERNAME, app.PASSWORD
    )
    # The sockets of "/" with their transports; the rooms, "lobby" among them.
    text = await trio.to_thread.run_sync(_show, driver, "sockets", [alice.id, bob.id])
    assert "WebSocket" in text  # the transport column
    screenshot = os.environ.get("TRIO_ROOMS_ADMIN_SCREENSHOT")
    if screenshot:
        await trio.to_thread.run_sync(driver.save_screenshot, screenshot)
    await trio.to_thread.run_sync(_show, driver, "rooms", ["lobby"])
    # A command from the page: bob's disconnect button.
    await trio.to_thread.run_sync(_show, driver, "sockets", [bob.id])
    await trio.to_thread.run_sync(_disconnect_button, driver, bob.id)
    with trio.fail_after(10):
        while True:
            if not bob.connected:
                break
            await trio.sleep(0.05)

    def bob_gone(d: Any) -> bool:
        return bob_id not in page_text(d)

    # The click reaches the row too, which opens bob's details: back to the list, where bob is gone.
    await trio.to_thread.run_sync(_show, driver, "sockets", [alice.id])
    await trio.to_thread.run_sync(wait_for, driver, bob_gone, "bob gone from the sockets")
