"""opsclient against foreign APIs: real HTTP servers on free ports, other people's dialects.

Each test drives the public API (`wait`, `get`, `result`, `run`) through both
OperationsClient and AsyncOperationsClient. The servers are in foreign_apis.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsclient import (
    AsyncOperationsClient,
    Dialect,
    OperationCanceled,
    OperationFailed,
    OperationGone,
    OperationNotFound,
    OperationsClient,
    OperationStatus,
    PollingPolicy,
    RunState,
)
from tests.opsclient.foreign_apis import (
    ArmAPI,
    GoogleOperationsAPI,
    RequestReplyAPI,
    SeedStyleAPI,
    serve,
)

# Fast polls: the servers answer Retry-After: 0, which the floor turns into 10 ms.
FAST = PollingPolicy(min_interval=0.01, max_interval=0.05, default_interval=0.01)
WAIT_TIMEOUT = 30.0
UNKNOWN_WORD_WARNING = "which opsclient does not know"


class Driver:
    """Calls one opsclient method through the sync or the async client."""

    def __init__(self, flavor: str, base_url: str) -> None:
        self.flavor = flavor
        self.base_url = base_url

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.flavor == "sync":
            with OperationsClient(self.base_url, polling=FAST) as client:
                return getattr(client, method)(*args, **kwargs)

        async def call() -> Any:
            async with AsyncOperationsClient(self.base_url, polling=FAST) as client:
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(call())

    def wait(self, target: Any) -> OperationStatus:
        status: OperationStatus = self("wait", target, timeout=WAIT_TIMEOUT)
        return status


@pytest.fixture(params=["sync", "async"])
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def post(url: str, body: Any = None, *, method: str = "POST") -> httpx.Response:
    """Start a job the way a user of that API would, with a plain HTTP client."""
    return httpx.request(method, url, json=body if body is not None else {}, timeout=10)


def unknown_word_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if UNKNOWN_WORD_WARNING in r.getMessage()]


# -- (a) seed-style: relative Location, lower-case words, 303, 404, 410 ---------------------


@pytest.fixture
def seed() -> Iterator[tuple[SeedStyleAPI, str]]:
    api = SeedStyleAPI()
    with serve(api) as url:
        yield api, url


def test_seed_style_relative_location_is_polled_to_the_result(
    seed: tuple[SeedStyleAPI, str], flavor: str
) -> None:
    api, url = seed
    started = post(f"{url}/v1/reports", {"rows": 42})
    assert started.status_code == 202
    location = started.headers["location"]
    assert location.startswith("/v1/reports/")  # relative: never an operation id
    drive = Driver(flavor, url)
    final = drive.wait(location)
    assert final.state is RunState.SUCCEEDED
    assert final.result_url == f"{url}{location}/result"
    assert drive("result", final) == {"id": location.rsplit("/", 1)[1], "rows": 42}
    assert api.jobs.get(location.rsplit("/", 1)[1]).finished  # type: ignore[union-attr]


def test_seed_style_run_starts_waits_and_fetches(
    seed: tuple[SeedStyleAPI, str], flavor: str
) -> None:
    assert Driver(flavor, seed[1])("run", "report", {"rows": 7}, timeout=WAIT_TIMEOUT) == {
        "id": "1",
        "rows": 7,
    }


def test_seed_style_pending_is_read_as_pending_not_done(
    seed: tuple[SeedStyleAPI, str], flavor: str
) -> None:
    _, url = seed
    location = post(f"{url}/v1/reports", {"rows": 1}).headers["location"]
    drive = Driver(flavor, url)
    first, second = drive("get", location), drive("get", location)
    assert (first.state, first.reported_status) == (RunState.PENDING, "pending")
    assert (second.state, second.reported_status) == (RunState.RUNNING, "processing")
    assert drive("get", location).state is RunState.SUCCEEDED


def test_seed_style_failure_surfaces_the_servers_message(
    seed: tuple[SeedStyleAPI, str], flavor: str
) -> None:
    _, url = seed
    body = {"rows": 1, "end": "Failed", "error": "partition 3 exploded"}
    location = post(f"{url}/v1/reports", body).headers["location"]
    with pytest.raises(OperationFailed, match="partition 3 exploded") as caught:
        Driver(flavor, url).wait(location)
    assert caught.value.server_message == "partition 3 exploded"
    assert caught.value.operation_id == location.rsplit("/", 1)[1]


def test_seed_style_cancelled(seed: tuple[SeedStyleAPI, str], flavor: str) -> None:
    _, url = seed
    location = post(f"{url}/v1/reports", {"end": "Canceled"}).headers["location"]
    with pytest.raises(OperationCanceled):
        Driver(flavor, url).wait(location)


def test_seed_style_unknown_word_keeps_polling_and_warns_once(
    seed: tuple[SeedStyleAPI, str], flavor: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, url = seed
    words = ["pending", "reticulating splines", "reticulating splines", "reticulating splines"]
    location = post(f"{url}/v1/reports", {"rows": 5, "words": words}).headers["location"]
    with caplog.at_level(logging.WARNING, logger="opsclient"):
        final = Driver(flavor, url).wait(location)
    assert final.state is RunState.SUCCEEDED
    assert final.http_status == 303  # the end came from the server, not from the odd word
    [warning] = unknown_word_warnings(caplog)
    assert "reticulating splines" in warning.getMessage()


def test_seed_style_unknown_and_expired_reports(flavor: str) -> None:
    with serve(SeedStyleAPI(ttl_seconds=0.0)) as url:
        drive = Driver(flavor, url)
        with pytest.raises(OperationNotFound, match="no report 999"):
            drive.wait("/v1/reports/999")
        location = post(f"{url}/v1/reports", {"rows": 1}).headers["location"]
        with pytest.raises(OperationGone, match="expired"):
            drive.wait(location)


# -- (b) Asynchronous Request-Reply: "In progress", 302, the error kept with a 4xx ----------


@pytest.fixture
def request_reply() -> Iterator[str]:
    with serve(RequestReplyAPI()) as url:
        yield url


def test_in_progress_then_302_to_the_resource(request_reply: str, flavor: str) -> None:
    status_url = post(f"{request_reply}/api/jobs", {"rows": 3}).headers["location"]
    drive = Driver(flavor, request_reply)
    running = drive("get", status_url)
    assert (running.state, running.reported_status) == (RunState.RUNNING, "In progress")
    final = drive.wait(status_url)
    assert final.result_url == f"{request_reply}/api/jobs/1"
    assert drive("result", final) == {"id": "1", "rows": 3}


@pytest.mark.parametrize("error_status", [400, 409, 422])
@pytest.mark.parametrize("error_shape", ["arm", "string", "message", "problem", "text"])
def test_error_kept_at_the_status_url_with_a_4xx_is_the_operations_failure(
    request_reply: str, flavor: str, error_status: int, error_shape: str
) -> None:
    job = {"end": "Failed", "error": "row 7 has no date", "errorStatus": error_status}
    status_url = post(f"{request_reply}/api/jobs", {**job, "errorShape": error_shape})
    with pytest.raises(OperationFailed, match="row 7 has no date") as caught:
        Driver(flavor, request_reply).wait(status_url.headers["location"])
    assert caught.value.error["message"] == caught.value.error["detail"]
    assert caught.value.status is not None
    assert caught.value.status.http_status == error_status


def test_a_failed_status_read_with_get_is_returned_not_raised(
    request_reply: str, flavor: str
) -> None:
    job = {"words": [], "end": "Failed", "error": "no disk", "errorStatus": 400}
    status_url = post(f"{request_reply}/api/jobs", job).headers["location"]
    status = Driver(flavor, request_reply)("get", status_url)
    assert status.state is RunState.FAILED
    assert (status.error["code"], status.error["message"]) == ("JobFailed", "no disk")


# -- (c) ARM: Azure-AsyncOperation + Location, provider words, the ARM error shape -----------

WIDGETS = "/subscriptions/sub1/resourceGroups/rg1/providers/Contoso.Widgets/widgets"


@pytest.fixture
def arm() -> Iterator[str]:
    with serve(ArmAPI()) as url:
        yield url


def test_arm_async_operation_with_provider_words_succeeds(arm: str, flavor: str) -> None:
    started = post(f"{arm}{WIDGETS}/w1?api-version=2024-01-01", {"size": 3}, method="PUT")
    assert started.status_code == 202
    drive = Driver(flavor, arm)
    first = drive("get", started.headers["azure-asyncoperation"])
    assert (first.state, first.reported_status) == (RunState.PENDING, "Accepted")
    final = drive.wait(started.headers["azure-asyncoperation"])
    assert (final.state, final.reported_status) == (RunState.SUCCEEDED, "Succeeded")
    # The final resource is behind Location (ARM's final-state rules are the caller's).
    resource = drive("result", started.headers["location"])
    assert resource["properties"]["provisioningState"] == "Succeeded"


def test_arm_failure_surfaces_the_nested_cause(arm: str, flavor: str) -> None:
    job = {"end": "Failed", "error": "Quota of 4 cores exceeded in westus"}
    started = post(f"{arm}{WIDGETS}/w1", job, method="PUT")
    drive = Driver(flavor, arm)
    for url in (started.headers["azure-asyncoperation"], started.headers["location"]):
        with pytest.raises(OperationFailed, match="Quota of 4 cores exceeded") as caught:
            drive.wait(url)
        assert caught.value.error["code"] == "DeploymentFailed"
        assert "DeploymentFailed: At least one resource" in str(caught.value)


def test_arm_canceled(arm: str, flavor: str) -> None:
    started = post(f"{arm}{WIDGETS}/w1", {"end": "Canceled"}, method="PUT")
    with pytest.raises(OperationCanceled):
        Driver(flavor, arm).wait(started.headers["azure-asyncoperation"])


def test_arm_provider_specific_word_keeps_polling_and_warns_once(
    arm: str, flavor: str, caplog: pytest.LogCaptureFixture
) -> None:
    words = ["Accepted", "Reticulating", "Reticulating", "Reticulating", "Updating"]
    started = post(f"{arm}{WIDGETS}/w1", {"words": words}, method="PUT")
    with caplog.at_level(logging.WARNING, logger="opsclient"):
        final = Driver(flavor, arm).wait(started.headers["azure-asyncoperation"])
    assert final.state is RunState.SUCCEEDED
    assert len(unknown_word_warnings(caplog)) == 1


def test_arm_resource_provisioning_state_is_polled_until_succeeded(arm: str, flavor: str) -> None:
    post(f"{arm}{WIDGETS}/w2", {"words": ["Creating", "Updating"]}, method="PUT")
    drive = Driver(flavor, arm)
    final = drive.wait(f"{WIDGETS}/w2")  # relative to base_url
    assert (final.dialect, final.state) == (Dialect.ARM, RunState.SUCCEEDED)
    assert final.output["properties"]["size"] == 3
    assert drive("result", final) == final.output


def test_arm_resource_failed_provisioning(arm: str, flavor: str) -> None:
    post(f"{arm}{WIDGETS}/w3", {"words": ["Creating"], "end": "Failed"}, method="PUT")
    with pytest.raises(OperationFailed, match="provisioningState"):
        Driver(flavor, arm).wait(f"{arm}{WIDGETS}/w3")


# -- (d) Google-style long-running operations ------------------------------------------------


@pytest.fixture
def google() -> Iterator[str]:
    with serve(GoogleOperationsAPI()) as url:
        yield url


def test_google_operation_done_with_response(google: str, flavor: str) -> None:
    operation = post(f"{google}/v1/reports:generate", {"rows": 9}).json()
    assert operation["done"] is False
    drive = Driver(flavor, google)
    url = f"{google}/v1/{operation['name']}"
    running = drive("get", url)
    assert (running.dialect, running.state) == (Dialect.GOOGLE, RunState.RUNNING)
    assert running.progress is not None and running.progress.fraction is not None
    final = drive.wait(url)
    assert final.id == operation["name"]
    assert drive("result", final) == {"@type": "type.example.com/Report", "rows": 9}


def test_google_operation_done_with_error(google: str, flavor: str) -> None:
    operation = post(f"{google}/v1/reports:generate", {"end": "Failed", "error": "bad range"})
    with pytest.raises(OperationFailed, match="bad range") as caught:
        Driver(flavor, google).wait(f"{google}/v1/{operation.json()['name']}")
    assert caught.value.error["code"] == 3


def test_google_operation_cancelled(google: str, flavor: str) -> None:
    name = post(f"{google}/v1/reports:generate", {"words": ["running"] * 50}).json()["name"]
    assert post(f"{google}/v1/{name}:cancel").status_code == 200
    with pytest.raises(OperationCanceled, match="cancelled by the caller"):
        Driver(flavor, google).wait(f"{google}/v1/{name}")


def test_google_unknown_operation(google: str, flavor: str) -> None:
    with pytest.raises(OperationNotFound, match="operation 404 not found"):
        Driver(flavor, google).wait(f"{google}/v1/operations/404")
