"""The SDK's own DurableOrchestrationClient, built from our client binding JSON, against the
management API served over a real socket by the real engine."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.durable_functions import OrchestrationRuntimeStatus as Status
from azure.durable_functions.models.utils import http_utils

from durablehost.model.instances import RuntimeStatus
from durablehost.wire.client import client_binding_json
from tests.durablehost.test_management_api import HUB, ManagementHost, serve


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[ManagementHost]:
    # The SDK keeps one aiohttp session (and lock) per module, bound to the first event
    # loop that used it; every test runs on a fresh loop, so each gets a fresh pair.
    http_utils._client_session = None
    http_utils._session_lock = asyncio.Lock()
    try:
        async for started in serve(tmp_path):
            yield started
    finally:
        await http_utils._close_session()


@pytest.fixture
def client(host: ManagementHost) -> df.DurableOrchestrationClient:
    return df.DurableOrchestrationClient(client_binding_json(host.base_url, HUB))


async def settled(
    client: df.DurableOrchestrationClient, instance_id: str, *wanted: Status
) -> df.DurableOrchestrationStatus:
    """Poll get_status until the instance is in one of `wanted` (with a deadline)."""
    deadline = time.monotonic() + 15
    while True:
        status = await client.get_status(instance_id)
        if status.runtime_status in wanted:
            return status
        assert time.monotonic() < deadline, f"{instance_id} stuck in {status.runtime_status}"
        await asyncio.sleep(0.02)


async def test_start_new_and_get_status(client: df.DurableOrchestrationClient) -> None:
    instance_id = await client.start_new("hello_orchestrator", None, {"cities": ["Tokyo"]})
    done = await settled(client, instance_id, Status.Completed)
    assert done.output == ["Hello Tokyo!"]
    assert done.input_ == {"cities": ["Tokyo"]}
    assert done.name == "hello_orchestrator"
    assert done.created_time is not None and done.created_time.tzinfo is not None

    with_history = await client.get_status(instance_id, show_history=True, show_history_output=True)
    events = with_history.historyEvents
    assert [e["EventType"] for e in events][-1] == "ExecutionCompleted"
    assert events[-1]["Result"] == ["Hello Tokyo!"]

    chosen = await client.start_new("hello_orchestrator", "my-id", {"cities": []})
    assert chosen == "my-id"


async def test_get_status_of_an_unknown_instance_is_falsy(
    client: df.DurableOrchestrationClient,
) -> None:
    status = await client.get_status("nobody")
    assert not status
    assert status.runtime_status is None


async def test_start_new_of_an_unknown_orchestrator_raises_the_extension_message(
    client: df.DurableOrchestrationClient,
) -> None:
    with pytest.raises(Exception, match="no_such_orchestrator"):
        await client.start_new("no_such_orchestrator")


async def test_get_status_all_and_by(client: df.DurableOrchestrationClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    done_id = await client.start_new("hello_orchestrator", "done-1")
    waiting_id = await client.start_new("approval_orchestrator", "wait-1")
    await settled(client, done_id, Status.Completed)
    await settled(client, waiting_id, Status.Running)

    everything = await client.get_status_all()
    assert sorted(s.instance_id for s in everything) == ["done-1", "wait-1"]

    running = await client.get_status_by(runtime_status=[Status.Running, Status.Pending])
    assert [s.instance_id for s in running] == ["wait-1"]
    windowed = await client.get_status_by(
        created_time_from=before, created_time_to=datetime.now(UTC) + timedelta(minutes=1)
    )
    assert len(windowed) == 2
    later = await client.get_status_by(created_time_from=datetime.now(UTC) + timedelta(hours=1))
    assert later == []
    prefixed = await client.get_status_by(instance_id_prefix="done")
    assert [s.instance_id for s in prefixed] == ["done-1"]


async def test_raise_event_delivers_the_value_not_a_string(
    client: df.DurableOrchestrationClient,
) -> None:
    instance_id = await client.start_new("approval_orchestrator", None, {"order": 3})
    await settled(client, instance_id, Status.Running)
    await client.raise_event(instance_id, "Approval", {"approved": True})
    done = await settled(client, instance_id, Status.Completed)
    assert done.output == {"input": {"order": 3}, "approval": {"approved": True}}

    with pytest.raises(Exception, match="gone"):
        await client.raise_event(instance_id, "Approval", 1)
    with pytest.raises(Exception, match="No instance"):
        await client.raise_event("nobody", "Approval", 1)


async def test_terminate_suspend_resume(client: df.DurableOrchestrationClient) -> None:
    instance_id = await client.start_new("approval_orchestrator")
    await settled(client, instance_id, Status.Running)
    await client.suspend(instance_id, "hold on")
    await settled(client, instance_id, Status.Suspended)
    await client.resume(instance_id, "carry on")
    await settled(client, instance_id, Status.Running)
    await client.terminate(instance_id, "enough")
    done = await settled(client, instance_id, Status.Terminated)
    assert done.output == "enough"
    # Finished instances answer 410, which the SDK accepts silently.
    await client.terminate(instance_id, "again")
    await client.suspend(instance_id, "again")
    await client.resume(instance_id, "again")
    for operation in (client.terminate, client.suspend, client.resume):
        with pytest.raises(Exception, match="No instance"):
            await operation("nobody", "why")


async def test_rewind(client: df.DurableOrchestrationClient) -> None:
    instance_id = await client.start_new("flaky_orchestrator")
    await settled(client, instance_id, Status.Failed)
    await client.rewind(instance_id, "the bug is fixed")
    done = await settled(client, instance_id, Status.Completed)
    assert done.output == f"recovered {instance_id}"
    with pytest.raises(Exception, match="Failed"):
        await client.rewind(instance_id, "not failed any more")
    with pytest.raises(Exception, match="No instance"):
        await client.rewind("nobody", "why")


async def test_restart(client: df.DurableOrchestrationClient) -> None:
    first = await client.start_new("hello_orchestrator", None, {"cities": ["Nice"]})
    await settled(client, first, Status.Completed)
    # The extension answers a restart with the check-status payload, which this SDK
    # version hands back as is.
    payload = await client.restart(first)
    assert isinstance(payload, dict)
    restarted = payload["id"]
    assert restarted != first
    done = await settled(client, restarted, Status.Completed)
    assert done.output == ["Hello Nice!"]
    same = await client.restart(first, restart_with_new_instance_id=False)
    assert same["id"] == first
    with pytest.raises(Exception, match="No instance"):
        await client.restart("nobody")


async def test_purge_instance_history_and_by(client: df.DurableOrchestrationClient) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = [await client.start_new("hello_orchestrator") for _ in range(3)]
    for instance_id in ids:
        await settled(client, instance_id, Status.Completed)

    one = await client.purge_instance_history(ids[0])
    assert one.instances_deleted == 1
    missing = await client.purge_instance_history(ids[0])
    assert missing.instances_deleted == 0

    rest = await client.purge_instance_history_by(
        created_time_from=since, runtime_status=[Status.Completed]
    )
    assert rest.instances_deleted == 2
    none_left = await client.purge_instance_history_by(created_time_from=since)
    assert none_left.instances_deleted == 0
    assert await client.get_status_all() == []


async def test_wait_for_completion_or_create_check_status_response(
    client: df.DurableOrchestrationClient, host: ManagementHost
) -> None:
    request = func.HttpRequest("POST", f"{host.base_url}/api/start", body=b"")
    quick = await client.start_new("hello_orchestrator", None, {"cities": ["Cork"]})
    response = await client.wait_for_completion_or_create_check_status_response(
        request, quick, timeout_in_milliseconds=10_000, retry_interval_in_milliseconds=50
    )
    assert response.status_code == 200
    assert json.loads(response.get_body()) == ["Hello Cork!"]

    slow = await client.start_new("approval_orchestrator")
    pending = await client.wait_for_completion_or_create_check_status_response(
        request, slow, timeout_in_milliseconds=200, retry_interval_in_milliseconds=50
    )
    assert pending.status_code == 202
    location = pending.headers["Location"]
    assert location.startswith(f"{host.base_url}/runtime/webhooks/durabletask/instances/{slow}")
    followed = await host.http.get(location)
    assert followed.status_code == 202
    assert followed.json()["runtimeStatus"] in (RuntimeStatus.RUNNING, RuntimeStatus.PENDING)
