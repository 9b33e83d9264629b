"""Scripted exchanges (httpx.MockTransport), each run through the sync AND the async client.

The `harness` fixture is parametrised, so every test here proves both clients give the
same answer on the same exchange; `test_sync_and_async_send_the_same_requests` also
compares the requests they send.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsclient import (
    AuthenticationFailed,
    ConnectionFailed,
    OperationAlreadyFinished,
    OperationCanceled,
    OperationFailed,
    OperationNotFound,
    OperationStatus,
    OperationTimeout,
    PollingPolicy,
    Progress,
    ProtocolError,
    RetryPolicy,
    RunState,
    TransientStatusError,
)
from tests.opsclient.scripted import BASE, Harness, Script, reply

DURABLE = f"{BASE}/runtime/webhooks/durabletask/instances/abc"
DURABLE_STATUS = f"{DURABLE}?taskHub=Hub&connection=Storage&code=SYS"
MONITOR_PATH = "/api/operations/abc"
RESULT_PATH = "/api/operations/abc/result"


def started(*, retry_after: str = "1", ours: bool = True) -> httpx.Response:
    """The 202 of our start endpoint (or, `ours=False`, a bare Durable check-status)."""
    body: dict[str, Any] = {
        "id": "abc",
        "statusQueryGetUri": DURABLE_STATUS,
        "sendEventPostUri": f"{DURABLE}/raiseEvent/{{eventName}}?taskHub=Hub&code=SYS",
        "terminatePostUri": f"{DURABLE}/terminate?reason={{text}}&taskHub=Hub&code=SYS",
        "purgeHistoryDeleteUri": f"{DURABLE}?taskHub=Hub&code=SYS",
    }
    if ours:
        body |= {"operationUri": f"{BASE}{MONITOR_PATH}", "resultUri": f"{BASE}{RESULT_PATH}"}
    return reply(202, body, headers={"Location": DURABLE_STATUS, "Retry-After": retry_after})


def running(
    fraction: float | None = None, message: str | None = None, **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {"id": "abc", "kind": "report", "status": "Running"}
    if fraction is not None or message is not None:
        body["progress"] = {"fraction": fraction, "message": message}
    return reply(200, body, headers={k.replace("_", "-"): v for k, v in headers.items()})


def durable(status: str, code: int = 202, **fields: Any) -> httpx.Response:
    body = {"name": "report", "instanceId": "abc", "runtimeStatus": status, **fields}
    headers = {"Location": DURABLE_STATUS, "Retry-After": "2"} if code == 202 else {}
    return reply(code, body, headers=headers)


# -- the happy paths, in each dialect ------------------------------------------------------


def test_run_polls_our_monitor_to_a_result(harness: Harness) -> None:
    clock = harness.clock

    def date_in_three_seconds(_request: httpx.Request) -> httpx.Response:
        when = format_datetime(clock.wall() + timedelta(seconds=3), usegmt=True)
        return running(0.5, "partition 2 of 4", Retry_After=when)

    script = Script(
        ("POST", "/api/operations/report", started(retry_after="1")),
        ("GET", MONITOR_PATH, running(0.25, "partition 1 of 4", Retry_After="2")),
        ("GET", MONITOR_PATH, date_in_three_seconds),
        ("GET", MONITOR_PATH, running(0.5, "partition 2 of 4")),
        ("GET", MONITOR_PATH, reply(303, headers={"Location": "abc/result"})),
        ("GET", RESULT_PATH, reply(200, {"rows": 1000})),
    )
    seen: list[Progress | None] = []
    outcome = harness.call(
        script,
        "run",
        "report",
        {"rows": 1000, "partitions": 4},
        on_progress=lambda status: seen.append(status.progress),
    )
    assert outcome == {"rows": 1000}
    assert script.exhausted
    # Retry-After from the 202, then seconds, then an HTTP-date, then the default.
    assert clock.sleeps == [1, 2, 3, 1]
    assert seen == [Progress(0.25, "partition 1 of 4"), Progress(0.5, "partition 2 of 4")]
    post = script.requests[0]
    assert json.loads(post.content) == {"rows": 1000, "partitions": 4}
    assert post.headers["content-type"] == "application/json"
    assert uuid.UUID(post.headers["idempotency-key"])  # generated when not given


def test_durable_status_url_waits_for_inline_output(harness: Harness) -> None:
    script = Script(
        ("GET", DURABLE_STATUS, durable("Pending")),
        ("GET", DURABLE_STATUS, durable("Running", customStatus={"message": "halfway"})),
        ("GET", DURABLE_STATUS, durable("Completed", 200, output={"total": 5})),
    )
    final = harness.call(script, "wait", DURABLE_STATUS)
    assert isinstance(final, OperationStatus)
    assert (final.state, final.output, final.id) == (RunState.SUCCEEDED, {"total": 5}, "abc")
    assert harness.call(Script(), "result", final) == {"total": 5}  # inline: no request
    assert harness.clock.sleeps == [2, 2]


def test_start_with_only_durable_urls_polls_the_durable_status(harness: Harness) -> None:
    script = Script(
        ("POST", "/api/operations/report", started(ours=False, retry_after="0")),
        ("GET", DURABLE_STATUS, durable("Completed", 200, output=[1, 2])),
    )
    assert harness.call(script, "run", "report", {}) == [1, 2]
    assert harness.clock.sleeps == [0.5]  # Retry-After: 0 raised to the floor


def test_start_finds_the_monitor_in_operation_location(harness: Harness) -> None:
    answer = reply(
        202,
        {"id": "abc"},
        headers={"Location": DURABLE_STATUS, "Operation-Location": MONITOR_PATH},
    )
    script = Script(("POST", "/api/operations/report", answer))
    operation = harness.call(script, "start", "report", {})
    assert operation.poll_url == f"{BASE}{MONITOR_PATH}"
    assert operation.status_url == DURABLE_STATUS
    assert operation.retry_after is None


def test_generic_pattern_with_relative_location_and_302(harness: Harness) -> None:
    script = Script(
        ("GET", "/jobs/1", reply(202, headers={"Location": "/jobs/1/status"})),
        ("GET", "/jobs/1/status", reply(202, {"percentComplete": 40})),
        ("GET", "/jobs/1/status", reply(302, headers={"Location": "../../things/7"})),
    )
    seen: list[Progress | None] = []
    final = harness.call(
        script, "wait", "http://svc.test/jobs/1", on_progress=lambda s: seen.append(s.progress)
    )
    assert final.result_url == "http://svc.test/things/7"
    assert seen == [Progress(0.4, None)]
    assert harness.clock.sleeps == [1, 1.5]  # no Retry-After: the default, growing
    fetch = Script(
        (
            "GET",
            "/things/7",
            reply(200, content=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}),
        )
    )
    assert harness.call(fetch, "result", final) == "a,b\n1,2\n"


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        (reply(200, {"answer": 42}), {"answer": 42}),
        (
            reply(200, content=b"\x00\x01", headers={"Content-Type": "application/octet-stream"}),
            b"\x00\x01",
        ),
        (reply(204), None),
    ],
)
def test_generic_final_answers(harness: Harness, final: httpx.Response, expected: Any) -> None:
    script = Script(("GET", "/jobs/1", reply(202)), ("GET", "/jobs/1", final))
    status = harness.call(script, "wait", "http://svc.test/jobs/1")
    assert status.output == expected


# -- failures the server reports -----------------------------------------------------------


def test_failed_operation_raises_with_the_servers_problem_details(harness: Harness) -> None:
    problem = {
        "type": "about:blank",
        "title": "Report failed",
        "status": 500,
        "detail": "partition 3: disk full",
    }
    script = Script(
        ("POST", "/api/operations/report", started(retry_after="0")),
        ("GET", MONITOR_PATH, reply(200, {"id": "abc", "status": "Failed", "error": problem})),
    )
    with pytest.raises(OperationFailed) as caught:
        harness.call(script, "run", "report", {})
    assert problem.items() <= caught.value.error.items()  # plus `message` filled in
    assert "partition 3: disk full" in str(caught.value)
    assert caught.value.operation_id == "abc"


def test_get_returns_a_failed_status_and_result_raises_for_it(harness: Harness) -> None:
    problem = {"title": "Report failed", "status": 500, "detail": "disk full"}
    script = Script(
        ("GET", MONITOR_PATH, reply(200, {"id": "abc", "status": "Failed", "error": problem}))
    )
    status = harness.call(script, "get", "abc")
    assert (status.state, status.error) == (RunState.FAILED, {**problem, "message": "disk full"})
    with pytest.raises(OperationFailed, match="disk full"):
        harness.call(Script(), "result", status)  # decided from the status: no request


def test_canceled_operation_raises(harness: Harness) -> None:
    script = Script(("GET", MONITOR_PATH, reply(200, {"id": "abc", "status": "Canceled"})))
    with pytest.raises(OperationCanceled):
        harness.call(script, "wait", "abc")


def test_durable_terminated_raises_canceled(harness: Harness) -> None:
    script = Script(("GET", DURABLE_STATUS, durable("Terminated", 200, output="operator")))
    with pytest.raises(OperationCanceled, match="terminated: operator"):
        harness.call(script, "wait", DURABLE_STATUS)


def test_result_not_ready_is_not_found(harness: Harness) -> None:
    problem = {"title": "Not ready", "status": 404, "detail": "operation abc is still Running"}
    script = Script(
        ("GET", RESULT_PATH, reply(404, problem, headers={"Link": f"<{MONITOR_PATH}>"}))
    )
    with pytest.raises(OperationNotFound, match="still Running"):
        harness.call(script, "result", "abc")


# -- transient failures and retries -------------------------------------------------------


def test_429_and_503_are_retried_then_succeed(harness: Harness) -> None:
    script = Script(
        ("GET", MONITOR_PATH, reply(429, headers={"Retry-After": "3"})),
        ("GET", MONITOR_PATH, reply(503, {"title": "busy"})),
        ("GET", MONITOR_PATH, reply(502)),
        ("GET", MONITOR_PATH, reply(504)),
        (
            "GET",
            MONITOR_PATH,
            reply(200, {"id": "abc", "status": "Succeeded", "resultUri": RESULT_PATH}),
        ),
    )
    final = harness.call(script, "get", "abc")
    assert final.state is RunState.SUCCEEDED
    assert script.exhausted


def test_transient_statuses_give_up_after_the_attempts_allowed(harness: Harness) -> None:
    script = Script(*[("GET", MONITOR_PATH, reply(503, headers={"Retry-After": "1"}))] * 3)
    with pytest.raises(TransientStatusError) as caught:
        harness.call(script, "get", "abc", client_options={"retry": RetryPolicy(attempts=3)})
    assert caught.value.status_code == 503
    assert caught.value.retry_after == 1
    assert len(script.requests) == 3


def test_start_is_retried_with_the_same_idempotency_key(harness: Harness) -> None:
    script = Script(
        ("POST", "/api/operations/report", reply(503)),
        ("POST", "/api/operations/report", httpx.ConnectError("connection reset")),
        ("POST", "/api/operations/report", started()),
    )
    operation = harness.call(script, "start", "report", {"rows": 1}, idempotency_key="key-1")
    assert operation.id == "abc"
    keys = {r.headers["idempotency-key"] for r in script.requests}
    bodies = {r.content for r in script.requests}
    assert keys == {"key-1"}
    assert len(bodies) == 1


def test_generated_idempotency_keys_differ_per_start(harness: Harness) -> None:
    script = Script(
        ("POST", "/api/operations/report", started()), ("POST", "/api/operations/report", started())
    )
    harness.call(script, "start", "report", {})
    harness.call(script, "start", "report", {})
    first, second = (r.headers["idempotency-key"] for r in script.requests)
    assert first != second


def test_a_post_without_idempotency_key_is_never_retried(harness: Harness) -> None:
    script = Script(("POST", f"{DURABLE}/raiseEvent/approve", reply(503)))
    with pytest.raises(TransientStatusError):
        harness.call(script, "raise_event", DURABLE_STATUS, "approve", {"approved": True})
    dropped = Script(("POST", f"{DURABLE}/raiseEvent/approve", httpx.ConnectError("refused")))
    with pytest.raises(ConnectionFailed, match="refused"):
        harness.call(dropped, "raise_event", DURABLE_STATUS, "approve", {"approved": True})
    assert len(script.requests) == len(dropped.requests) == 1


def test_connection_errors_are_retried(harness: Harness) -> None:
    script = Script(
        ("GET", MONITOR_PATH, httpx.ConnectError("refused")),
        ("GET", MONITOR_PATH, httpx.ReadTimeout("slow")),
        ("GET", MONITOR_PATH, httpx.RemoteProtocolError("peer closed")),
        ("GET", MONITOR_PATH, running()),
    )
    assert harness.call(script, "get", "abc").state is RunState.RUNNING


def test_connection_errors_give_up_with_a_clear_error(harness: Harness) -> None:
    script = Script(*[("GET", MONITOR_PATH, httpx.ConnectError("Connection refused"))] * 2)
    with pytest.raises(ConnectionFailed) as caught:
        harness.call(script, "get", "abc", client_options={"retry": RetryPolicy(attempts=2)})
    assert "Connection refused" in str(caught.value)
    assert f"GET {BASE}{MONITOR_PATH}" in str(caught.value)
    assert not isinstance(caught.value.__cause__, type(None))  # the httpx error is chained


# -- time limits ---------------------------------------------------------------------------


def test_total_timeout(harness: Harness) -> None:
    script = Script(*[("GET", MONITOR_PATH, running(Retry_After="4"))] * 10)
    with pytest.raises(OperationTimeout) as caught:
        harness.call(script, "wait", "abc", timeout=10)
    assert harness.clock.sleeps == [4, 4, 2]  # the last wait is cut to the deadline
    assert len(script.requests) == 4
    assert caught.value.status is not None
    assert caught.value.status.state is RunState.RUNNING


def test_a_server_that_never_finishes_is_polled_less_and_less(harness: Harness) -> None:
    script = Script(*[("GET", MONITOR_PATH, running())] * 40)
    with pytest.raises(OperationTimeout):
        harness.call(script, "wait", "abc", timeout=120)
    sleeps = harness.clock.sleeps
    assert sleeps[:3] == [1, 1.5, 2.25]
    assert sleeps == sorted(sleeps[:-1]) + sleeps[-1:]
    assert max(sleeps) == PollingPolicy().default_max_interval
    assert sum(sleeps) == pytest.approx(120)


def test_polls_failing_at_the_deadline_end_as_a_timeout(harness: Harness) -> None:
    script = Script(
        ("GET", MONITOR_PATH, running(Retry_After="4")),
        *[("GET", MONITOR_PATH, httpx.ConnectError("refused"))] * 5,
    )
    with pytest.raises(OperationTimeout) as caught:
        harness.call(script, "wait", "abc", timeout=4)
    assert isinstance(caught.value.__cause__, ConnectionFailed)
    assert caught.value.status is not None and caught.value.status.state is RunState.RUNNING


def test_polls_failing_before_the_deadline_are_connection_errors(harness: Harness) -> None:
    script = Script(*[("GET", MONITOR_PATH, httpx.ConnectError("refused"))] * 5)
    with pytest.raises(ConnectionFailed):
        harness.call(script, "wait", "abc", timeout=60)


# -- malformed answers ---------------------------------------------------------------------


def test_malformed_json_from_the_start_endpoint(harness: Harness) -> None:
    broken = reply(202, content=b'{"id": "abc", ', headers={"Content-Type": "application/json"})
    script = Script(("POST", "/api/operations/report", broken))
    with pytest.raises(ProtocolError, match="malformed JSON") as caught:
        harness.call(script, "start", "report", {})
    assert '{"id": "abc", ' in str(caught.value)


def test_malformed_json_while_polling(harness: Harness) -> None:
    broken = reply(
        200, content=b"<html>gateway</html>", headers={"Content-Type": "application/json"}
    )
    script = Script(("GET", MONITOR_PATH, running()), ("GET", MONITOR_PATH, broken))
    with pytest.raises(ProtocolError, match="malformed JSON"):
        harness.call(script, "wait", "abc")


def test_start_answer_without_anything_to_poll(harness: Harness) -> None:
    script = Script(("POST", "/api/operations/report", reply(202, {"id": "abc"})))
    with pytest.raises(ProtocolError, match="nothing to poll"):
        harness.call(script, "start", "report", {})


def test_bad_input_to_start_carries_the_problem(harness: Harness) -> None:
    problem = {
        "type": "https://ops.test/problems/validation",
        "title": "Invalid input",
        "status": 400,
        "detail": "rows must be >= 1",
        "errors": [{"field": "rows", "message": "must be >= 1"}],
    }
    script = Script(("POST", "/api/operations/report", reply(400, problem)))
    with pytest.raises(Exception, match="rows must be >= 1") as caught:
        harness.call(script, "start", "report", {"rows": 0})
    assert caught.value.problem == problem  # type: ignore[attr-defined]


# -- authentication ------------------------------------------------------------------------


class Tokens:
    """A token provider handing out tok-1, tok-2, ... and counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"tok-{self.calls}"


def test_401_refreshes_the_token_once(harness: Harness) -> None:
    tokens = Tokens()
    script = Script(("GET", MONITOR_PATH, reply(401)), ("GET", MONITOR_PATH, running()))
    harness.call(script, "get", "abc", client_options={"token_provider": tokens})
    assert [r.headers["authorization"] for r in script.requests] == ["Bearer tok-1", "Bearer tok-2"]
    assert tokens.calls == 2


def test_a_second_401_is_an_authentication_error(harness: Harness) -> None:
    tokens = Tokens()
    script = Script(("GET", MONITOR_PATH, reply(401)), ("GET", MONITOR_PATH, reply(401)))
    with pytest.raises(AuthenticationFailed):
        harness.call(script, "get", "abc", client_options={"token_provider": tokens})
    assert tokens.calls == 2


def test_function_key_goes_to_the_app_only(harness: Harness) -> None:
    blob = "https://store.test/results/abc.json?sig=SAS"
    script = Script(
        ("GET", RESULT_PATH, reply(307, headers={"Location": blob})),
        ("GET", blob, reply(200, {"ok": True})),
    )
    options = {"function_key": "FKEY", "token_provider": Tokens()}
    assert harness.call(script, "result", "abc", client_options=options) == {"ok": True}
    to_app, to_blob = script.requests
    assert to_app.headers["x-functions-key"] == "FKEY"
    assert to_app.headers["authorization"] == "Bearer tok-1"
    assert "x-functions-key" not in to_blob.headers
    assert "authorization" not in to_blob.headers


def test_status_urls_keep_their_own_code(harness: Harness) -> None:
    script = Script(("GET", DURABLE_STATUS, durable("Running")))
    harness.call(script, "get", DURABLE_STATUS, client_options={"function_key": "FKEY"})
    assert "x-functions-key" not in script.requests[0].headers
    assert script.requests[0].url.params["code"] == "SYS"


# -- control: cancel, events, list, download -----------------------------------------------


def test_cancel_deletes_our_operation(harness: Harness) -> None:
    script = Script(("DELETE", MONITOR_PATH, reply(202)))
    harness.call(script, "cancel", "abc")
    late = Script(
        ("DELETE", MONITOR_PATH, reply(409, {"title": "Conflict", "detail": "already Succeeded"}))
    )
    with pytest.raises(OperationAlreadyFinished, match="already Succeeded"):
        harness.call(late, "cancel", "abc")


def test_cancel_terminates_a_durable_instance(harness: Harness) -> None:
    start = Script(("POST", "/api/operations/report", started(ours=False)))
    operation = harness.call(start, "start", "report", {})
    script = Script(("POST", f"{DURABLE}/terminate", reply(202)))
    harness.call(script, "cancel", operation, reason="no longer needed")
    sent = script.requests[0].url
    assert sent.params["reason"] == "no longer needed"
    assert sent.params["code"] == "SYS"
    gone = Script(("POST", f"{DURABLE}/terminate", reply(410)))
    with pytest.raises(OperationAlreadyFinished):
        harness.call(gone, "cancel", DURABLE_STATUS)


def test_raise_event_posts_json_to_the_event_url(harness: Harness) -> None:
    start = Script(("POST", "/api/operations/approval", started()))
    operation = harness.call(start, "start", "approval", {"subject": "x", "timeoutSeconds": 60})
    script = Script(("POST", f"{DURABLE}/raiseEvent/approve", reply(202)))
    harness.call(script, "raise_event", operation, "approve", {"approved": True, "by": "me"})
    sent = script.requests[0]
    assert json.loads(sent.content) == {"approved": True, "by": "me"}
    assert sent.url.params["taskHub"] == "Hub"


def test_list_follows_continuation(harness: Harness) -> None:
    page1 = {
        "value": [{"id": "a", "kind": "report", "status": "Running"}],
        "nextLink": "/api/operations?status=Running&continuationToken=t2",
    }
    page2 = {"value": [{"id": "b", "kind": "report", "status": "Succeeded"}]}
    page3 = [{"id": "c", "status": "Failed", "error": {"title": "x"}}]
    script = Script(
        ("GET", "/api/operations", reply(200, page1)),
        ("GET", "/api/operations", reply(200, page2, headers={"x-ms-continuation-token": "t3"})),
        ("GET", "/api/operations", reply(200, page3)),
    )
    items = harness.call(script, "list", status="Running", top=1)
    assert [(s.id, s.state) for s in items] == [
        ("a", RunState.RUNNING),
        ("b", RunState.SUCCEEDED),
        ("c", RunState.FAILED),
    ]
    first, second, third = script.requests
    assert dict(first.url.params) == {"status": "Running", "top": "1"}
    assert second.url.params["continuationToken"] == "t2"
    assert third.headers["x-ms-continuation-token"] == "t3"
    assert items[0].url == f"{BASE}/api/operations/a"


def test_download_streams_the_result_to_a_file(harness: Harness, tmp_path: Path) -> None:
    payload = b"x" * 200_000
    script = Script(
        ("GET", RESULT_PATH, reply(200, content=payload, headers={"Content-Type": "text/csv"}))
    )
    target = harness.call(script, "download", "abc", tmp_path / "report.csv")
    assert target.read_bytes() == payload
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_a_failed_download_leaves_no_file(harness: Harness, tmp_path: Path) -> None:
    script = Script(("GET", RESULT_PATH, reply(410, {"title": "Gone", "detail": "expired"})))
    with pytest.raises(Exception, match="expired"):
        harness.call(script, "download", "abc", tmp_path / "report.csv")
    assert list(tmp_path.iterdir()) == []


def test_download_of_an_inline_durable_output(harness: Harness, tmp_path: Path) -> None:
    script = Script(("GET", DURABLE_STATUS, durable("Completed", 200, output={"n": 1})))
    target = harness.call(script, "download", DURABLE_STATUS, tmp_path / "out.json")
    assert json.loads(target.read_text()) == {"n": 1}


# -- sync and async, side by side ----------------------------------------------------------


def _full_exchange() -> Script:
    return Script(
        ("POST", "/api/operations/report", started(retry_after="2")),
        ("GET", MONITOR_PATH, reply(503, headers={"Retry-After": "1"})),
        ("GET", MONITOR_PATH, running(0.5, "half", Retry_After="3")),
        ("GET", MONITOR_PATH, httpx.ConnectError("blip")),
        ("GET", MONITOR_PATH, reply(303, headers={"Location": RESULT_PATH})),
        ("GET", RESULT_PATH, reply(200, {"rows": 10})),
    )


def test_sync_and_async_send_the_same_requests() -> None:
    outcomes = {}
    for flavor in ("sync", "async"):
        harness = Harness(flavor)
        script = _full_exchange()
        progress: list[Any] = []
        result = harness.call(
            script, "run", "report", {"rows": 10}, idempotency_key="k", on_progress=progress.append
        )
        outcomes[flavor] = (
            result,
            script.trace(),
            [dict(r.headers) for r in script.requests],
            [r.content for r in script.requests],
            harness.clock.sleeps,
            progress,
        )
    sync_outcome, async_outcome = outcomes["sync"], outcomes["async"]
    assert sync_outcome == async_outcome
    assert sync_outcome[0] == {"rows": 10}
