"""Component tests of the management API: the real engine on a SQLite task hub, served by a
real aiohttp server on a free port, driven over HTTP with httpx."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from durablehost.app.loader import load_app
from durablehost.engine.engine import DurableEngine
from durablehost.front.management import add_management_routes
from durablehost.model.instances import RuntimeStatus
from durablehost.store import open_store
from tests.support.ports import free_port

APP_DIR = Path(__file__).parent / "apps" / "mgmt_basic"
HUB = "MgmtHub"
HOOK = "/runtime/webhooks/durabletask"
STATUS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@dataclass
class ManagementHost:
    """A started engine + management API and an HTTP client pointed at it."""

    base_url: str
    engine: DurableEngine
    http: httpx.AsyncClient

    @property
    def hook(self) -> str:
        return self.base_url + HOOK

    async def start(self, name: str, body: Any = None, instance_id: str | None = None) -> str:
        url = f"{self.hook}/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
        response = await self.http.post(url, json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def status(self, instance_id: str, **params: str) -> httpx.Response:
        return await self.http.get(f"{self.hook}/instances/{instance_id}", params=params)

    async def wait_for(
        self, instance_id: str, *statuses: RuntimeStatus, within: float = 15.0
    ) -> dict[str, Any]:
        """Poll the status endpoint until the instance is in one of `statuses`."""
        deadline = time.monotonic() + within
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = await self.status(instance_id)
            body = response.json()
            if body.get("runtimeStatus") in statuses:
                return body
            await asyncio.sleep(0.02)
        raise AssertionError(f"{instance_id} never reached {statuses}; last status {body}")


async def serve(
    tmp_path: Path, configure: Callable[[web.Application, DurableEngine], None] | None = None
) -> AsyncIterator[ManagementHost]:
    """Run the engine and the management API on a free port until the test ends."""
    index = load_app(APP_DIR)
    store = open_store(tmp_path / "hub.sqlite")
    engine = DurableEngine(index, store, hub_name=HUB)
    await engine.start()
    app = web.Application()
    add_management_routes(app, engine, hub_name=HUB)
    if configure is not None:
        configure(app, engine)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            yield ManagementHost(f"http://127.0.0.1:{port}", engine, http)
    finally:
        await runner.cleanup()
        await engine.stop()
        store.close()


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[ManagementHost]:
    async for started in serve(tmp_path):
        yield started


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status whose detail names `fragments`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


# --- start --------------------------------------------------------------------------------


async def test_start_answers_202_with_the_check_status_payload(host: ManagementHost) -> None:
    response = await host.http.post(
        f"{host.hook}/orchestrators/hello_orchestrator", json={"cities": ["Oslo", "Rome"]}
    )
    assert response.status_code == 202
    payload = response.json()
    instance_id = payload["id"]
    assert set(payload) == {
        "id",
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    }
    assert response.headers["Location"] == payload["statusQueryGetUri"]
    assert response.headers["Retry-After"] == "10"
    assert payload["statusQueryGetUri"] == (
        f"{host.hook}/instances/{instance_id}?taskHub={HUB}&connection=Storage"
    )
    assert payload["terminatePostUri"] == (
        f"{host.hook}/instances/{instance_id}/terminate?reason={{text}}"
        f"&taskHub={HUB}&connection=Storage"
    )

    done = await host.wait_for(instance_id, RuntimeStatus.COMPLETED)
    assert done["output"] == ["Hello Oslo!", "Hello Rome!"]
    assert done["input"] == {"cities": ["Oslo", "Rome"]}
    assert done["name"] == "hello_orchestrator"
    assert STATUS_TIME.match(done["createdTime"]) and STATUS_TIME.match(done["lastUpdatedTime"])
    # The statusQueryGetUri handed out really answers.
    followed = await host.http.get(payload["statusQueryGetUri"])
    assert followed.status_code == 200
    assert followed.json()["runtimeStatus"] == "Completed"


async def test_start_with_an_id_and_a_conflicting_start(host: ManagementHost) -> None:
    instance_id = await host.start("approval_orchestrator", "x", instance_id="order-42")
    assert instance_id == "order-42"
    again = await host.http.post(f"{host.hook}/orchestrators/approval_orchestrator/order-42")
    body = assert_problem(again, 409, "order-42")
    assert body["ExceptionMessage"]


async def test_start_rejects_bad_requests(host: ManagementHost) -> None:
    unknown = await host.http.post(f"{host.hook}/orchestrators/no_such_orchestrator")
    body = assert_problem(unknown, 400, "no_such_orchestrator")
    assert "no_such_orchestrator" in body["ExceptionMessage"]  # what the SDK's start_new reads

    bad_json = await host.http.post(
        f"{host.hook}/orchestrators/hello_orchestrator",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(bad_json, 400, "not valid JSON")

    not_utf8 = await host.http.post(
        f"{host.hook}/orchestrators/hello_orchestrator",
        content=b'"\xff\xfe"',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert_problem(not_utf8, 400)

    for bad_id in ("@entity", "a%23b", "x" * 300):
        response = await host.http.post(f"{host.hook}/orchestrators/hello_orchestrator/{bad_id}")
        assert_problem(response, 400, "instance id")

    bad_timeout = await host.http.post(
        f"{host.hook}/orchestrators/hello_orchestrator", params={"timeout": "soon"}
    )
    assert_problem(bad_timeout, 400, "timeout")


async def test_start_accepts_form_encoded_json_like_curl_sends(host: ManagementHost) -> None:
    response = await host.http.post(
        f"{host.hook}/orchestrators/hello_orchestrator",
        content=b'{"cities": ["Lima"]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 202
    done = await host.wait_for(response.json()["id"], RuntimeStatus.COMPLETED)
    assert done["output"] == ["Hello Lima!"]


async def test_start_reads_json_as_utf8_whatever_the_declared_charset(
    host: ManagementHost,
) -> None:
    response = await host.http.post(
        f"{host.hook}/orchestrators/hello_orchestrator",
        content='{"cities": ["Zürich"]}'.encode(),
        headers={"Content-Type": "application/json; charset=no-such-charset"},
    )
    assert response.status_code == 202
    done = await host.wait_for(response.json()["id"], RuntimeStatus.COMPLETED)
    assert done["output"] == ["Hello Zürich!"]


async def test_start_unwraps_the_sdk_double_encoded_input(host: ManagementHost) -> None:
    # What DurableOrchestrationClient.start_new puts on the wire: JSON text in a JSON string.
    instance_id = await host.start("hello_orchestrator", json.dumps({"cities": ["Bonn"]}))
    done = await host.wait_for(instance_id, RuntimeStatus.COMPLETED)
    assert done["input"] == {"cities": ["Bonn"]}
    assert done["output"] == ["Hello Bonn!"]


async def test_start_and_wait_answers_200_with_the_output(host: ManagementHost) -> None:
    response = await host.http.post(
        f"{host.hook}/orchestrators/hello_orchestrator",
        params={"timeout": "10", "pollingInterval": "1"},
        json={"cities": ["Kyiv"]},
    )
    assert response.status_code == 200
    assert response.json() == ["Hello Kyiv!"]


async def test_start_and_wait_times_out_into_a_check_status_202(host: ManagementHost) -> None:
    response = await host.http.post(
        f"{host.hook}/orchestrators/approval_orchestrator",
        params={"timeout": "0.1", "pollingInterval": "0.05"},
    )
    assert response.status_code == 202
    assert response.headers["Location"] == response.json()["statusQueryGetUri"]


async def test_start_and_wait_on_a_failure_answers_the_status(host: ManagementHost) -> None:
    response = await host.http.post(
        f"{host.hook}/orchestrators/failing_orchestrator", params={"timeout": "10"}
    )
    assert response.status_code == 200
    assert response.json()["runtimeStatus"] == "Failed"


# --- status -------------------------------------------------------------------------------


async def test_status_of_an_unknown_instance_is_404(host: ManagementHost) -> None:
    assert_problem(await host.status("nope"), 404, "nope")


async def test_status_while_running_is_202_with_location_and_retry_after(
    host: ManagementHost,
) -> None:
    instance_id = await host.start("approval_orchestrator", {"order": 7})
    body = await host.wait_for(instance_id, RuntimeStatus.RUNNING)
    assert body["customStatus"] == "waiting for approval"
    response = await host.status(instance_id, showInput="false", taskHub=HUB, code="ignored")
    assert response.status_code == 202
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Location"] == str(response.request.url)
    assert response.json()["input"] is None
    assert response.json()["output"] is None


async def test_status_with_history(host: ManagementHost) -> None:
    instance_id = await host.start("hello_orchestrator", {"cities": ["Oslo"]})
    await host.wait_for(instance_id, RuntimeStatus.COMPLETED)
    plain = (await host.status(instance_id, showHistory="True")).json()
    events = plain["historyEvents"]
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert events[1]["FunctionName"] == "hello"
    assert "Result" not in events[1] and "Result" not in events[2]
    assert events[0]["FunctionName"] == "hello_orchestrator"

    full = (await host.status(instance_id, showHistory="true", showHistoryOutput="true")).json()
    assert full["historyEvents"][1]["Result"] == "Hello Oslo!"
    assert full["historyEvents"][2]["Result"] == ["Hello Oslo!"]
    assert full["historyEvents"][2]["OrchestrationStatus"] == "Completed"


async def test_failed_instance_is_200_or_500_on_request(host: ManagementHost) -> None:
    instance_id = await host.start("failing_orchestrator")
    body = await host.wait_for(instance_id, RuntimeStatus.FAILED)
    assert "the orchestrator gave up" in str(body["output"])
    assert (await host.status(instance_id)).status_code == 200
    loud = await host.status(instance_id, returnInternalServerErrorOnFailure="true")
    assert loud.status_code == 500
    assert loud.json()["runtimeStatus"] == "Failed"


async def test_status_rejects_bad_flags_and_foreign_task_hubs(host: ManagementHost) -> None:
    instance_id = await host.start("hello_orchestrator")
    assert_problem(await host.status(instance_id, showHistory="maybe"), 400, "showHistory")
    assert_problem(await host.status(instance_id, taskHub="OtherHub"), 400, "OtherHub", HUB)
    assert (await host.status(instance_id, taskHub=HUB.lower())).status_code in (200, 202)


async def test_urls_honour_forwarding_headers(host: ManagementHost) -> None:
    forwarded = {"X-Forwarded-Host": "app.example.com", "X-Forwarded-Proto": "https"}
    response = await host.http.post(
        f"{host.hook}/orchestrators/approval_orchestrator", headers=forwarded
    )
    payload = response.json()
    expected = f"https://app.example.com{HOOK}/instances/{payload['id']}"
    assert payload["statusQueryGetUri"].startswith(expected + "?")
    assert response.headers["Location"] == payload["statusQueryGetUri"]
    await host.wait_for(payload["id"], RuntimeStatus.RUNNING)
    status = await host.http.get(f"{host.hook}/instances/{payload['id']}", headers=forwarded)
    assert status.status_code == 202
    assert status.headers["Location"] == expected


# --- list ---------------------------------------------------------------------------------


async def test_list_filters_and_pages(host: ManagementHost) -> None:
    for n in range(5):
        await host.start("hello_orchestrator", instance_id=f"batch-{n}")
    await host.start("approval_orchestrator", instance_id="other-1")
    for n in range(5):
        await host.wait_for(f"batch-{n}", RuntimeStatus.COMPLETED)
    await host.wait_for("other-1", RuntimeStatus.RUNNING)

    everything = await host.http.get(f"{host.hook}/instances/")
    assert everything.status_code == 200
    assert len(everything.json()) == 6
    assert "x-ms-continuation-token" not in everything.headers

    prefixed = await host.http.get(f"{host.hook}/instances/", params={"instanceIdPrefix": "batch"})
    assert sorted(i["instanceId"] for i in prefixed.json()) == [f"batch-{n}" for n in range(5)]

    running = await host.http.get(
        f"{host.hook}/instances", params={"runtimeStatus": "Running,Pending", "showInput": "false"}
    )
    assert [i["instanceId"] for i in running.json()] == ["other-1"]

    seen: list[str] = []
    headers: dict[str, str] = {}
    pages = 0
    while True:
        page = await host.http.get(
            f"{host.hook}/instances/",
            params={"top": "2", "instanceIdPrefix": "batch-"},
            headers=headers,
        )
        assert page.status_code == 200
        assert len(page.json()) <= 2
        seen += [i["instanceId"] for i in page.json()]
        pages += 1
        token = page.headers.get("x-ms-continuation-token")
        if not token:
            break
        headers = {"x-ms-continuation-token": token}
    assert sorted(seen) == [f"batch-{n}" for n in range(5)]
    assert pages == 3

    future = await host.http.get(
        f"{host.hook}/instances/", params={"createdTimeFrom": "2999-01-01T00:00:00Z"}
    )
    assert future.json() == []
    window = await host.http.get(
        f"{host.hook}/instances/",
        params={"createdTimeFrom": "2000-01-01", "createdTimeTo": "2999-01-01T00:00:00.0000000Z"},
    )
    assert len(window.json()) == 6


async def test_list_rejects_bad_filters(host: ManagementHost) -> None:
    url = f"{host.hook}/instances/"
    assert_problem(
        await host.http.get(url, params={"runtimeStatus": "Running,Sleeping"}), 400, "Sleeping"
    )
    assert_problem(await host.http.get(url, params={"createdTimeFrom": "yesterday"}), 400)
    assert_problem(await host.http.get(url, params={"top": "0"}), 400, "top")
    assert_problem(await host.http.get(url, params={"top": "ten"}), 400, "top")
    assert_problem(await host.http.get(url, params={"showInput": "yes"}), 400, "showInput")
    assert_problem(await host.http.get(url, headers={"x-ms-continuation-token": "garbage!"}), 400)


# --- events and lifecycle operations ------------------------------------------------------


async def test_raise_event_completes_the_waiting_instance(host: ManagementHost) -> None:
    instance_id = await host.start("approval_orchestrator", {"order": 1})
    await host.wait_for(instance_id, RuntimeStatus.RUNNING)
    response = await host.http.post(
        f"{host.hook}/instances/{instance_id}/raiseEvent/Approval", json={"by": "ann"}
    )
    assert response.status_code == 202
    done = await host.wait_for(instance_id, RuntimeStatus.COMPLETED)
    assert done["output"] == {"input": {"order": 1}, "approval": {"by": "ann"}}
    assert done["customStatus"] == "approved"

    gone = await host.http.post(
        f"{host.hook}/instances/{instance_id}/raiseEvent/Approval", json=True
    )
    assert_problem(gone, 410, instance_id)


async def test_raise_event_rejects_bad_requests(host: ManagementHost) -> None:
    missing = await host.http.post(f"{host.hook}/instances/nope/raiseEvent/Approval", json=1)
    assert_problem(missing, 404, "nope")

    instance_id = await host.start("approval_orchestrator")
    url = f"{host.hook}/instances/{instance_id}/raiseEvent/Approval"
    bad_json = await host.http.post(
        url, content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert_problem(bad_json, 400, "not valid JSON")
    text = await host.http.post(url, content=b"yes", headers={"Content-Type": "text/plain"})
    assert_problem(text, 400, "application/json")
    no_name = await host.http.post(f"{host.hook}/instances/{instance_id}/raiseEvent", json=1)
    assert_problem(no_name, 400, "event name")
    # Nothing was delivered by the rejected requests.
    assert (await host.status(instance_id)).json()["runtimeStatus"] in ("Pending", "Running")


async def test_terminate(host: ManagementHost) -> None:
    instance_id = await host.start("approval_orchestrator")
    await host.wait_for(instance_id, RuntimeStatus.RUNNING)
    response = await host.http.post(
        f"{host.hook}/instances/{instance_id}/terminate", params={"reason": "no longer needed"}
    )
    assert response.status_code == 202
    done = await host.wait_for(instance_id, RuntimeStatus.TERMINATED)
    assert done["output"] == "no longer needed"
    again = await host.http.post(f"{host.hook}/instances/{instance_id}/terminate")
    assert_problem(again, 410, instance_id)
    assert_problem(await host.http.post(f"{host.hook}/instances/nope/terminate"), 404)


async def test_suspend_holds_events_until_resume(host: ManagementHost) -> None:
    instance_id = await host.start("approval_orchestrator")
    await host.wait_for(instance_id, RuntimeStatus.RUNNING)
    url = f"{host.hook}/instances/{instance_id}"
    assert (await host.http.post(f"{url}/suspend", params={"reason": "pause"})).status_code == 202
    suspended = await host.wait_for(instance_id, RuntimeStatus.SUSPENDED)
    assert suspended["runtimeStatus"] == "Suspended"
    assert (await host.status(instance_id)).status_code == 202
    # Suspending twice is harmless, as in the extension.
    assert (await host.http.post(f"{url}/suspend")).status_code == 202

    assert (await host.http.post(f"{url}/raiseEvent/Approval", json="ok")).status_code == 202
    await asyncio.sleep(0)  # the event is held; the instance stays suspended
    assert (await host.status(instance_id)).json()["runtimeStatus"] == "Suspended"

    assert (await host.http.post(f"{url}/resume", params={"reason": "go"})).status_code == 202
    done = await host.wait_for(instance_id, RuntimeStatus.COMPLETED)
    assert done["output"]["approval"] == "ok"

    assert_problem(await host.http.post(f"{url}/suspend"), 410)
    assert_problem(await host.http.post(f"{url}/resume"), 410)
    assert_problem(await host.http.post(f"{host.hook}/instances/nope/suspend"), 404)
    assert_problem(await host.http.post(f"{host.hook}/instances/nope/resume"), 404)


async def test_rewind_a_failed_instance(host: ManagementHost) -> None:
    instance_id = await host.start("flaky_orchestrator")
    failed = await host.wait_for(instance_id, RuntimeStatus.FAILED)
    assert "first attempt" in str(failed["output"])
    response = await host.http.post(
        f"{host.hook}/instances/{instance_id}/rewind", params={"reason": "fixed"}
    )
    assert response.status_code == 202
    done = await host.wait_for(instance_id, RuntimeStatus.COMPLETED)
    assert done["output"] == f"recovered {instance_id}"

    not_failed = await host.http.post(f"{host.hook}/instances/{instance_id}/rewind")
    assert_problem(not_failed, 400, "Failed")
    assert_problem(await host.http.post(f"{host.hook}/instances/nope/rewind"), 404)


async def test_restart(host: ManagementHost) -> None:
    first = await host.start("hello_orchestrator", {"cities": ["Bern"]})
    await host.wait_for(first, RuntimeStatus.COMPLETED)

    response = await host.http.post(f"{host.hook}/instances/{first}/restart")
    assert response.status_code == 202
    restarted = response.json()["id"]
    assert restarted != first
    assert response.headers["Location"] == response.json()["statusQueryGetUri"]
    done = await host.wait_for(restarted, RuntimeStatus.COMPLETED)
    assert done["output"] == ["Hello Bern!"]

    same = await host.http.post(
        f"{host.hook}/instances/{first}/restart", params={"restartWithNewInstanceId": "false"}
    )
    assert same.status_code == 202
    assert same.json()["id"] == first

    waiting = await host.start("approval_orchestrator")
    conflict = await host.http.post(
        f"{host.hook}/instances/{waiting}/restart", params={"restartWithNewInstanceId": "false"}
    )
    assert_problem(conflict, 409, waiting)
    assert_problem(await host.http.post(f"{host.hook}/instances/nope/restart"), 404)
    bad = await host.http.post(
        f"{host.hook}/instances/{first}/restart", params={"restartWithNewInstanceId": "perhaps"}
    )
    assert_problem(bad, 400, "restartWithNewInstanceId")


# --- purge --------------------------------------------------------------------------------


async def test_purge_one(host: ManagementHost) -> None:
    instance_id = await host.start("hello_orchestrator")
    await host.wait_for(instance_id, RuntimeStatus.COMPLETED)
    response = await host.http.delete(f"{host.hook}/instances/{instance_id}")
    assert response.status_code == 200
    assert response.json() == {"instancesDeleted": 1}
    assert_problem(await host.status(instance_id), 404)
    assert_problem(await host.http.delete(f"{host.hook}/instances/{instance_id}"), 404)

    running = await host.start("approval_orchestrator")
    assert_problem(await host.http.delete(f"{host.hook}/instances/{running}"), 412, "terminal")


async def test_purge_many(host: ManagementHost) -> None:
    url = f"{host.hook}/instances/"
    assert_problem(await host.http.delete(url), 400, "createdTimeFrom")
    assert_problem(await host.http.delete(url, params={"createdTimeFrom": "last week"}), 400)

    for n in range(3):
        await host.start("hello_orchestrator", instance_id=f"old-{n}")
    running = await host.start("approval_orchestrator")
    for n in range(3):
        await host.wait_for(f"old-{n}", RuntimeStatus.COMPLETED)

    nothing = await host.http.delete(
        url, params={"createdTimeFrom": "2000-01-01T00:00:00Z", "runtimeStatus": "Failed"}
    )
    assert_problem(nothing, 404)
    purged = await host.http.delete(
        url, params={"createdTimeFrom": "2000-01-01T00:00:00Z", "runtimeStatus": "Completed"}
    )
    assert purged.status_code == 200
    assert purged.json() == {"instancesDeleted": 3}
    left = await host.http.get(url)
    assert [i["instanceId"] for i in left.json()] == [running]


# --- routing ------------------------------------------------------------------------------


async def test_unknown_paths_and_methods_are_problems(host: ManagementHost) -> None:
    assert_problem(await host.http.get(f"{host.hook}/nothing-here"), 404, "instances/")
    assert_problem(await host.http.post(f"{host.hook}/instances/x/explode"), 404)
    wrong = await host.http.put(f"{host.hook}/instances/x")
    assert_problem(wrong, 405, "PUT")
    assert "GET" in wrong.headers["Allow"]
    assert_problem(await host.http.get(f"{host.hook}/entities/counter/k"), 501, "entities")
