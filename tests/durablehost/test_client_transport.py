"""The durable client talks to its host in-process (durablehost.front.client_transport).

A real DurableHost serves the mgmt_basic app on a free port with its access log on, so a
request that reaches the server over a socket leaves a record: in-process calls leave none.
Each SDK client method runs twice, once in-process and once over HTTP (the SDK's own
http_utils functions put back on one client, its documented injection point), and the
results must match.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import azure.durable_functions as df
import azure.functions as func
import httpx
import pytest
from aiohttp import web
from azure.durable_functions import OrchestrationRuntimeStatus as Status
from azure.durable_functions.models.utils import http_utils
from azure.durable_functions.models.utils.entity_utils import EntityId

from durablehost.app.loader import load_app
from durablehost.engine.engine import DurableEngine
from durablehost.front.client_transport import (
    SDK_CLIENT_MODULE,
    register_management,
    registered_base_urls,
    unregister_management,
)
from durablehost.front.management import add_management_routes
from durablehost.host import DurableHost, HostOptions
from durablehost.store import open_store
from durablehost.wire.client import WEBHOOK_PATH, check_status_payload, client_binding_json
from tests.support.ports import free_port

APP_DIR = Path(__file__).parent / "apps" / "mgmt_basic"
HUB = "TestHubName"
DEADLINE_SECONDS = 15.0
# The module, not the class of the same name that azure.durable_functions.models exports.
sdk_client_module = importlib.import_module(SDK_CLIENT_MODULE)
REQUEST_FUNCTIONS = ("post_async_request", "get_async_request", "delete_async_request")
# Swapped too: memoized while a host runs (create_check_status_response parses the same
# URLs on every call).
SWAPPED = (*REQUEST_FUNCTIONS, "urlparse")


# --- fixtures and helpers -----------------------------------------------------------------


class AccessLog(logging.Handler):
    """Paths of the requests aiohttp's server answered (its access log)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def management_requests(self) -> list[str]:
        # The public API and the durable client's own listener (rpcBaseUrl, /durabletask/).
        return [line for line in self.lines if "/durabletask/" in line]


@pytest.fixture
def access_log() -> Iterator[AccessLog]:
    handler = AccessLog()
    logger = logging.getLogger("aiohttp.access")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def start_host(hub: Path) -> DurableHost:
    host = DurableHost(HostOptions(app_dir=APP_DIR, port=0, hub=hub, access_log=True))
    await host.start()
    return host


@pytest.fixture
async def host(tmp_path: Path, access_log: AccessLog) -> AsyncIterator[DurableHost]:
    # The SDK's module-wide session and lock bind to the first loop that uses them; each
    # test runs on a fresh loop (host.stop closes the session again).
    http_utils._client_session = None
    http_utils._session_lock = asyncio.Lock()
    started = await start_host(tmp_path / "hub.sqlite3")
    try:
        yield started
    finally:
        await started.stop()


def in_process_client(host: DurableHost, rpc_base_url: str | None = None) -> Any:
    """A client as the host hands it to a starter (built after the host started)."""
    binding = client_binding_json(host.url, HUB, rpc_base_url=rpc_base_url or host.rpc_base_url)
    return df.DurableOrchestrationClient(binding)


def http_client(host: DurableHost) -> Any:
    """The same client with the SDK's own HTTP functions: every call crosses the socket."""
    client = in_process_client(host)
    client._post_async_request = http_utils.post_async_request
    client._get_async_request = http_utils.get_async_request
    client._delete_async_request = http_utils.delete_async_request
    return client


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def settled(client: Any, instance_id: str, *wanted: Status) -> Any:
    """Poll get_status until the instance is in one of `wanted`."""
    found: list[Any] = []

    async def reached() -> bool:
        found[:] = [await client.get_status(instance_id)]
        return found[0].runtime_status in wanted

    await eventually(reached, f"{instance_id} to reach {wanted}")
    return found[0]


async def error_of(call: Awaitable[Any]) -> str:
    with pytest.raises(Exception) as caught:
        await call
    return str(caught.value)


_VOLATILE_KEYS = frozenset({"createdTime", "lastUpdatedTime", "Timestamp", "ScheduledTime"})


def normalised(value: Any, prefix: str) -> Any:
    """`value` with times dropped and the path's instance-id prefix written as `P`."""
    if isinstance(value, dict):
        return {
            key: normalised(item, prefix)
            for key, item in value.items()
            if key not in _VOLATILE_KEYS
        }
    if isinstance(value, list):
        return [normalised(item, prefix) for item in value]
    if isinstance(value, str):
        return value.replace(prefix, "P")
    return value


def status_dict(status: Any) -> dict[str, Any]:
    return json.loads(json.dumps(status.to_json(), default=str))


async def exercise(client: Any, prefix: str) -> dict[str, Any]:
    """Every management call of the SDK client, with what each returned or raised."""
    seen: dict[str, Any] = {}
    request = func.HttpRequest("GET", "http://127.0.0.1/api/x", body=b"")

    hello = await client.start_new("hello_orchestrator", f"{prefix}hello", {"cities": ["Oslo"]})
    waited = await client.wait_for_completion_or_create_check_status_response(
        request, hello, timeout_in_milliseconds=10_000, retry_interval_in_milliseconds=20
    )
    seen["wait"] = (waited.status_code, waited.get_body().decode())
    full = await client.get_status(hello, show_history=True, show_history_output=True)
    seen["get_status"] = status_dict(full)
    seen["history"] = full.historyEvents

    approval = await client.start_new("approval_orchestrator", f"{prefix}approval", "in")
    await settled(client, approval, Status.Running)
    seen["start_existing_active"] = await error_of(
        client.start_new("approval_orchestrator", approval, None)
    )
    await client.suspend(approval, "a pause")
    seen["suspended"] = (await settled(client, approval, Status.Suspended)).runtime_status.value
    await client.resume(approval, "go on")
    await settled(client, approval, Status.Running)
    await client.raise_event(approval, "Approval", {"ok": True})
    seen["approved"] = (await settled(client, approval, Status.Completed)).output
    seen["raise_after_end"] = await error_of(client.raise_event(approval, "Approval", 1))
    await client.terminate(approval, "already done")  # 410: the SDK accepts it

    doomed = await client.start_new("approval_orchestrator", f"{prefix}doomed", None)
    await settled(client, doomed, Status.Running)
    await client.terminate(doomed, "no longer needed")
    seen["terminated"] = status_dict(await settled(client, doomed, Status.Terminated))

    flaky = await client.start_new("flaky_orchestrator", f"{prefix}flaky", None)
    await settled(client, flaky, Status.Failed)
    await client.rewind(flaky, "try again")
    seen["rewound"] = (await settled(client, flaky, Status.Completed)).output
    seen["rewind_completed"] = await error_of(client.rewind(flaky, "again"))

    # The SDK hands back the 202 body (check-status payload), not just the id.
    same = await client.restart(hello, restart_with_new_instance_id=False)
    seen["restart_same"] = same["id"]
    await settled(client, same["id"], Status.Completed)
    renewed = await client.restart(hello)
    seen["restart_new_differs"] = renewed["id"] != hello
    await settled(client, renewed["id"], Status.Completed)

    mine = [s for s in await client.get_status_all() if s.instance_id.startswith(prefix)]
    seen["all"] = sorted([s.instance_id, s.runtime_status.value] for s in mine)
    by = await client.get_status_by(runtime_status=[Status.Terminated], instance_id_prefix=prefix)
    seen["by"] = sorted(s.instance_id for s in by)

    seen["unknown_status"] = bool(await client.get_status(f"{prefix}nobody"))
    seen["unknown_orchestrator"] = await error_of(client.start_new("no_such_orchestrator"))
    seen["reserved_id"] = await error_of(client.start_new("hello_orchestrator", "@entity"))
    seen["long_id"] = await error_of(client.start_new("hello_orchestrator", "x" * 300))
    seen["raise_unknown"] = await error_of(client.raise_event(f"{prefix}nobody", "E", 1))
    seen["suspend_unknown"] = await error_of(client.suspend(f"{prefix}nobody", "r"))
    seen["entity_read"] = await error_of(client.read_entity_state(EntityId("Counter", "k")))

    seen["purged"] = (await client.purge_instance_history(doomed)).instances_deleted
    seen["purged_again"] = (await client.purge_instance_history(doomed)).instances_deleted
    now = datetime.now(UTC)
    purged_by = await client.purge_instance_history_by(
        created_time_from=now - timedelta(hours=1),
        created_time_to=now + timedelta(hours=1),
        runtime_status=[Status.Completed],
    )
    seen["purged_by"] = purged_by.instances_deleted
    return normalised(seen, prefix)


# --- (1) a starter's start_new makes no loopback request ----------------------------------


async def test_a_starter_starts_without_a_loopback_request(
    host: DurableHost, access_log: AccessLog
) -> None:
    async with httpx.AsyncClient(base_url=host.url, timeout=30) as http:
        response = await http.post("/api/orchestrators/hello_orchestrator", json={})

        async def logged() -> bool:
            return any("/api/orchestrators/hello_orchestrator" in x for x in access_log.lines)

        # The starter's own record comes after any loopback request it made.
        await eventually(logged, "the starter's access-log record")

    assert response.status_code == 202, response.text
    body = response.json()
    expected = check_status_payload(host.url, body["id"], hub_name=HUB)
    assert {key: body[key] for key in expected} == expected
    assert response.headers["Location"] == body["statusQueryGetUri"]
    assert access_log.management_requests() == []
    status = await host.client.wait_for_completion(body["id"], DEADLINE_SECONDS)
    assert status is not None and status.runtime_status == "Completed"


async def test_start_answers_the_same_202_payload_as_over_http(host: DurableHost) -> None:
    url = host.rpc_base_url + "orchestrators/hello_orchestrator/"
    data = json.dumps({"cities": []})
    in_process = await sdk_client_module.post_async_request(url + "one", data)
    over_http = await http_utils.post_async_request(url + "two", data)
    assert in_process[0] == over_http[0] == 202
    assert in_process[1] == check_status_payload(host.url, "one", hub_name=HUB)
    assert json.dumps(in_process[1]).replace("one", "two") == json.dumps(over_http[1])


async def test_the_host_swaps_the_sdk_functions_only_while_it_runs(tmp_path: Path) -> None:
    originals = [getattr(sdk_client_module, name) for name in SWAPPED]
    assert originals == [*(getattr(http_utils, name) for name in REQUEST_FUNCTIONS), urlparse]
    host = await start_host(tmp_path / "hub.sqlite3")
    try:
        assert registered_base_urls() == [host.rpc_base_url]
        for name, original in zip(SWAPPED, originals, strict=True):
            assert getattr(sdk_client_module, name) is not original
        url = "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/x?taskHub=H"
        assert sdk_client_module.urlparse(url) == urlparse(url)
    finally:
        await host.stop()
    assert registered_base_urls() == []
    assert [getattr(sdk_client_module, name) for name in SWAPPED] == originals


# --- (2, 3) every client method: the same in-process as over HTTP -------------------------


async def test_every_client_method_answers_as_over_http(
    host: DurableHost, access_log: AccessLog
) -> None:
    in_process = await exercise(in_process_client(host), "inproc-")
    assert access_log.management_requests() == []
    over_http = await exercise(http_client(host), "http-")
    assert access_log.management_requests(), "the HTTP run should cross the socket"

    assert in_process == over_http
    # And the results are the right ones, not merely equal.
    assert in_process["wait"] == (200, '["Hello Oslo!"]')
    assert in_process["get_status"]["runtimeStatus"] == "Completed"
    assert in_process["history"][-1]["Result"] == ["Hello Oslo!"]
    assert in_process["approved"] == {"input": "in", "approval": {"ok": True}}
    assert in_process["suspended"] == "Suspended"
    assert in_process["terminated"]["runtimeStatus"] == "Terminated"
    assert in_process["rewound"] == "recovered Pflaky"
    assert in_process["restart_same"] == "Phello"
    assert in_process["restart_new_differs"] is True
    assert in_process["by"] == ["Pdoomed"]
    assert in_process["unknown_status"] is False
    assert in_process["purged"] == 1
    assert in_process["purged_again"] == 0
    assert in_process["purged_by"] == 4  # approval, flaky, hello and hello's restart


async def test_client_errors_carry_the_extension_messages(host: DurableHost) -> None:
    client = in_process_client(host)
    assert "no_such_orchestrator" in await error_of(client.start_new("no_such_orchestrator"))
    assert "'@'" in await error_of(client.start_new("hello_orchestrator", "@entity"))

    running = await client.start_new("approval_orchestrator", "busy", None)
    await settled(client, running, Status.Running)
    conflict = await error_of(client.start_new("approval_orchestrator", "busy", None))
    assert "409" in conflict and "busy" in conflict

    status = await client.get_status("nobody")
    assert not status and status.runtime_status is None

    await client.terminate(running, "stop")
    await settled(client, running, Status.Terminated)
    gone = await error_of(client.raise_event(running, "Approval", 1))
    assert gone == "Instance with ID busy is gone: either completed or failed"


# --- the raw answers: status and body, byte for byte after decoding -----------------------

RAW_CASES: list[tuple[str, str, Any]] = [
    ("GET", "instances/done", None),
    ("GET", "instances/done?showHistory=true&showHistoryOutput=true", None),
    ("GET", "instances/done?showInput=maybe", None),
    ("GET", "instances/done?taskHub=OtherHub", None),
    ("GET", "instances/nobody", None),
    ("GET", "instances/é x", None),
    ("GET", "instances/?top=0", None),
    ("GET", "instances/?runtimeStatus=Sleeping", None),
    ("GET", "orchestrators/hello_orchestrator", None),
    ("GET", "no/such/endpoint", None),
    ("GET", "entities/Counter/k", None),
    ("POST", "entities/Counter/k?op=add", json.dumps(1)),
    ("POST", "orchestrators/no_such_orchestrator", None),
    ("POST", "orchestrators/hello_orchestrator/@entity", None),
    ("POST", "orchestrators/hello_orchestrator/" + "x" * 300, None),
    ("POST", "instances/done/raiseEvent/Approval", json.dumps(1)),
    ("POST", "instances/done/raiseEvent", json.dumps(1)),
    ("POST", "instances/done/terminate?reason=x", None),
    ("POST", "instances/done/rewind?reason=x", None),
    ("POST", "instances/done/unknownOperation", None),
    ("POST", "instances/nobody/suspend?reason=x", None),
    ("DELETE", "instances/", None),
    ("DELETE", "instances/?createdTimeFrom=yesterday", None),
    ("DELETE", "instances/nobody", None),
]


async def test_raw_answers_match_http_for_good_and_bad_requests(host: DurableHost) -> None:
    done = await host.client.start_orchestration("hello_orchestrator", '{"cities": []}', "done")
    await host.client.wait_for_completion(done, DEADLINE_SECONDS)
    for method, path, data in RAW_CASES:
        url = host.rpc_base_url + path
        name = f"{method.lower()}_async_request"
        swapped = getattr(sdk_client_module, name)
        original = getattr(http_utils, name)
        args = (url, data) if method == "POST" else (url,)
        in_process = await swapped(*args)
        over_http = await original(*args)
        assert in_process == over_http, (method, path)
        assert isinstance(in_process[0], int)
        if in_process[0] >= 400:
            assert in_process[1]["status"] == in_process[0], (method, path, in_process)
            assert in_process[1]["detail"], (method, path)


# --- (4) fallbacks ------------------------------------------------------------------------


async def test_another_event_loop_goes_over_http(host: DurableHost, access_log: AccessLog) -> None:
    client = in_process_client(host)
    results: list[Any] = []

    async def from_a_worker_thread() -> None:
        try:
            instance_id = await client.start_new("hello_orchestrator", "threaded", {"cities": []})
            results.append(instance_id)
            results.append((await client.get_status("threaded")).instance_id)
        finally:
            # The SDK's session now belongs to this short-lived loop.
            await http_utils._close_session()

    # A sync function calling asyncio.run in a worker thread does exactly this.
    thread = threading.Thread(target=asyncio.run, args=(from_a_worker_thread(),))
    thread.start()
    await asyncio.to_thread(thread.join, DEADLINE_SECONDS)
    assert results == ["threaded", "threaded"]
    requests = access_log.management_requests()
    assert any("/orchestrators/hello_orchestrator/threaded" in line for line in requests)


async def test_a_foreign_url_goes_over_http(host: DurableHost, access_log: AccessLog) -> None:
    # Another name for the same server is not this host's rpcBaseUrl: the SDK's own path.
    foreign = f"http://localhost:{host.port}{WEBHOOK_PATH}/"
    client = in_process_client(host, rpc_base_url=foreign)
    instance_id = await client.start_new("hello_orchestrator", "foreign", {"cities": []})
    assert instance_id == "foreign"
    assert any("/orchestrators/hello_orchestrator/foreign" in x for x in access_log.lines)


async def test_an_sdk_without_the_request_functions_stays_on_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(sdk_client_module, "get_async_request")
    host = await start_host(tmp_path / "hub.sqlite3")
    try:
        assert sdk_client_module.post_async_request is http_utils.post_async_request
        assert sdk_client_module.delete_async_request is http_utils.delete_async_request
    finally:
        await host.stop()


# --- (5) two hosts in one process ---------------------------------------------------------


async def test_two_hosts_each_answer_their_own_calls(tmp_path: Path) -> None:
    first = await start_host(tmp_path / "first.sqlite3")
    try:
        second = await start_host(tmp_path / "second.sqlite3")
        try:
            assert sorted(registered_base_urls()) == sorted(
                [first.rpc_base_url, second.rpc_base_url]
            )
            await in_process_client(first).start_new("approval_orchestrator", "only-first")
            assert await first.client.get_status("only-first") is not None
            assert await second.client.get_status("only-first") is None
            assert not await in_process_client(second).get_status("only-first")
            assert (await in_process_client(first).get_status("only-first")).instance_id
        finally:
            await second.stop()
        # The first host still answers in-process after the second left.
        assert registered_base_urls() == [first.rpc_base_url]
        await in_process_client(first).terminate("only-first", "done")
        assert sdk_client_module.post_async_request is not http_utils.post_async_request
    finally:
        await first.stop()
    assert sdk_client_module.post_async_request is http_utils.post_async_request


# --- the body limit: in-process calls are held to the app's client_max_size ---------------


async def test_a_body_over_the_limit_is_refused_alike(tmp_path: Path) -> None:
    limit = 64
    store = open_store(tmp_path / "hub.sqlite3")
    engine = DurableEngine(load_app(APP_DIR), store, hub_name=HUB)
    await engine.start()
    app = web.Application(client_max_size=limit)
    management = add_management_routes(app, engine, hub_name=HUB, max_body_bytes=limit)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base_url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}/"
    http_utils._client_session = None
    http_utils._session_lock = asyncio.Lock()
    register_management(base_url, management)
    try:
        url = base_url + "orchestrators/hello_orchestrator"
        big = json.dumps({"cities": ["x" * limit]})
        in_process = await sdk_client_module.post_async_request(url, big)
        over_http = await http_utils.post_async_request(url, big)
        assert in_process == over_http
        assert in_process[0] == 413 and in_process[1]["status"] == 413
        small = await sdk_client_module.post_async_request(url + "/small", json.dumps([]))
        assert small[0] == 202 and small[1]["id"] == "small"
    finally:
        unregister_management(base_url)
        await http_utils._close_session()
        await runner.cleanup()
        await engine.stop()
        store.close()
