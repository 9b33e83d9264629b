"""Driving an app's HTTP starter the way a client of the real extension does: POST the
starter (route orchestrators/{functionName}), then poll the statusQueryGetUri it hands
out (202 while running, 200 at the end). Shared by the end-to-end sample app tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

__all__ = ["start", "wait"]


def start(client: httpx.Client, name: str, payload: Any = None) -> dict[str, Any]:
    """POST the HTTP starter; the check-status body (its management URLs)."""
    response = client.post(f"/api/orchestrators/{name}", json=payload)
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["Location"] == body["statusQueryGetUri"]
    assert int(response.headers["Retry-After"]) > 0
    return dict(body)


def wait(
    client: httpx.Client, urls: dict[str, Any], timeout: float = 30, until: str | None = None
) -> dict[str, Any]:
    """Poll statusQueryGetUri until the instance ends (or its custom status is `until`)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(urls["statusQueryGetUri"])
        if response.status_code == 200:
            return dict(response.json())
        assert response.status_code == 202, response.text
        body = dict(response.json())
        if until is not None and body["customStatus"] == until:
            return body
        assert body["runtimeStatus"] in ("Pending", "Running")
        if time.monotonic() > deadline:
            raise AssertionError(f"still {body['runtimeStatus']} after {timeout}s")
        time.sleep(0.05)
