"""Roughly how much CPU the dashboard adds to the host: `python -m tests.dashboard.measure_load`.

Starts the dashboard test app on durablehost, keeps a steady trickle of orchestrations
going (one hello_sequence every 200 ms), and reads the host process's CPU time
(/proc/<pid>/stat, user + system) over 20 s without a page open, then over 20 s with the
instance list open in headless Chromium (polling every 2 s). Linux only; not a test, and
not run by CI: docs/dashboard.md quotes its output.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import httpx
from playwright.sync_api import sync_playwright

from durablehost.process import run_host_process
from tests.dashboard.conftest import APP_DIR, DASHBOARD, MANAGEMENT

WINDOW_SECONDS = 20.0
TRICKLE_SECONDS = 0.2


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trickle(base_url: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=base_url + MANAGEMENT) as client:
        while not stop.wait(TRICKLE_SECONDS):
            client.post("/orchestrators/hello_sequence")


def measure(pid: int) -> float:
    before = cpu_seconds(pid)
    started = time.monotonic()
    time.sleep(WINDOW_SECONDS)  # a measuring window, not a wait for work
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def main() -> None:
    with run_host_process(APP_DIR) as host:
        stop = threading.Event()
        feeder = threading.Thread(target=trickle, args=(host.url, stop), daemon=True)
        feeder.start()
        try:
            without = measure(host.pid)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"),
                    headless=True,
                    args=["--no-sandbox", "--disable-background-networking"],
                )
                page = browser.new_page()
                page.goto(host.url + DASHBOARD)
                page.wait_for_selector("table.instances tbody tr")
                with_page = measure(host.pid)
                browser.close()
        finally:
            stop.set()
            feeder.join()
        count = httpx.get(host.url + "/runtime/dashboard/api/summary").json()["total"]
    print(f"host CPU without the dashboard open: {without * 100:.1f}% of a core")
    print(f"host CPU with the instance list open: {with_page * 100:.1f}% of a core")
    print(f"difference: {(with_page - without) * 100:+.1f} points; {count} instances in the hub")


if __name__ == "__main__":
    main()
