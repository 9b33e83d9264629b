"""The official-sample shapes, end to end: a durablehost process runs an unmodified
Blueprint app; clients use only the URLs its HTTP starter hands out
(create_check_status_response), as they would against Azure; blobs go to real Azurite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.storage.blob import BlobServiceClient

from tests.durablehost.check_status import start, wait
from tests.support.azurite import Azurite
from tests.support.hostproc import HostProcess, run_host_process

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "samples"


@pytest.fixture(scope="module")
def host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    hub = tmp_path_factory.mktemp("samples") / "hub.sqlite3"
    env = {"AzureWebJobsStorage": azurite.connection_string}
    with run_host_process(APP, hub=hub, env=env) as process:
        yield process


@pytest.fixture
def client(host: HostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url, timeout=30) as http:
        yield http


def test_function_chaining(client: httpx.Client) -> None:
    status = wait(client, start(client, "hello_chain"))
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_fan_out_fan_in_writes_blobs_to_azurite(client: httpx.Client, azurite: Azurite) -> None:
    urls = start(client, "fan_out_blobs", {"count": 25})
    status = wait(client, urls)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["blobs"] == 25
    container = BlobServiceClient.from_connection_string(
        azurite.connection_string
    ).get_container_client("samples")
    names = sorted(blob.name for blob in container.list_blobs(name_starts_with=urls["id"]))
    assert names == sorted(f"{urls['id']}/{n}.json" for n in range(25))
    sizes = sum(container.get_blob_client(name).get_blob_properties().size for name in names)
    assert sizes == status["output"]["bytes"]


def test_human_interaction_approved_by_event(client: httpx.Client) -> None:
    urls = start(client, "approval_workflow", {"timeoutSeconds": 60})
    event_url = urls["sendEventPostUri"].replace("{eventName}", "Approval")
    deadline = time.monotonic() + 10
    while True:  # the orchestration must exist; events before the wait are buffered
        response = client.post(event_url, json={"by": "ana"})
        if response.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.status_code == 202, response.text
    status = wait(client, urls)
    assert status["output"] == {"outcome": "approved", "by": "ana"}


def test_human_interaction_times_out_on_a_durable_timer(client: httpx.Client) -> None:
    status = wait(client, start(client, "approval_workflow", {"timeoutSeconds": 1}))
    assert status["output"] == {"outcome": "escalated"}


def test_monitor_with_timers_and_continue_as_new(client: httpx.Client) -> None:
    urls = start(client, "monitor", {"checks": 0, "intervalMs": 100})
    status = wait(client, urls)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"checks": 3, "intervalMs": 100}
    assert status["customStatus"] == {"checks": 3, "last": "done"}


def test_retries_of_a_transient_failure(client: httpx.Client) -> None:
    urls = start(client, "with_retries")
    status = wait(client, urls)
    assert status["output"] == "succeeded on attempt 3"
    history = client.get(urls["statusQueryGetUri"], params={"showHistory": "true"}).json()
    failed = [e for e in history["historyEvents"] if e["EventType"] == "TaskFailed"]
    assert len(failed) == 2
    assert "transient failure 1" in failed[0]["Reason"]


def test_sub_orchestrations(client: httpx.Client) -> None:
    urls = start(client, "parent")
    status = wait(client, urls)
    assert status["output"]["cities"][0] == "Hello Tokyo!"
    assert status["output"]["blobs"]["blobs"] == 3
    child = client.get(urls["statusQueryGetUri"].replace(urls["id"], f"{urls['id']}-blobs"))
    assert child.status_code == 200
    assert child.json()["runtimeStatus"] == "Completed"


def test_a_failed_instance_reports_the_activity_error(client: httpx.Client) -> None:
    urls = start(client, "doomed")
    status = wait(client, urls)
    assert status["runtimeStatus"] == "Failed"
    assert "cannot process the reactor" in status["output"]
    assert "RuntimeError" in status["output"]
    assert "samples_blueprint.py" in status["output"]  # the user's traceback
    server_error = client.get(
        urls["statusQueryGetUri"], params={"returnInternalServerErrorOnFailure": "true"}
    )
    assert server_error.status_code == 500


def test_a_starter_that_raises_is_a_500_problem(client: httpx.Client) -> None:
    # start_new raises on the management API's 400 (unknown orchestrator); an exception
    # in a function is a 500 problem+json without internals, as on Azure.
    response = client.post("/api/orchestrators/no_such_thing", json=None)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
