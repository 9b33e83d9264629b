"""Polling the Durable Functions `statusQueryGetUri` with plain httpx, as the Durable
Functions docs show: 202 while the instance runs (wait `Retry-After`), then 200 with
`runtimeStatus` and `output`. Our orchestrations put `resultUri` in their output.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = ["DurableStatusTimeout", "retry_after_seconds", "wait_for_instance"]


class DurableStatusTimeout(TimeoutError):
    """The instance was still running when the deadline came."""


def retry_after_seconds(response: httpx.Response, default: float = 1.0) -> float:
    """What Retry-After asks for, seconds or an HTTP date; `default` without one."""
    value = response.headers.get("Retry-After")
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    # A floor, so that `Retry-After: 0` does not become a busy loop.
    return max(seconds, 0.2)


def wait_for_instance(
    http: httpx.Client, status_url: str, timeout: float, first_wait: float = 0.0
) -> dict[str, Any]:
    """The instance's final status (`runtimeStatus`, `output`); raises on answers >= 400.
    `first_wait`: what the start's 202 asked for with its own Retry-After."""
    deadline = time.monotonic() + timeout
    # The client honouring Retry-After: these sleeps are the behaviour under test.
    time.sleep(first_wait)
    while True:
        response = http.get(status_url)
        if response.status_code != 202:
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body
        wait = retry_after_seconds(response)
        if time.monotonic() + wait > deadline:
            raise DurableStatusTimeout(f"{status_url} still running after {timeout} s")
        time.sleep(wait)
