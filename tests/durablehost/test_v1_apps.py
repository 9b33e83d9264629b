"""Python v1 (function.json) apps, end to end: a durablehost process runs an unmodified v1
app (tests/durablehost/apps/v1_app, written in the style of the official samples) and
clients use only the URLs its HTTP starter hands out, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.durablehost.check_status import start, wait
from tests.support.hostproc import HostProcess, run_host_process

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "v1_app"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    hub = tmp_path_factory.mktemp("v1") / "hub.sqlite3"
    with run_host_process(APP, hub=hub) as process:
        yield process


@pytest.fixture
def client(host: HostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url, timeout=30) as http:
        yield http


def test_the_banner_lists_every_function_by_folder_name(host: HostProcess) -> None:
    log = host.logs()
    assert "HttpStart: [GET,POST] http://127.0.0.1:" in log
    assert "/api/orchestrators/{functionName}" in log
    for name, kind in [
        ("HelloChain", "orchestrationTrigger"),
        ("SayHello", "activityTrigger"),
        ("Counter", "entityTrigger"),
        ("Heartbeat", "timerTrigger"),
    ]:
        assert f"{name}: {kind}" in log
    assert "Retired" not in log.split("Functions:")[1]
    assert "in error" not in log


def test_chaining_with_a_relative_import_and_local_settings(client: httpx.Client) -> None:
    status = wait(client, start(client, "HelloChain"))
    assert status["runtimeStatus"] == "Completed", status
    # SayHello imports ..shared_code.greetings, which reads GREETING_PREFIX from
    # local.settings.json.
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_fan_out_fan_in(client: httpx.Client) -> None:
    status = wait(client, start(client, "FanOutFanIn", {"count": 20}))
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"parts": 20, "total": sum(n * n for n in range(20))}


def test_monitor_polls_on_a_durable_timer(client: httpx.Client) -> None:
    status = wait(client, start(client, "MonitorJob", {"jobId": "j-1", "expirySeconds": 60}))
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"jobId": "j-1", "checks": 3}
    assert status["customStatus"] == {"attempt": 3, "state": "done"}


def test_sub_orchestration_passes_a_custom_class(client: httpx.Client) -> None:
    urls = start(client, "ProcessOrder", {"orderId": "o-7", "items": ["a", "b"]})
    status = wait(client, urls)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"orderId": "o-7", "status": "packed 2", "type": "Shipment"}


def test_human_interaction_approved_through_the_management_api(client: httpx.Client) -> None:
    urls = start(client, "ApprovalWorkflow", {"timeoutSeconds": 300})
    wait(client, urls, until="waiting for approval")
    event_url = urls["sendEventPostUri"].replace("{eventName}", "ApprovalEvent")
    raised = client.post(event_url, json={"approved": True})
    assert raised.status_code == 202, raised.text
    status = wait(client, urls)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"outcome": "approved"}


def test_human_interaction_times_out(client: httpx.Client) -> None:
    status = wait(client, start(client, "ApprovalWorkflow", {"timeoutSeconds": 1}))
    assert status["output"] == {"outcome": "timed out"}


def test_orchestration_client_binding_named_output_and_entry_point(
    client: httpx.Client,
) -> None:
    response = client.post("/api/legacy/HelloChain/legacy-1", json={"from": "legacy"})
    assert response.status_code == 202, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    # context.function_name is the folder name; the instance id came from the route.
    assert response.json() == {"id": "legacy-1", "startedBy": "LegacyStart"}
    status = wait(client, {"statusQueryGetUri": "/runtime/webhooks/durabletask/instances/legacy-1"})
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_timer_trigger_runs_on_startup_with_a_durable_client(client: httpx.Client) -> None:
    status = wait(
        client, {"statusQueryGetUri": "/runtime/webhooks/durabletask/instances/heartbeat"}
    )
    assert status["name"] == "HelloChain"
    assert status["runtimeStatus"] == "Completed", status


def test_a_function_disabled_in_its_function_json_is_not_served(client: httpx.Client) -> None:
    assert client.get("/api/Retired").status_code == 404


def test_starting_an_unknown_orchestrator_fails_the_starter_not_the_host(
    client: httpx.Client,
) -> None:
    response = client.post("/api/orchestrators/NoSuchOrchestrator")
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert client.post("/api/orchestrators/HelloChain").status_code == 202


def test_an_entity_is_listed_and_calling_it_fails_loudly(
    client: httpx.Client, host: HostProcess
) -> None:
    status = wait(client, start(client, "UseCounter"))
    assert status["runtimeStatus"] == "Failed", status
    assert "does not run durable entities" in str(status["output"]), status
    assert "entities are not supported" in host.logs()
