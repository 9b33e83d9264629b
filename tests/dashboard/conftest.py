"""Fixtures for the dashboard's end-to-end tests: a real durablehost process running
tests/dashboard/app, and the system's Chromium driven by Playwright (headless).

Nothing here downloads a browser: Playwright launches the Debian `chromium` package's
binary (`.ci/run` installs it when missing). Every page collects its console errors and
uncaught exceptions; a test that did not expect any fails on them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from durablehost.process import HostProcess, run_host_process

APP_DIR = Path(__file__).parent / "app"
REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"
MANAGEMENT = "/runtime/webhooks/durabletask"
DASHBOARD = "/runtime/dashboard/"
TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}

pytestmark = pytest.mark.e2e


def chromium_path() -> str | None:
    """The system Chromium (Debian's `chromium` package), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLog:
    """What a page said on its console and what it threw."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


# Module scope, not session: while Playwright's sync API is open, an event loop counts as
# running on this thread, and the asyncio tests of later modules could not start theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def host() -> Iterator[HostProcess]:
    with run_host_process(APP_DIR) as process:
        yield process


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., tuple[Any, PageLog]]]:
    """open_page(url, expect_errors=False) -> (page, log); checks the log afterwards."""
    contexts: list[tuple[Any, PageLog, bool]] = []

    def opener(
        url: str, *, expect_errors: bool = False, viewport: tuple[int, int] = (1280, 900)
    ) -> tuple[Any, PageLog]:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.set_default_timeout(15_000)
        log = PageLog()
        page.on(
            "console",
            lambda message: (
                log.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: log.page_errors.append(str(error)))
        contexts.append((context, log, expect_errors))
        page.goto(url)
        return page, log

    yield opener
    for context, log, expect_errors in contexts:
        context.close()
        assert log.page_errors == [], "the page threw"
        if not expect_errors:
            assert log.console_errors == [], "the page logged errors"


class Management:
    """The management API of a host, over HTTP, for setting up and checking tests."""

    def __init__(self, base_url: str, key: str | None = None) -> None:
        params = {"code": key} if key else {}
        self.client = httpx.Client(base_url=base_url + MANAGEMENT, params=params, timeout=30)

    def start(self, name: str, body: Any = None, instance_id: str | None = None) -> str:
        path = f"/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
        response = self.client.post(path, json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def status(self, instance_id: str) -> dict[str, Any] | None:
        response = self.client.get(f"/instances/{instance_id}")
        if response.status_code == 404:
            return None
        return dict(response.json())

    def wait_for(
        self, instance_id: str, statuses: set[str] | None = None, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll until the instance is in one of `statuses` (default: any terminal one)."""
        wanted = statuses or TERMINAL
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(instance_id)
            if status is not None and status["runtimeStatus"] in wanted:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{instance_id} never reached {wanted}: {status}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def management(host: HostProcess) -> Iterator[Management]:
    api = Management(host.url)
    yield api
    api.client.close()


def screenshot(page: Any, name: str) -> None:
    """Write docs/images/dashboard-<name>.png, only when DASHBOARD_SCREENSHOTS=1 (normal
    runs leave the committed images alone)."""
    if os.environ.get("DASHBOARD_SCREENSHOTS") != "1":
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"dashboard-{name}.png"), full_page=True)
