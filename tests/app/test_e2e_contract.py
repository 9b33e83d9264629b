"""End to end over HTTP: the shared contract of the three status URLs a start hands out.

For each state (running, succeeded, failed, canceled, expired) and each URL (the monitor
in `Location`, the status resource in `Operation-Location`, the Durable Functions
`statusQueryGetUri` in the body): the status code, the headers (absolute `Location`,
`Retry-After` exactly while in flight) and the body; the 202 itself; the orchestration
output's `resultUri`; bad ids as problem+json with `message`; and azure-core's own poller
following `Operation-Location` to the result.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core import PipelineClient
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineResponse
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import LROBasePolling
from azure.core.rest import HttpRequest

from tests.app.conftest import AppHost, eventually, json_of, run_app_host, run_peer
from tests.app.openapi_conformance import Conformance, load_spec
from tests.support.azurite import Azurite

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def api() -> Conformance:
    return Conformance(load_spec())


def _started(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return json_of(response)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    body = json_of(response)
    assert body["status"] == status
    assert body["type"].startswith("urn:durable-ops:problem:") and body["title"]
    assert body["message"] == body["detail"] and body["detail"]
    return body


def _built_in(app_host: AppHost, started: dict[str, Any], **params: str) -> httpx.Response:
    """The Durable Functions statusQueryGetUri, as a client of the extension reads it."""
    return app_host.http.get(started["statusQueryGetUri"], params=params)


def _three_urls(app_host: AppHost, started: dict[str, Any]) -> dict[str, httpx.Response]:
    return {
        "monitor": app_host.http.get(started["operationUri"]),
        "status": app_host.http.get(started["statusUri"]),
        "plain": app_host.http.get(started["operationUri"], params={"redirect": "false"}),
        "built_in": _built_in(app_host, started),
    }


def _absolute(url: str, app_host: AppHost) -> bool:
    return url.startswith(f"{app_host.url}/")


# ------------------------------------------------------------------- the 202


def test_start_points_location_at_the_monitor_and_operation_location_at_the_status(
    app_host: AppHost, api: Conformance
) -> None:
    response = api.check(app_host.start("report", {"rows": 50, "partitions": 2}))
    body = _started(response)
    operation_id = body["id"]
    monitor = f"{app_host.api}/{operation_id}"
    assert response.headers["Location"] == body["operationUri"] == monitor
    assert response.headers["Operation-Location"] == body["statusUri"] == f"{monitor}/status"
    assert response.headers["Azure-AsyncOperation"] == body["statusUri"]
    assert int(response.headers["Retry-After"]) >= 1
    assert body["resultUri"] == f"{monitor}/result"
    assert (body["status"], body["kind"]) == ("NotStarted", "report")
    assert body["statusQueryGetUri"] and body["terminatePostUri"]


def test_a_replayed_start_answers_the_same_headers_and_body(
    app_host: AppHost, api: Conformance
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.check(app_host.start("report", {"rows": 20}, **key))
    app_host.wait_for(json_of(first)["id"])
    again = api.check(app_host.start("report", {"rows": 20}, **key))
    assert json_of(again) == json_of(first)
    assert again.headers["Idempotent-Replayed"] == "true"
    for name in ("Location", "Operation-Location", "Azure-AsyncOperation", "Retry-After"):
        assert again.headers[name] == first.headers[name], name


# ------------------------------------------------------------------- each state


def test_running(app_host: AppHost, api: Conformance) -> None:
    started = _started(app_host.start("approval", {"subject": "s", "timeoutSeconds": 600}))
    app_host.wait_for(started["id"], {"Running"})
    answers = _three_urls(app_host, started)

    for name in ("monitor", "status", "plain"):
        response = api.check(answers[name])
        assert response.status_code == 200, name
        assert int(response.headers["Retry-After"]) >= 1, name
        body = json_of(response)
        assert body["status"] == "Running"
        assert 0 <= body["percentComplete"] < 100
        assert body["statusUri"] == started["statusUri"]
        assert "resourceLocation" not in body and "error" not in body

    built_in = answers["built_in"]
    assert built_in.status_code == 202
    assert built_in.headers["Retry-After"]
    assert json_of(built_in)["runtimeStatus"] == "Running"
    app_host.http.delete(started["operationUri"])


def test_succeeded(app_host: AppHost, api: Conformance) -> None:
    started = _started(app_host.start("report", {"rows": 300, "partitions": 3}))
    app_host.wait_for(started["id"])
    answers = _three_urls(app_host, started)

    monitor = api.check(answers["monitor"])
    assert monitor.status_code == 303
    assert monitor.headers["Location"] == started["resultUri"]
    assert _absolute(monitor.headers["Location"], app_host)
    assert "Retry-After" not in monitor.headers
    assert json_of(monitor)["resourceLocation"] == started["resultUri"]

    for name in ("status", "plain"):
        response = api.check(answers[name])
        assert response.status_code == 200, name
        assert "Retry-After" not in response.headers, name
        body = json_of(response)
        assert body["status"] == "Succeeded"
        assert body["percentComplete"] == 100
        assert body["resourceLocation"] == body["resultUri"] == started["resultUri"]

    result = app_host.http.get(monitor.headers["Location"], follow_redirects=True)
    assert result.status_code == 200
    assert result.json()["rows"] == 300

    built_in = answers["built_in"]
    assert built_in.status_code == 200
    status = json_of(built_in)
    assert status["runtimeStatus"] == "Completed"
    # Started through the API: the absolute URL, as the API hands it out.
    assert status["output"]["resultUri"] == started["resultUri"]
    assert set(status["output"]["results"]) == {"application/json", "text/csv"}


def test_failed(app_host: AppHost, api: Conformance) -> None:
    with run_peer([404]) as missing:
        started = _started(app_host.start("ingest", {"urls": [f"{missing.url}/nothing"]}))
        app_host.wait_for(started["id"])
    answers = _three_urls(app_host, started)

    monitor = api.check(answers["monitor"])
    problem = _problem(monitor, 422)
    assert "Retry-After" not in monitor.headers and "Location" not in monitor.headers
    assert problem["type"] == "urn:durable-ops:problem:operation-failed"
    assert problem["title"] == "Operation failed"
    assert "HTTP 404" in problem["detail"]
    assert (problem["id"], problem["operationStatus"]) == (started["id"], "Failed")
    assert problem["error"] == {"code": "OperationFailed", "message": problem["detail"]}

    for name in ("status", "plain"):
        response = api.check(answers[name])
        assert response.status_code == 200, name
        assert "Retry-After" not in response.headers, name
        body = json_of(response)
        assert body["status"] == "Failed"
        assert "resourceLocation" not in body and "resultUri" not in body
        error = body["error"]
        assert error["code"] == "OperationFailed"
        assert error["message"] == error["detail"] == problem["detail"]
        assert error["type"] == problem["type"] and error["status"] == 422

    built_in = answers["built_in"]
    assert built_in.status_code == 200
    assert json_of(built_in)["runtimeStatus"] == "Failed"
    fail_as_500 = _built_in(app_host, started, returnInternalServerErrorOnFailure="true")
    assert fail_as_500.status_code == 500


def test_canceled(app_host: AppHost, api: Conformance) -> None:
    started = _started(app_host.start("approval", {"subject": "c", "timeoutSeconds": 600}))
    app_host.wait_for(started["id"], {"Running"})
    assert app_host.http.delete(started["operationUri"]).status_code == 202
    app_host.wait_for(started["id"])
    answers = _three_urls(app_host, started)

    monitor = api.check(answers["monitor"])
    problem = _problem(monitor, 409)
    assert "Retry-After" not in monitor.headers
    assert problem["type"] == "urn:durable-ops:problem:operation-canceled"
    assert (problem["id"], problem["operationStatus"]) == (started["id"], "Canceled")
    assert "canceled" in problem["detail"]
    assert problem["error"] == {"code": "OperationCanceled", "message": problem["detail"]}

    for name in ("status", "plain"):
        response = api.check(answers[name])
        assert response.status_code == 200, name
        assert "Retry-After" not in response.headers, name
        body = json_of(response)
        assert body["status"] == "Canceled"
        assert "resourceLocation" not in body
        # Not a failure, but azure-core's pollers read `error` to say why no result.
        assert body["error"]["code"] == "OperationCanceled"
        assert body["error"]["message"] == body["error"]["detail"]
        assert "canceled" in body["error"]["message"]

    built_in = answers["built_in"]
    assert built_in.status_code == 200
    assert json_of(built_in)["runtimeStatus"] == "Terminated"


@pytest.fixture(scope="module")
def expiring_host(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[AppHost]:
    """The app with a 1-second TTL and the expiry timer firing every second."""
    with run_app_host(
        tmp_path_factory.mktemp("contract-expiring"),
        azurite,
        OPS_OPERATION_TTL_SECONDS="1",
        OPS_PURGE_SCHEDULE="*/1 * * * * *",
    ) as host:
        yield host


def test_expired(expiring_host: AppHost, api: Conformance) -> None:
    started = _started(expiring_host.start("report", {"rows": 10, "partitions": 1}))
    eventually(lambda: expiring_host.http.get(started["statusUri"]).status_code == 410, timeout=30)
    answers = _three_urls(expiring_host, started)
    for name in ("monitor", "status", "plain"):
        response = api.check(answers[name])
        body = _problem(response, 410)
        assert body["expiredAt"], name
        assert "Retry-After" not in response.headers, name
    # Expiry purged the history: the extension no longer knows the instance.
    assert answers["built_in"].status_code == 404


# ------------------------------------------------------------------- output resultUri


def test_started_through_the_management_api_the_output_result_uri_is_root_relative(
    app_host: AppHost,
) -> None:
    operation_id = uuid.uuid4().hex
    envelope = {
        "operationId": operation_id,
        "kind": "report",
        "input": {"rows": 10, "partitions": 1},
    }
    started = app_host.http.post(
        f"{app_host.url}/runtime/webhooks/durabletask/orchestrators/report_operation/{operation_id}",
        json=envelope,
    )
    assert started.status_code == 202, started.text
    status_url = json_of(started)["statusQueryGetUri"]

    def completed() -> dict[str, Any] | None:
        body = json_of(app_host.http.get(status_url))
        return body if body["runtimeStatus"] == "Completed" else None

    output = eventually(completed, timeout=30)["output"]
    assert output["resultUri"] == f"/api/operations/{operation_id}/result"
    # The API still reads it as an operation, with absolute links of its own.
    monitor = app_host.http.get(f"{app_host.api}/{operation_id}")
    assert monitor.status_code == 303
    assert monitor.headers["Location"] == f"{app_host.api}/{operation_id}/result"


# ------------------------------------------------------------------- bad ids and methods


@pytest.mark.parametrize("operation_id", ["0" * 32, "not_an_id!", "a" * 100])
def test_unknown_or_malformed_ids_are_404_problems(
    app_host: AppHost, api: Conformance, operation_id: str
) -> None:
    for url in (f"{app_host.api}/{operation_id}", f"{app_host.api}/{operation_id}/status"):
        body = _problem(api.check(app_host.http.get(url)), 404)
        assert body["type"].endswith("operation-not-found")


def test_the_status_resource_takes_only_get(app_host: AppHost) -> None:
    url = f"{app_host.api}/{'0' * 32}/status"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = app_host.http.request(method, url, json={})
        body = _problem(response, 405)
        assert response.headers["Allow"] == "GET"
        assert method in body["detail"]


# ------------------------------------------------------------------- azure-core's poller


def _poller(app_host: AppHost, kind: str, payload: dict[str, Any]) -> LROPoller[Any]:
    """azure-core's own long-running-operation poller, started on our 202."""
    client: PipelineClient[Any, Any] = PipelineClient(base_url=app_host.url)
    request = HttpRequest("POST", f"{app_host.api}/{kind}", json=payload)
    initial = client.send_request(request, _return_pipeline_response=True)

    def final(pipeline_response: PipelineResponse[Any, Any]) -> Any:
        return pipeline_response.http_response.json()

    return LROPoller(client, initial, final, LROBasePolling(timeout=1))


def test_azure_core_polls_the_status_resource_to_the_result(app_host: AppHost) -> None:
    poller = _poller(app_host, "report", {"rows": 77, "partitions": 2})
    report = poller.result(timeout=60)
    assert poller.status() == "Succeeded"
    assert report["rows"] == 77


def test_azure_core_reports_a_failed_operation(app_host: AppHost) -> None:
    with run_peer([404]) as missing:
        poller = _poller(app_host, "ingest", {"urls": [f"{missing.url}/nothing"]})
        with pytest.raises(HttpResponseError):
            poller.result(timeout=60)
    assert poller.status() == "Failed"
