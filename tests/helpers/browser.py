"""A real headless Chromium under selenium, for the tests of pages (the Admin UI's, the demo's chat).

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromedriver``) and selenium: without
them ``open_chromium`` skips the test, except in CI (CI=true), where it fails; open it in a sync
fixture, so that the reason is reported (raised inside a Trio test's nursery, a skip loses it).
Selenium's calls block: a Trio test makes them with ``trio.to_thread.run_sync``; each one is bounded
by ``PAGE_TIMEOUT`` (the page loads, the waits).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers.interop_harness import missing

__all__ = ["CHROMEDRIVER", "PAGE_TIMEOUT", "console_errors", "open_chromium", "page_text", "wait_for"]

CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT = 20.0  # seconds, for each page load and each wait on a page


@contextmanager
def open_chromium(*, width: int = 1400, height: int = 800) -> Iterator[Any]:
    """A headless Chromium driven by selenium (a ``webdriver.Chrome``), quit at the end of the block."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not CHROMEDRIVER.is_file():
        missing("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console_errors() reads them
    options.page_load_strategy = "eager"  # a page's CDN stylesheets may never load offline
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    driver.set_script_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The messages the page logged at level SEVERE (script errors, refused requests, CSP violations)
    since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def page_text(driver: Any) -> str:
    """The visible text of the page's body."""
    text: str = driver.find_element("tag name", "body").text
    return text


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = PAGE_TIMEOUT) -> Any:
    """Wait until ``condition(driver)`` is truthy and return it; after ``timeout`` seconds, an
    AssertionError saying ``what`` was awaited and what the page shows."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except TimeoutException:
        raise AssertionError(
            f"the page did not show {what} within {timeout} s; it shows:\n{page_text(driver)}"
        ) from None
