"""Pure unit tests of reading foreign dialects: every status word, every error shape,
relative links. One answer in, one reading out; no sockets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from opsclient import (
    AuthenticationFailed,
    ConfigurationError,
    Dialect,
    HTTPStatusError,
    OperationCanceled,
    OperationFailed,
    OperationGone,
    OperationNotFound,
    ProtocolError,
    RunState,
)
from opsclient.dialects import (
    error_for_response,
    interpret_status,
    operation_error_for_response,
    status_from_body,
)
from opsclient.polling import Done, StatusPoller, Stop, Wait
from opsclient.protocol import ClientCore, RequestSpec
from opsclient.server_errors import failure_details, failure_message
from opsclient.vocabulary import STATUS_WORDS, normalise_word, state_for_word

STATUS_URL = "http://svc.test/v1/reports/42"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def answer(
    status: int,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    url: str | None = None,
    content_type: str | None = None,
) -> httpx.Response:
    """A response, optionally as if fetched from `url` (its request)."""
    request = httpx.Request("GET", url) if url else None
    if isinstance(body, str):
        return httpx.Response(
            status,
            text=body,
            headers={"content-type": content_type or "text/plain", **(headers or {})},
            request=request,
        )
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    response = httpx.Response(status, json=body, headers=headers, request=request)
    if content_type:
        response.headers["content-type"] = content_type
    return response


def observe(poller: StatusPoller, response: httpx.Response) -> Any:
    return poller.observe(response, now=0.0, wall_now=NOW)


# -- the vocabulary -----------------------------------------------------------------------

WORDS = [
    # Durable Functions runtimeStatus
    ("Pending", RunState.PENDING),
    ("Running", RunState.RUNNING),
    ("ContinuedAsNew", RunState.RUNNING),
    ("Suspended", RunState.RUNNING),
    ("Completed", RunState.SUCCEEDED),
    ("Failed", RunState.FAILED),
    ("Terminated", RunState.CANCELED),
    ("Canceled", RunState.CANCELED),
    # Microsoft REST API guidelines / azure-core, any case
    ("NotStarted", RunState.PENDING),
    ("notstarted", RunState.PENDING),
    ("RUNNING", RunState.RUNNING),
    ("Succeeded", RunState.SUCCEEDED),
    ("succeeded", RunState.SUCCEEDED),
    ("FAILED", RunState.FAILED),
    ("canceled", RunState.CANCELED),
    # ARM
    ("Accepted", RunState.PENDING),
    ("Updating", RunState.RUNNING),
    ("Creating", RunState.RUNNING),
    ("Deleting", RunState.RUNNING),
    ("Provisioning", RunState.RUNNING),
    # seed-style and the Asynchronous Request-Reply sample
    ("pending", RunState.PENDING),
    ("queued", RunState.PENDING),
    ("processing", RunState.RUNNING),
    ("in progress", RunState.RUNNING),
    ("In progress", RunState.RUNNING),
    ("IN_PROGRESS", RunState.RUNNING),
    ("in-progress", RunState.RUNNING),
    ("InProgress", RunState.RUNNING),
    ("running", RunState.RUNNING),
    ("cancelling", RunState.RUNNING),  # asked to cancel, not there yet
    ("done", RunState.SUCCEEDED),
    ("completed", RunState.SUCCEEDED),
    ("succeeded", RunState.SUCCEEDED),
    ("success", RunState.SUCCEEDED),
    ("failed", RunState.FAILED),
    ("error", RunState.FAILED),
    ("canceled", RunState.CANCELED),
    ("cancelled", RunState.CANCELED),
    (" Succeeded ", RunState.SUCCEEDED),
]


@pytest.mark.parametrize(("word", "state"), WORDS)
def test_every_dialects_word_means_one_state(word: str, state: RunState) -> None:
    assert state_for_word(word) is state


@pytest.mark.parametrize("word", ["Reticulating", "Unknown", "ready", "", 200, None, True])
def test_anything_else_is_not_a_word(word: Any) -> None:
    assert state_for_word(word) is None


def test_the_vocabulary_is_stored_normalised() -> None:
    assert all(normalise_word(word) == word for word in STATUS_WORDS)
    assert normalise_word("In_Progress - now") == "inprogressnow"


@pytest.mark.parametrize(("word", "state"), WORDS)
def test_a_status_body_is_read_through_the_vocabulary(word: str, state: RunState) -> None:
    status = interpret_status(answer(200, {"status": word}), STATUS_URL)
    assert (status.state, status.reported_status, status.status_recognized) == (state, word, True)


@pytest.mark.parametrize("body", [{"status": "Reticulating"}, {"runtimeStatus": "Unknown"}])
def test_a_200_with_an_unknown_word_keeps_polling_and_is_never_the_result(body: Any) -> None:
    step = observe(StatusPoller(STATUS_URL), answer(200, body))
    assert isinstance(step, Wait)
    assert step.status.state is RunState.RUNNING
    assert not step.status.status_recognized
    assert not step.status.has_output


def test_an_unknown_word_is_warned_about_once_per_wait(caplog: pytest.LogCaptureFixture) -> None:
    poller = StatusPoller(STATUS_URL)
    with caplog.at_level(logging.WARNING, logger="opsclient"):
        for word in ("Reticulating", "Reticulating", "Frobnicating", "Running"):
            assert isinstance(observe(poller, answer(200, {"status": word})), Wait)
        assert isinstance(observe(poller, answer(200, {"status": "Succeeded"})), Done)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'Reticulating'" in warning.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="opsclient"):
        observe(StatusPoller(STATUS_URL), answer(200, {"status": "Reticulating"}))
    assert len(caplog.records) == 1  # a new wait warns again


def test_a_202_is_never_done_whatever_its_body_says() -> None:
    step = observe(StatusPoller(STATUS_URL), answer(202, {"status": "Succeeded"}))
    assert isinstance(step, Wait)


def test_a_redirect_is_done_even_with_an_unknown_word() -> None:
    step = observe(
        StatusPoller(STATUS_URL),
        answer(303, {"status": "Reticulating"}, headers={"Location": "42/result"}),
    )
    assert isinstance(step, Done)
    assert step.status.result_url == "http://svc.test/v1/reports/42/result"


def test_problem_json_status_is_an_http_code_not_a_word() -> None:
    # A 200 problem-shaped body: `status` 200 is no state, so it is a plain final body.
    body = {"type": "about:blank", "title": "OK", "status": 200}
    status = interpret_status(answer(200, body), STATUS_URL)
    assert (status.dialect, status.state, status.output) == (
        Dialect.GENERIC,
        RunState.SUCCEEDED,
        body,
    )
    assert interpret_status(answer(200, {"status": "200"}), STATUS_URL).dialect is Dialect.GENERIC


def test_a_list_item_without_any_state_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="expected an operation status"):
        status_from_body({"id": "x"}, STATUS_URL)


# -- ARM provisioningState and Google operations ------------------------------------------


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ({"properties": {"provisioningState": "Creating"}}, RunState.RUNNING),
        ({"properties": {"provisioningState": "Accepted"}}, RunState.PENDING),
        ({"properties": {"provisioningState": "Migrating"}}, RunState.RUNNING),  # unknown
        ({"provisioningState": "Succeeded", "name": "w"}, RunState.SUCCEEDED),
        ({"properties": {"provisioningState": "Canceled"}}, RunState.CANCELED),
    ],
)
def test_arm_provisioning_state(body: dict[str, Any], state: RunState) -> None:
    status = interpret_status(answer(200, body), STATUS_URL)
    assert (status.dialect, status.state) == (Dialect.ARM, state)
    assert status.has_output is (state is RunState.SUCCEEDED)


def test_arm_failed_provisioning_without_an_error_says_so() -> None:
    body = {"properties": {"provisioningState": "Failed"}}
    step = observe(StatusPoller(STATUS_URL), answer(200, body))
    assert isinstance(step, Stop) and isinstance(step.error, OperationFailed)
    assert "provisioningState is 'Failed'" in str(step.error)


def test_google_operation_running_reports_metadata_progress() -> None:
    body = {"name": "operations/7", "done": False, "metadata": {"progressPercent": 40}}
    status = interpret_status(answer(200, body), STATUS_URL)
    assert (status.dialect, status.state, status.id) == (
        Dialect.GOOGLE,
        RunState.RUNNING,
        "operations/7",
    )
    assert status.progress is not None and status.progress.fraction == 0.4


def test_google_operation_done_with_a_response_is_the_inline_result() -> None:
    body = {"name": "operations/7", "done": True, "response": {"rows": 3}}
    step = observe(StatusPoller(STATUS_URL), answer(200, body))
    assert isinstance(step, Done)
    assert (step.status.output, step.status.has_output) == ({"rows": 3}, True)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": 3, "message": "bad range"}, OperationFailed),
        ({"code": 1, "message": "cancelled"}, OperationCanceled),
        ({"code": "CANCELLED", "message": "cancelled"}, OperationCanceled),
    ],
)
def test_google_operation_done_with_an_error(error: dict[str, Any], expected: type) -> None:
    body = {"name": "operations/7", "done": True, "error": error}
    step = observe(StatusPoller(STATUS_URL), answer(200, body))
    assert isinstance(step, Stop) and type(step.error) is expected
    assert error["message"] in str(step.error)


def test_a_resource_with_name_and_done_is_not_taken_for_an_operation() -> None:
    todo = {"name": "buy milk", "done": False, "owner": "ana"}
    status = interpret_status(answer(200, todo), STATUS_URL)
    assert (status.dialect, status.state, status.output) == (
        Dialect.GENERIC,
        RunState.SUCCEEDED,
        todo,
    )


# -- error shapes -------------------------------------------------------------------------

SHAPES = [
    ({"error": {"code": "Conflict", "message": "widget is busy"}}, "Conflict: widget is busy"),
    (
        {
            "error": {
                "code": "DeploymentFailed",
                "message": "At least one operation failed.",
                "details": [{"code": "QuotaExceeded", "message": "4 cores max"}],
            }
        },
        "DeploymentFailed: At least one operation failed. (QuotaExceeded: 4 cores max)",
    ),
    (
        {"error": {"code": "BadArgument", "message": "bad", "innererror": {"message": "date"}}},
        "BadArgument: bad (date)",
    ),
    ({"error": "disk full"}, "disk full"),
    ({"type": "about:blank", "title": "Bad", "status": 400, "detail": "rows < 1"}, "rows < 1"),
    ({"type": "about:blank", "title": "Conflict", "status": 409}, "Conflict"),
    ({"message": "kaput", "status": "error"}, "kaput"),
    ({"errors": [{"message": "a"}, {"detail": "b"}]}, "a (b)"),
    ({"error": {"code": "OperationFailed", "message": "boom"}}, "boom"),  # a bland code is left out
    ("plain words\n", "plain words"),
]


@pytest.mark.parametrize(("body", "text"), SHAPES)
def test_every_error_shape_gives_the_servers_message(body: Any, text: str) -> None:
    details = failure_details(body)
    assert details is not None
    assert failure_message(details) == text
    assert details["message"] and details["detail"]


@pytest.mark.parametrize("body", [None, {}, {"status": "failed"}, "  ", [1, 2]])
def test_bodies_that_say_nothing_give_no_details(body: Any) -> None:
    assert failure_details(body) is None


@pytest.mark.parametrize(("body", "text"), SHAPES)
def test_an_error_answer_carries_the_servers_message(body: Any, text: str) -> None:
    error = error_for_response(answer(400, body), STATUS_URL)
    assert text in str(error)


# -- a 4xx on a status URL is the operation's failure -------------------------------------


def our_problem(status: int, state: str, detail: str) -> dict[str, Any]:
    return {
        "type": "urn:durable-ops:problem:operation-failed",
        "title": "Operation failed",
        "status": status,
        "detail": detail,
        "message": detail,
        "operationStatus": state,
        "id": "abc",
        "error": {"code": "OperationFailed", "message": detail},
    }


def test_our_monitors_422_failed_is_operation_failed_with_its_message() -> None:
    problem = answer(
        422,
        our_problem(422, "Failed", "partition 3 failed"),
        content_type="application/problem+json",
    )
    step = observe(StatusPoller(STATUS_URL), problem)
    assert isinstance(step, Stop) and isinstance(step.error, OperationFailed)
    assert str(step.error) == "operation abc failed: partition 3 failed"
    # The problem is the error, whole: its HTTP status and operationStatus included.
    assert (step.error.error["status"], step.error.error["operationStatus"]) == (422, "Failed")
    assert step.error.status is not None and step.error.status.http_status == 422


def test_our_monitors_409_canceled_is_operation_canceled() -> None:
    body = our_problem(409, "Canceled", "Operation abc was canceled before it finished.")
    step = observe(StatusPoller(STATUS_URL), answer(409, body))
    assert isinstance(step, Stop) and isinstance(step.error, OperationCanceled)
    assert "was canceled before it finished" in str(step.error)


@pytest.mark.parametrize("code", [400, 409, 418, 422])
def test_other_4xx_on_a_status_url_fail_the_operation(code: int) -> None:
    body = {"error": {"code": "JobFailed", "message": "row 7 has no date"}}
    status = interpret_status(answer(code, body), STATUS_URL)
    assert (status.state, status.http_status) == (RunState.FAILED, code)
    assert status.error is not None and status.error["message"] == "row 7 has no date"


def test_a_4xx_without_a_body_still_fails_the_operation() -> None:
    step = observe(StatusPoller(STATUS_URL), answer(400))
    assert isinstance(step, Stop) and isinstance(step.error, OperationFailed)
    assert "answered 400" in str(step.error)


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (401, AuthenticationFailed),
        (403, AuthenticationFailed),
        (404, OperationNotFound),
        (408, HTTPStatusError),
        (410, OperationGone),
        (429, HTTPStatusError),
    ],
)
def test_answers_about_the_request_stay_request_errors(code: int, error_type: type) -> None:
    with pytest.raises(error_type) as caught:
        interpret_status(answer(code, {"message": "nope", "operationStatus": "Failed"}), STATUS_URL)
    assert not isinstance(caught.value, OperationFailed)
    assert "nope" in str(caught.value)


def test_a_server_error_is_the_operations_failure_only_when_it_says_so() -> None:
    body = {"status": "Failed", "error": {"code": "Crash", "message": "worker died"}}
    assert interpret_status(answer(500, body), STATUS_URL).state is RunState.FAILED
    with pytest.raises(HTTPStatusError, match="worker died"):
        interpret_status(answer(500, {"error": body["error"]}), STATUS_URL)


def test_a_result_url_error_naming_the_end_is_the_operations_end() -> None:
    core = ClientCore("http://app.test")
    spec = RequestSpec("GET", "http://app.test/api/operations/abc/result")
    with pytest.raises(OperationFailed, match="partition 3 failed"):
        core.check_result(answer(422, our_problem(422, "Failed", "partition 3 failed")), spec)
    with pytest.raises(OperationCanceled):
        core.check_result(answer(409, our_problem(409, "Canceled", "canceled")), spec)
    with pytest.raises(OperationNotFound, match="not ready"):
        core.check_result(answer(404, {"title": "Not found", "detail": "not ready"}), spec)
    assert operation_error_for_response(answer(400, {"message": "bad accept"}), spec.url) is None


# -- relative links ------------------------------------------------------------------------


def test_a_relative_location_is_a_url_never_an_operation_id() -> None:
    core = ClientCore("http://svc.test/")
    for reference in ("/v1/reports/42", "v1/reports/42", "./v1/reports/42"):
        handle = core.as_operation(reference)
        assert (handle.poll_url, handle.id, handle.operation_url) == (STATUS_URL, None, None)
    ours = core.as_operation("/api/operations/abc")
    assert (ours.id, ours.operation_url) == ("abc", "http://svc.test/api/operations/abc")
    assert core.as_operation("abc").id == "abc"
    with pytest.raises(ConfigurationError, match="relative URL"):
        ClientCore(None).as_operation("/v1/reports/42")


def test_start_links_resolve_against_the_url_that_answered() -> None:
    # The POST was redirected to another host/path: its links are relative to the last one.
    final = "http://edge.test/v2/jobs"
    response = answer(
        202,
        {"id": "42", "status": "pending", "resultUri": "42/result"},
        headers={"Location": "/v2/jobs/42", "Azure-AsyncOperation": "ops/42?api-version=1"},
        url=final,
    )
    spec = RequestSpec("POST", "http://svc.test/api/operations/report")
    operation = ClientCore("http://svc.test").read_start(response, spec, NOW)
    assert operation.status_url == "http://edge.test/v2/jobs/42"
    assert operation.operation_url == "http://edge.test/v2/ops/42?api-version=1"
    assert operation.result_url == "http://edge.test/v2/42/result"
    assert operation.id == "42"


def test_status_links_resolve_against_the_url_that_answered() -> None:
    served_from = "http://edge.test/status/42"
    body = {"status": "Succeeded", "resourceLocation": "../things/42"}
    status = interpret_status(answer(200, body, url=served_from), STATUS_URL)
    assert status.result_url == "http://edge.test/things/42"
    poller = StatusPoller(STATUS_URL)
    step = observe(poller, answer(202, headers={"Location": "next"}, url=served_from))
    assert isinstance(step, Wait) and step.url == "http://edge.test/status/next"


def test_next_link_resolves_against_the_page_that_gave_it() -> None:
    core = ClientCore("http://app.test")
    spec = core.list_request()
    page = answer(200, {"value": [], "nextLink": "?page=2"}, url="http://app.test/api/operations")
    _, following = core.read_list_page(page, spec)
    assert following is not None and following.url == "http://app.test/api/operations?page=2"
