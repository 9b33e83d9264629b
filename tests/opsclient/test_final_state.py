"""The pure parts: final-state rules, reading an initial answer, tokens, the result cache."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from opsclient import (
    DEFAULT_WAIT_TIMEOUT,
    AsyncOperationsClient,
    ConfigurationError,
    Dialect,
    FinalState,
    FinalStateVia,
    Operation,
    OperationNotFound,
    OperationsClient,
    OperationStatus,
    OperationTimeout,
    PollingPolicy,
    RunState,
)
from opsclient.continuation import decode_operation, encode_operation
from opsclient.final_state import apply_final_state, final_get_url, operation_from_response
from opsclient.protocol import RequestSpec
from opsclient.result_fetching import MissingResultGrace, ResultCache
from tests.opsclient.scripted import FakeClock

NOW = datetime(2026, 1, 1, tzinfo=UTC)
API = "https://api.test"
STATUS_URL = f"{API}/operations/1"


def succeeded(**body: Any) -> OperationStatus:
    return OperationStatus(
        state=RunState.SUCCEEDED,
        dialect=Dialect.MONITOR,
        url=STATUS_URL,
        payload={"status": "Succeeded", **body},
    )


# -- azure-core's get_final_get_url, rule by rule ----------------------------------------


@pytest.mark.parametrize(
    ("method", "location", "via", "body", "expected"),
    [
        ("PUT", None, None, {}, f"{API}/things/a"),
        ("PATCH", None, None, {}, f"{API}/things/a"),
        ("PUT", f"{API}/loc", None, {}, f"{API}/things/a"),
        ("POST", f"{API}/loc", None, {}, f"{API}/loc"),
        ("POST", None, None, {}, None),
        ("DELETE", f"{API}/loc", None, {}, None),
        # resourceLocation (resolved against the status URL) before method rules
        ("POST", f"{API}/loc", None, {"resourceLocation": "/res/1"}, f"{API}/res/1"),
        ("PUT", None, None, {"resourceLocation": f"{API}/res/2"}, f"{API}/res/2"),
        # final-state-via location wins over everything when there is a Location
        ("PUT", f"{API}/loc", "location", {"resourceLocation": "/res"}, f"{API}/loc"),
        ("PUT", None, "location", {}, f"{API}/things/a"),
        # azure-async-operation / operation-location on a POST: the status body is final
        ("POST", f"{API}/loc", "azure-async-operation", {"resourceLocation": "/r"}, None),
        ("POST", f"{API}/loc", "operation-location", {}, None),
        ("PUT", f"{API}/loc", "operation-location", {}, f"{API}/things/a"),
        # original-uri: the request URL, except for a DELETE
        ("POST", f"{API}/loc", "original-uri", {"resourceLocation": "/r"}, f"{API}/things/a"),
        ("DELETE", None, "original-uri", {}, None),
    ],
)
def test_final_get_url(
    method: str, location: str | None, via: str | None, body: dict[str, Any], expected: str | None
) -> None:
    state = FinalState(method, f"{API}/things/a", location, FinalStateVia.parse(via))
    assert final_get_url(state, succeeded(**body)) == expected


def test_apply_final_state_makes_the_status_body_the_result_when_there_is_no_get() -> None:
    state = FinalState("POST", f"{API}/things/a", None, None)
    final = apply_final_state(succeeded(properties={"x": 1}), state)
    assert final.has_output and final.output["properties"] == {"x": 1}
    assert final.result_url is None
    explicit = apply_final_state(succeeded(), state, final_url=f"{API}/mine")
    assert explicit.result_url == f"{API}/mine"
    unchanged = succeeded(resourceLocation="/r")
    assert apply_final_state(unchanged, None) is unchanged


def test_an_unknown_final_state_via_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="final_state_via must be one of"):
        FinalStateVia.parse("somewhere")
    assert FinalStateVia.parse("Azure-Async-Operation") is FinalStateVia.AZURE_ASYNC_OPERATION


# -- reading the initial answer ----------------------------------------------------------


def answer(
    status: int, headers: dict[str, str] | None = None, json: Any = None, method: str = "POST"
) -> httpx.Response:
    request = httpx.Request(method, f"{API}/things/a/act")
    return httpx.Response(status, headers=headers, json=json, request=request)


@pytest.mark.parametrize(
    ("headers", "body", "polled"),
    [
        (
            {"Operation-Location": "/ol", "Azure-AsyncOperation": "/aao", "Location": "/l"},
            None,
            f"{API}/ol",
        ),
        ({"Azure-AsyncOperation": "/aao", "Location": "/l"}, None, f"{API}/aao"),
        ({"Location": "l"}, {"statusQueryGetUri": "/sq"}, f"{API}/things/a/l"),
        ({}, {"statusQueryGetUri": f"{API}/sq?code=K", "id": "i"}, f"{API}/sq?code=K"),
    ],
)
def test_where_a_202_is_polled(headers: dict[str, str], body: Any, polled: str) -> None:
    operation = operation_from_response(answer(202, headers, body), now=NOW)
    assert operation is not None and operation.poll_url == polled


def test_rules_only_for_a_status_monitor_header() -> None:
    monitored = operation_from_response(
        answer(202, {"Operation-Location": "/ol", "Location": "/l"}), now=NOW
    )
    assert monitored is not None
    assert monitored.final_state == FinalState("POST", f"{API}/things/a/act", f"{API}/l", None)
    located = operation_from_response(answer(202, {"Location": "/l"}), now=NOW)
    assert located is not None and located.final_state is None


@pytest.mark.parametrize(
    "response",
    [
        answer(200, json={"done": True}),
        answer(201, {"Location": "/created"}, {"id": "x"}),
        answer(202, json={"queued": True}),  # nothing to poll: the answer is the result
        answer(204),
    ],
)
def test_answers_that_are_the_result_themselves(response: httpx.Response) -> None:
    assert operation_from_response(response, now=NOW) is None


def test_a_201_naming_a_monitor_is_polled() -> None:
    created = answer(201, {"Azure-AsyncOperation": "/aao"}, {"id": "x"}, method="PUT")
    operation = operation_from_response(created, now=NOW)
    assert operation is not None and operation.final_state is not None
    assert operation.final_state.method == "PUT"


def test_an_error_answer_raises() -> None:
    with pytest.raises(OperationNotFound):
        operation_from_response(answer(404, json={"title": "nope"}), now=NOW)


def test_follow_needs_the_request() -> None:
    with OperationsClient() as ops, pytest.raises(ConfigurationError, match=r"response\.request"):
        ops.follow(httpx.Response(202, headers={"Location": f"{API}/x"}))


# -- continuation tokens -----------------------------------------------------------------


def test_a_token_round_trips_an_operation() -> None:
    operation = Operation(
        status_url=f"{API}/ol",
        id="op-1",
        result_url=f"{API}/r",
        terminate_url=f"{API}/t?reason={{text}}",
        payload={"big": "not carried"},
        final_state=FinalState("PUT", f"{API}/things/a", None, FinalStateVia.ORIGINAL_URI),
    )
    token = encode_operation(operation)
    assert "=" not in token and "/" not in token and "+" not in token
    back = decode_operation(token)
    assert back.final_state == operation.final_state
    assert (back.status_url, back.id, back.result_url, back.terminate_url) == (
        operation.status_url,
        "op-1",
        f"{API}/r",
        operation.terminate_url,
    )


# -- the result cache and the 404 grace --------------------------------------------------


def result(
    etag: str | None = '"v1"', content: bytes = b'{"a": 1}', **headers: str
) -> httpx.Response:
    all_headers = {"content-type": "application/json", **headers}
    if etag:
        all_headers["etag"] = etag
    return httpx.Response(200, headers=all_headers, content=content)


def test_the_cache_is_keyed_by_url_and_accept_and_bounded() -> None:
    cache = ResultCache(max_entries=2, max_bytes=100)
    json_spec = RequestSpec("GET", f"{API}/r1", headers={"accept": "application/json"})
    csv_spec = RequestSpec("GET", f"{API}/r1", headers={"accept": "text/csv"})
    cache.remember(json_spec, result())
    conditional, cached = cache.conditional(json_spec)
    assert conditional.headers["if-none-match"] == '"v1"' and cached is not None
    assert cached.as_response().json() == {"a": 1}
    assert cache.conditional(csv_spec) == (csv_spec, None)
    cache.remember(RequestSpec("GET", f"{API}/r2"), result())
    cache.remember(RequestSpec("GET", f"{API}/r3"), result())
    assert len(cache) == 2
    assert cache.conditional(json_spec)[1] is None  # the least recently used went first


@pytest.mark.parametrize(
    "response",
    [
        result(etag=None),
        result(content=b"x" * 101),
        result(**{"cache-control": "no-store"}),
        httpx.Response(203, headers={"etag": '"v"'}, content=b"{}"),
    ],
)
def test_what_the_cache_does_not_keep(response: httpx.Response) -> None:
    cache = ResultCache(max_entries=2, max_bytes=100)
    cache.remember(RequestSpec("GET", f"{API}/r"), response)
    assert len(cache) == 0


def test_the_404_grace_honours_retry_after_and_ends() -> None:
    policy = PollingPolicy(min_interval=0.5, max_interval=30, default_interval=1, growth=2)
    grace = MissingResultGrace(10, policy)
    missing = httpx.Response(404)
    assert grace.retry_delay(httpx.Response(200), now=0, wall_now=NOW) is None
    assert (
        grace.retry_delay(httpx.Response(404, headers={"retry-after": "4"}), now=0, wall_now=NOW)
        == 4
    )
    assert grace.retry_delay(missing, now=4, wall_now=NOW) == 2  # no hint: 1, then 2, ...
    assert grace.retry_delay(missing, now=9, wall_now=NOW) == 1  # what is left of the 10 s
    assert grace.retry_delay(missing, now=10, wall_now=NOW) is None
    assert MissingResultGrace(0, policy).retry_delay(missing, now=0, wall_now=NOW) is None


# -- the default total timeout -----------------------------------------------------------


@pytest.mark.parametrize("method", ["wait", "run", "follow", "begin", "begin_follow"])
def test_waits_are_bounded_by_default(method: str) -> None:
    assert DEFAULT_WAIT_TIMEOUT == 3600
    for client in (OperationsClient, AsyncOperationsClient):
        default = inspect.signature(getattr(client, method)).parameters["timeout"].default
        assert default == DEFAULT_WAIT_TIMEOUT


def test_a_wait_given_no_timeout_ends_after_an_hour() -> None:
    def running(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "slow", "status": "Running"})

    clock = FakeClock()
    with (
        OperationsClient(API, transport=httpx.MockTransport(running), clock=clock) as ops,
        pytest.raises(OperationTimeout, match="keeps running"),
    ):
        ops.wait("slow")
    assert clock.now == pytest.approx(3600)
