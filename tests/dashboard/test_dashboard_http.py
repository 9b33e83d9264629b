"""The dashboard's routes over real HTTP on a real host: the banner line, --no-dashboard,
--enforce-keys (in the browser too), and bad inputs answered with problem+json."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from durablehost.process import HostProcess, run_host_process
from tests.dashboard.conftest import APP_DIR, DASHBOARD, Management

pytestmark = pytest.mark.e2e
API = DASHBOARD + "api/"


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["status"] == status
    for fragment in fragments:
        assert fragment in body["detail"]
    return body


def test_the_banner_names_the_dashboard_on_a_line_of_its_own(host: HostProcess) -> None:
    assert re.search(rf"^Dashboard: {re.escape(host.url)}/runtime/dashboard/$", host.logs(), re.M)


@pytest.mark.parametrize(
    ("path", "headers", "status", "fragment"),
    [
        ("summary?runtimeStatus=Sleeping", {}, 400, "unknown runtime status 'Sleeping'"),
        ("summary?createdTimeFrom=yesterday", {}, 400, "not a date/time"),
        ("instances?top=0", {}, 400, "not a positive whole number"),
        ("instances?top=5000", {}, 400, "more than 1000"),
        (
            "instances?name=hello",
            {"x-ms-continuation-token": "bm90IGEgdG9rZW4="},
            400,
            "continuation token",
        ),
        ("instances?showInput=maybe", {}, 400, "not a boolean"),
        ("nothing-here", {}, 404, "serves no GET"),
    ],
)
def test_bad_inputs_are_answered_with_problem_json(
    host: HostProcess, path: str, headers: dict[str, str], status: int, fragment: str
) -> None:
    response = httpx.get(host.url + API + path, headers=headers)
    assert_problem(response, status, fragment)


def test_unknown_assets_are_404_and_known_ones_typed(host: HostProcess) -> None:
    assert_problem(httpx.get(f"{host.url}{DASHBOARD}assets/../keys.json"), 404)
    assert_problem(httpx.get(f"{host.url}{DASHBOARD}assets/secret.py"), 404, "no file")
    script = httpx.get(f"{host.url}{DASHBOARD}assets/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    redirect = httpx.get(f"{host.url}/runtime/dashboard?code=abc")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "/runtime/dashboard/?code=abc"


def test_listing_by_name_pages_like_the_management_api(
    host: HostProcess, management: Management
) -> None:
    ids = [management.start("hello_sequence", instance_id=f"by-name-{n}") for n in range(3)]
    for instance_id in ids:
        management.wait_for(instance_id)
    seen: list[str] = []
    token = None
    while True:
        headers: dict[str, str] = {"x-ms-continuation-token": token} if token else {}
        response = httpx.get(
            f"{host.url}{API}instances",
            params={"name": "HELLO_SEQUENCE", "instanceIdPrefix": "by-name-", "top": "2"},
            headers=headers,
        )
        assert response.status_code == 200
        seen += [item["instanceId"] for item in response.json()]
        token = response.headers.get("x-ms-continuation-token")
        if not token:
            break
    assert sorted(seen) == sorted(ids)
    summary = httpx.get(f"{host.url}{API}summary", params={"instanceIdPrefix": "by-name-"}).json()
    assert summary["total"] == 3
    assert summary["counts"]["Completed"] == 3
    relations = httpx.get(f"{host.url}{API}instances/by-name-0/relations").json()
    assert relations == {"parentInstanceId": None}


@pytest.fixture(scope="module")
def keyed_host() -> Iterator[HostProcess]:
    with run_host_process(APP_DIR, args=["--enforce-keys"]) as process:
        yield process


def banner_url(host: HostProcess) -> str:
    found = re.search(r"^Dashboard: (\S+)$", host.logs(), re.M)
    assert found, host.logs()
    return found.group(1)


def test_enforce_keys_guards_the_page_and_its_api(keyed_host: HostProcess) -> None:
    url = banner_url(keyed_host)
    assert url.startswith(f"{keyed_host.url}/runtime/dashboard/?code=")
    key = url.split("?code=", 1)[1]
    assert_problem(httpx.get(keyed_host.url + DASHBOARD), 401, "?code=")
    assert_problem(httpx.get(keyed_host.url + DASHBOARD, params={"code": "wrong"}), 401)
    for path in ("summary", "instances", "functions", "instances/x/relations"):
        assert_problem(httpx.get(keyed_host.url + API + path), 401)
        answered = httpx.get(keyed_host.url + API + path, headers={"x-functions-key": key})
        assert answered.status_code == 200, answered.text
    # The page's files hold no data: a module script cannot carry the page's query.
    assert httpx.get(f"{keyed_host.url}{DASHBOARD}assets/app.js").status_code == 200


def test_enforce_keys_the_banner_url_works_in_the_browser(
    open_page: Any, keyed_host: HostProcess
) -> None:
    url = banner_url(keyed_host)
    key = url.split("?code=", 1)[1]
    management = Management(keyed_host.url, key)
    instance_id = management.start("hello_sequence", instance_id="keyed-sequence")
    management.wait_for(instance_id)
    page, _ = open_page(url)
    link = page.get_by_role("link", name=instance_id, exact=True)
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("table.history")).to_contain_text("ExecutionCompleted")
    page.get_by_role("link", name="Functions").click()
    expect(page.locator("table.functions")).to_contain_text("http_start")
    management.client.close()


def test_no_dashboard_turns_it_off() -> None:
    with run_host_process(APP_DIR, args=["--no-dashboard"]) as process:
        assert "Dashboard:" not in process.logs()
        response = httpx.get(process.url + DASHBOARD)
        assert response.status_code == 404
        assert json.loads(response.text)["status"] == 404
