"""Nothing unsupported passes silently, and the instance list pages as on Azure: a real
durablehost process running tests/durablehost/apps/unsupported, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from durablehost.process import HostProcess, run_host_process

APP_DIR = Path(__file__).parent / "apps" / "unsupported"
HOOK = "/runtime/webhooks/durabletask"
INSTANCES = 250


@pytest.fixture(scope="module")
def host() -> Iterator[HostProcess]:
    with run_host_process(APP_DIR) as started:
        yield started


@pytest.fixture(scope="module")
def http(host: HostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url, timeout=30) as client:
        yield client


def start(http: httpx.Client, name: str, instance_id: str) -> None:
    response = http.post(f"{HOOK}/orchestrators/{name}/{instance_id}")
    assert response.status_code == 202, response.text


def settled(http: httpx.Client, instance_id: str, within: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        body: dict[str, Any] = http.get(f"{HOOK}/instances/{instance_id}").json()
        if body["runtimeStatus"] not in ("Pending", "Running") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_the_start_warning_names_the_entity_functions(host: HostProcess) -> None:
    log = host.wait_for_log("durable entities are not supported")
    assert "the entity functions counter will not run" in log


@pytest.mark.parametrize(
    ("orchestrator", "expected"),
    [
        ("only_signals", "signal_entity('@counter@k', 'add')"),
        ("signals_after_an_activity", "signal_entity('@counter@k', 'add')"),
        ("calls_entity", "call_entity('@counter@k', 'get')"),
        ("calls_entity_among_activities", "call_entity('@counter@k', 'get')"),
    ],
)
def test_an_entity_action_fails_the_instance_naming_it(
    http: httpx.Client, orchestrator: str, expected: str
) -> None:
    instance_id = f"entity-{orchestrator}"
    start(http, orchestrator, instance_id)
    body = settled(http, instance_id)
    assert body["runtimeStatus"] == "Failed", body
    assert body["output"] == (
        f"durablehost does not run durable entities yet: {expected} in orchestration "
        f"'{instance_id}'. Run this orchestration on Azure or the Functions host (func start)."
    )


def test_call_http_fails_the_instance_naming_the_request(http: httpx.Client) -> None:
    start(http, "calls_http", "http-1")
    body = settled(http, "http-1")
    assert body["runtimeStatus"] == "Failed", body
    assert body["output"].startswith(
        "durablehost does not run durable HTTP calls yet: "
        "call_http('GET', 'https://example.invalid/status') in orchestration 'http-1'."
    )


@pytest.fixture(scope="module")
def many(http: httpx.Client) -> list[str]:
    """INSTANCES waiting instances (one episode each), started over the management API."""
    ids = [f"many-{n:03d}" for n in range(INSTANCES)]
    for instance_id in ids:
        start(http, "waiter", instance_id)
    return ids


def test_a_raw_list_without_top_answers_the_extension_page_and_a_token(
    http: httpx.Client, many: list[str]
) -> None:
    response = http.get(f"{HOOK}/instances/", params={"instanceIdPrefix": "many-"})
    assert response.status_code == 200
    assert len(response.json()) == 100
    assert response.headers.get("x-ms-continuation-token")


def test_paging_with_top_and_the_header_returns_every_instance_once(
    http: httpx.Client, many: list[str]
) -> None:
    seen: list[str] = []
    token: str | None = None
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        response = http.get(
            f"{HOOK}/instances/",
            params={"instanceIdPrefix": "many-", "top": "70", "showInput": "false"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        seen.extend(item["instanceId"] for item in response.json())
        token = response.headers.get("x-ms-continuation-token")
        if not token:
            break
    assert sorted(seen) == many


def test_get_status_all_returns_the_first_page_and_the_log_says_so(
    host: HostProcess, http: httpx.Client, many: list[str]
) -> None:
    total = len(http.get(f"{HOOK}/instances/", params={"top": "100000"}).json())
    assert total >= INSTANCES
    assert http.get("/api/list").text == "100"
    log = host.wait_for_log("from the app's durable client")
    assert f"returned the first 100 of {total} instances; {total - 100} left out" in log
    assert "page with top and the header yourself" in log
    # Once per minute per caller: a polling app does not flood the log.
    assert http.get("/api/list", params={"by": "1"}).text == "100"
    from_the_app = "without top, from the app's durable client (in process)"
    assert host.logs().count(from_the_app) == 1
