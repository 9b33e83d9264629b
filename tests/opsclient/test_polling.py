"""Pure unit tests of the I/O-free core: one answer in, one decision out."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
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
    OperationTimeout,
    PollingPolicy,
    Progress,
    ProtocolError,
    RetryPolicy,
    RunState,
    TransientStatusError,
)
from opsclient.dialects import resolve_url
from opsclient.polling import Done, StatusPoller, Stop, Wait, parse_retry_after
from opsclient.protocol import ClientCore, idempotency_header
from opsclient.retries import retry_decision
from tests.opsclient.scripted import EPOCH

DF = "http://app.test/runtime/webhooks/durabletask/instances/abc?taskHub=Hub&code=K"
MONITOR = "http://app.test/api/operations/abc"


def response(
    status: int,
    json: Any = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    if json is not None:
        return httpx.Response(status, json=json, headers=headers)
    return httpx.Response(status, content=content or b"", headers=headers)


def observe(poller: StatusPoller, answer: httpx.Response, now: float = 0.0) -> Any:
    return poller.observe(answer, now=now, wall_now=EPOCH)


# -- Retry-After --------------------------------------------------------------------------


def test_retry_after_delay_seconds() -> None:
    assert parse_retry_after("7", now=EPOCH) == 7.0
    assert parse_retry_after(" 0 ", now=EPOCH) == 0.0


def test_retry_after_http_date_is_measured_from_now() -> None:
    when = format_datetime(EPOCH + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(when, now=EPOCH) == 30.0


def test_retry_after_http_date_prefers_the_servers_date_over_a_skewed_local_clock() -> None:
    server_now = EPOCH + timedelta(hours=1)  # our clock is an hour behind the server's
    when = format_datetime(server_now + timedelta(seconds=12), usegmt=True)
    seconds = parse_retry_after(
        when, now=EPOCH, server_date=format_datetime(server_now, usegmt=True)
    )
    assert seconds == 12.0


def test_retry_after_in_the_past_means_now() -> None:
    when = format_datetime(EPOCH - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(when, now=EPOCH) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "Fri, 99 Foo 2026"])
def test_retry_after_missing_or_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=EPOCH) is None


def test_policy_keeps_retry_after_between_floor_and_cap() -> None:
    poller = StatusPoller(MONITOR, policy=PollingPolicy(min_interval=0.5, max_interval=20))
    running = {"id": "abc", "status": "Running"}
    assert observe(poller, response(200, running, headers={"Retry-After": "0"})).delay == 0.5
    assert observe(poller, response(200, running, headers={"Retry-After": "3600"})).delay == 20
    assert observe(poller, response(200, running, headers={"Retry-After": "4"})).delay == 4


def test_without_retry_after_the_wait_grows_to_a_ceiling() -> None:
    policy = PollingPolicy(default_interval=1, growth=2, default_max_interval=5, min_interval=0.1)
    poller = StatusPoller(MONITOR, policy=policy)
    running = response(200, {"id": "abc", "status": "Running"})
    delays = [observe(poller, running).delay for _ in range(5)]
    assert delays == [1, 2, 4, 5, 5]


def test_first_poll_honours_the_start_answers_retry_after() -> None:
    poller = StatusPoller(MONITOR, policy=PollingPolicy(max_interval=8), deadline=5)
    assert poller.first_delay(None, now=0) == 0
    assert poller.first_delay(3, now=0) == 3
    assert poller.first_delay(60, now=0) == 5  # capped, then bounded by the deadline


# -- Durable Functions built-in status -----------------------------------------------------


def test_durable_running_waits_at_location_for_retry_after() -> None:
    poller = StatusPoller(DF)
    step = observe(
        poller,
        response(
            202,
            {
                "runtimeStatus": "Running",
                "instanceId": "abc",
                "customStatus": {"done": 1, "total": 4},
            },
            headers={"Location": DF, "Retry-After": "10"},
        ),
    )
    assert isinstance(step, Wait)
    assert (step.url, step.delay) == (DF, 10)
    assert step.status.dialect is Dialect.DURABLE
    assert step.status.progress == Progress(0.25, None)
    assert step.progress_changed


@pytest.mark.parametrize("runtime_status", ["Pending", "Running", "Suspended", "ContinuedAsNew"])
def test_durable_unfinished_states_keep_polling(runtime_status: str) -> None:
    step = observe(StatusPoller(DF), response(202, {"runtimeStatus": runtime_status}))
    assert isinstance(step, Wait)


def test_durable_completed_is_done_with_inline_output() -> None:
    step = observe(
        StatusPoller(DF),
        response(200, {"runtimeStatus": "Completed", "instanceId": "abc", "output": {"rows": 9}}),
    )
    assert isinstance(step, Done)
    assert step.status.output == {"rows": 9}
    assert step.status.has_output
    assert step.status.state is RunState.SUCCEEDED


@pytest.mark.parametrize("status_code", [200, 500])
def test_durable_failed_stops_with_the_servers_message(status_code: int) -> None:
    body = {"runtimeStatus": "Failed", "instanceId": "abc", "output": "Activity 'x' failed: boom"}
    step = observe(StatusPoller(DF), response(status_code, body))
    assert isinstance(step, Stop)
    assert isinstance(step.error, OperationFailed)
    assert "boom" in str(step.error)
    assert step.error.error["detail"] == "Activity 'x' failed: boom"
    assert step.error.operation_id == "abc"


@pytest.mark.parametrize("runtime_status", ["Terminated", "Canceled"])
def test_durable_terminated_or_canceled_stops_canceled(runtime_status: str) -> None:
    body = {"runtimeStatus": runtime_status, "output": "user asked"}
    step = observe(StatusPoller(DF), response(200, body))
    assert isinstance(step, Stop)
    assert isinstance(step.error, OperationCanceled)
    assert "user asked" in str(step.error)


def test_durable_unknown_runtime_status_keeps_polling() -> None:
    # An unknown word is never a verdict: pending must not be mistaken for done.
    step = observe(StatusPoller(DF), response(200, {"runtimeStatus": "Exploded"}))
    assert isinstance(step, Wait)
    assert step.status.state is RunState.RUNNING
    assert (step.status.reported_status, step.status.status_recognized) == ("Exploded", False)


@pytest.mark.parametrize(
    ("custom_status", "expected"),
    [
        ({"fraction": 0.5, "message": "3 of 6 partitions"}, Progress(0.5, "3 of 6 partitions")),
        ({"progress": {"fraction": 0.2}}, Progress(0.2, None)),
        ({"progress": 0.7, "message": "m"}, Progress(0.7, "m")),
        ({"completed": 1, "total": 4}, Progress(0.25, None)),
        ({"percentComplete": 150}, Progress(1.0, None)),
        ({"message": "warming up"}, Progress(None, "warming up")),
        ({"stage": "copy"}, None),
        ("just text", None),
    ],
)
def test_progress_is_read_from_common_custom_status_shapes(
    custom_status: Any, expected: Progress | None
) -> None:
    body = {"runtimeStatus": "Running", "customStatus": custom_status}
    step = observe(StatusPoller(DF), response(202, body))
    assert step.status.progress == expected
    assert step.status.custom_status == custom_status
    assert step.progress_changed  # custom status counts even without progress


# -- our operations monitor ----------------------------------------------------------------


def test_monitor_running_reports_progress_only_when_it_changes() -> None:
    poller = StatusPoller(MONITOR)

    def running(fraction: float, message: str) -> httpx.Response:
        body = {
            "id": "abc",
            "status": "Running",
            "progress": {"fraction": fraction, "message": message},
        }
        return response(200, body, headers={"Retry-After": "1"})

    steps = [
        observe(poller, running(0.25, "a")),
        observe(poller, running(0.25, "a")),
        observe(poller, running(0.5, "b")),
    ]
    assert [s.progress_changed for s in steps] == [True, False, True]
    assert steps[2].status.progress == Progress(0.5, "b")
    assert all(isinstance(s, Wait) and s.url == MONITOR for s in steps)


def test_monitor_303_is_done_with_the_result_location_resolved() -> None:
    step = observe(StatusPoller(MONITOR), response(303, headers={"Location": "abc/result"}))
    assert isinstance(step, Done)
    assert step.status.result_url == "http://app.test/api/operations/abc/result"
    assert not step.progress_changed  # a bare 303 says nothing about progress


def test_a_known_operation_id_names_answers_that_do_not() -> None:
    poller = StatusPoller(MONITOR, operation_id="abc")
    step = observe(poller, response(303, headers={"Location": "abc/result"}))
    assert step.status.id == "abc"


def test_monitor_200_succeeded_gives_result_uri() -> None:
    body = {"id": "abc", "status": "Succeeded", "resultUri": "/api/operations/abc/result"}
    step = observe(StatusPoller(MONITOR), response(200, body))
    assert isinstance(step, Done)
    assert step.status.result_url == "http://app.test/api/operations/abc/result"


def test_monitor_failed_carries_the_problem_details() -> None:
    problem = {
        "type": "about:blank",
        "title": "Partition 3 failed",
        "status": 500,
        "detail": "disk full",
    }
    step = observe(
        StatusPoller(MONITOR), response(200, {"id": "abc", "status": "Failed", "error": problem})
    )
    assert isinstance(step, Stop)
    assert isinstance(step.error, OperationFailed)
    assert problem.items() <= step.error.error.items()
    assert step.error.server_message == "disk full"
    assert "disk full" in str(step.error)


def test_monitor_canceled() -> None:
    step = observe(StatusPoller(MONITOR), response(200, {"id": "abc", "status": "Canceled"}))
    assert isinstance(step, Stop)
    assert isinstance(step.error, OperationCanceled)


@pytest.mark.parametrize(
    ("status_code", "error_type"),
    [
        (404, OperationNotFound),
        (410, OperationGone),
        (401, AuthenticationFailed),
        (403, AuthenticationFailed),
        (408, HTTPStatusError),
        (500, HTTPStatusError),  # a server error is not the operation's failure
    ],
)
def test_error_statuses_stop_with_typed_errors(status_code: int, error_type: type) -> None:
    problem = {"title": "Nope", "status": status_code, "detail": "operation abc expired"}
    step = observe(StatusPoller(MONITOR), response(status_code, problem))
    assert isinstance(step, Stop)
    assert type(step.error) is error_type
    assert isinstance(step.error, HTTPStatusError)
    assert step.error.problem["detail"] == "operation abc expired"
    assert "operation abc expired" in str(step.error)


# -- generic async request-reply -----------------------------------------------------------


def test_generic_202_follows_a_relative_location() -> None:
    poller = StatusPoller("http://svc.test/jobs/1/status")
    step = observe(poller, response(202, headers={"Location": "../2/status", "Retry-After": "2"}))
    assert isinstance(step, Wait)
    assert step.url == "http://svc.test/jobs/2/status"
    assert poller.url == step.url
    assert step.status.dialect is Dialect.GENERIC


@pytest.mark.parametrize("status_code", [302, 303])
def test_generic_redirect_is_done_with_the_resource_url(status_code: int) -> None:
    step = observe(
        StatusPoller("http://svc.test/jobs/1"),
        response(status_code, headers={"Location": "/things/7"}),
    )
    assert isinstance(step, Done)
    assert step.status.result_url == "http://svc.test/things/7"


def test_generic_200_final_carries_the_body() -> None:
    step = observe(StatusPoller("http://svc.test/jobs/1"), response(200, {"answer": 42}))
    assert isinstance(step, Done)
    assert step.status.output == {"answer": 42}


def test_generic_201_points_at_the_created_resource() -> None:
    step = observe(
        StatusPoller("http://svc.test/jobs/1"),
        response(201, {"id": 7}, headers={"Location": "/things/7"}),
    )
    assert isinstance(step, Done)
    assert step.status.result_url == "http://svc.test/things/7"


def test_generic_204_final_has_no_output() -> None:
    step = observe(StatusPoller("http://svc.test/jobs/1"), response(204))
    assert isinstance(step, Done)
    assert step.status.output is None


def test_redirect_without_location_is_a_protocol_error() -> None:
    step = observe(StatusPoller("http://svc.test/jobs/1"), response(302))
    assert isinstance(step, Stop)
    assert isinstance(step.error, ProtocolError)
    assert "Location" in str(step.error)


def test_unsupported_status_is_a_protocol_error() -> None:
    step = observe(
        StatusPoller("http://svc.test/jobs/1"), response(301, headers={"Location": "/x"})
    )
    assert isinstance(step, Stop)
    assert isinstance(step.error, ProtocolError)


@pytest.mark.parametrize("body", [b"{not json", b'{"status": "Running"', b"\xff\xfe"])
def test_malformed_json_is_a_clear_protocol_error(body: bytes) -> None:
    answer = response(200, content=body, headers={"Content-Type": "application/json"})
    step = observe(StatusPoller(MONITOR), answer)
    assert isinstance(step, Stop)
    assert isinstance(step.error, ProtocolError)
    assert "malformed JSON" in str(step.error)
    assert MONITOR in str(step.error)


def test_messages_do_not_leak_the_key_in_a_status_url() -> None:
    secret_url = "http://app.test/runtime/webhooks/durabletask/instances/abc?taskHub=H&code=S3CRET"
    answer = response(200, content=b"{oops", headers={"Content-Type": "application/json"})
    step = observe(StatusPoller(secret_url), answer)
    assert isinstance(step, Stop)
    assert "S3CRET" not in str(step.error)
    assert "code=REDACTED" in str(step.error)
    assert isinstance(step.error, ProtocolError) and step.error.url == secret_url


# -- deadline ------------------------------------------------------------------------------


def test_deadline_shortens_the_last_wait_then_times_out() -> None:
    poller = StatusPoller(MONITOR, deadline=10)
    running = response(200, {"id": "abc", "status": "Running"}, headers={"Retry-After": "8"})
    first = observe(poller, running, now=0)
    second = observe(poller, running, now=8)
    third = observe(poller, running, now=10)
    assert isinstance(first, Wait) and first.delay == 8
    assert isinstance(second, Wait) and second.delay == 2
    assert isinstance(third, Stop)
    assert isinstance(third.error, OperationTimeout)
    assert isinstance(third.error, TimeoutError)
    assert third.error.status is not None and third.error.status.state is RunState.RUNNING


# -- small pieces of protocol ---------------------------------------------------------------


def test_resolve_url() -> None:
    assert resolve_url("http://a.test/x/y?q=1", "/z") == "http://a.test/z"
    assert resolve_url("http://a.test/x/y", "http://b.test/w") == "http://b.test/w"


def test_idempotency_key_is_sent_verbatim_and_checked() -> None:
    assert idempotency_header("8e03978e-40d5-43e8-bc93-6894a57f9324") == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324"
    )
    for bad in ("", "has space", "x" * 256, "caf\u00e9"):
        with pytest.raises(ConfigurationError):
            idempotency_header(bad)


def test_callback_url_travels_in_the_body() -> None:
    spec = ClientCore("http://app.test").start_request(
        "report", {"rows": 1}, idempotency_key="k", callback_url="https://hooks.test/x"
    )
    assert spec.json_body == {"rows": 1, "callbackUrl": "https://hooks.test/x"}
    with pytest.raises(ConfigurationError):
        ClientCore("http://app.test").start_request("report", [1], callback_url="https://h.test")


def _transient(code: int, retry_after: float | None) -> TransientStatusError:
    error = TransientStatusError("busy", status_code=code)
    error.retry_after = retry_after
    return error


def test_retry_decision_prefers_retry_after_on_429_and_503_within_a_cap() -> None:
    policy = RetryPolicy(max_retry_after=30)
    assert retry_decision(_transient(429, 7), retry_safe=True, policy=policy) == 7
    assert retry_decision(_transient(429, 0), retry_safe=True, policy=policy) == 0.5
    assert retry_decision(_transient(503, 120), retry_safe=True, policy=policy) == 30
    assert retry_decision(_transient(502, 7), retry_safe=True, policy=policy) is True
    assert retry_decision(_transient(429, None), retry_safe=True, policy=policy) is True
    assert retry_decision(_transient(429, 7), retry_safe=False, policy=policy) is False
    assert retry_decision(ValueError("bug"), retry_safe=True, policy=policy) is False


def test_retries_inside_a_wait_are_bounded_by_what_is_left_of_it() -> None:
    policy = RetryPolicy(timeout=60)
    assert policy.stamina_options()["timeout"] == 60
    assert policy.stamina_options(budget=10)["timeout"] == 10
    assert policy.stamina_options(budget=600)["timeout"] == 60
    assert policy.stamina_options(budget=0.01)["timeout"] == 1.0  # the last poll's fair try


def test_credentials_only_go_to_the_apis_own_origin() -> None:
    core = ClientCore("https://app.test", function_key="KEY")
    assert core.credential_headers("https://app.test/api/x", "TOK") == {
        "x-functions-key": "KEY",
        "authorization": "Bearer TOK",
    }
    assert core.credential_headers("https://app.test:443/api/x", None) == {"x-functions-key": "KEY"}
    assert core.credential_headers("https://blob.test/r?sig=1", "TOK") == {}
    # A URL that already carries its own key keeps it and gets no header on top.
    assert core.credential_headers("https://app.test/x?code=OTHER", None) == {}


def test_credentials_without_a_base_url_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="needs base_url"):
        ClientCore(None, function_key="KEY")
    with pytest.raises(ConfigurationError, match="needs base_url"):
        ClientCore(None, has_token=True)
    assert ClientCore(None).credential_headers("https://any.test/x", None) == {}


def test_operation_references() -> None:
    core = ClientCore("http://app.test/")
    by_id = core.as_operation("abc")
    assert by_id.poll_url == "http://app.test/api/operations/abc"
    assert by_id.result_url == "http://app.test/api/operations/abc/result"
    by_url = core.as_operation(DF)
    assert (by_url.poll_url, by_url.id, by_url.operation_url) == (DF, "abc", None)
    monitor = core.as_operation("http://other.test/api/operations/xyz")
    assert (monitor.id, monitor.operation_url) == ("xyz", "http://other.test/api/operations/xyz")
    assert monitor.result_url == "http://other.test/api/operations/xyz/result"
