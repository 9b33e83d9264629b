"""End to end over HTTP: each class of hostile input that once made the operations API
answer 500 now answers a 4xx problem+json with a message a person can act on.

The classes: integers past Python's 4,300-digit `int()` limit, JSON nested past the
recursion limit (in bodies and inside continuation tokens), NaN/Infinity and lone
surrogates, malformed URLs, Unicode digits and oversized `top`, header bytes that are not
UTF-8, a Host that is not a host, and approve/cancel racing the operation's end.
Raw bytes go through http.client, which sends header values as given; httpx would refuse.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func
import httpx
import pytest

import function_app  # noqa: F401  (registers the kinds the handlers run in-process look up)
from operations.handlers.control import approve_operation, cancel_operation
from tests.app.conftest import AppHost, json_of

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}


def problem_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem body of a refusal, checked for the shape every refusal has."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    body = json_of(response)
    assert body["status"] == status
    assert body["type"].startswith("urn:durable-ops:problem:")
    assert body["detail"] and body["message"] == body["detail"]
    return body


def raw_request(
    app_host: AppHost, method: str, path: str, headers: dict[str, bytes], body: bytes = b""
) -> tuple[int, str, dict[str, Any] | None]:
    """Send header bytes exactly as given; (status, Content-Type, JSON body or None)."""
    origin = urlsplit(app_host.url)
    connection = http.client.HTTPConnection(origin.hostname or "", origin.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host="Host" in headers)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        content_type = response.getheader("Content-Type") or ""
        parsed = json.loads(data) if "json" in content_type else None
        return response.status, content_type, parsed
    finally:
        connection.close()


def start_approval(app_host: AppHost) -> str:
    response = app_host.start("approval", {"subject": "hostile inputs", "timeoutSeconds": 600})
    assert response.status_code == 202, response.text
    operation_id: str = response.json()["id"]
    return operation_id


@pytest.fixture(scope="module")
def waiting_approval(app_host: AppHost) -> str:
    """An approval operation that waits for its decision for the whole module."""
    operation_id = start_approval(app_host)
    app_host.wait_for(operation_id, {"Running"})
    return operation_id


# ------------------------------------------------------------------- JSON bodies

HOSTILE_BODIES = [
    pytest.param(b'{"rows": ' + b"9" * 5000 + b"}", "at most 100", id="int-past-4300-digits"),
    pytest.param(b'{"rows": 1' + b"0" * 400 + b".5}", "at most 100", id="float-of-400-digits"),
    pytest.param(b'{"rows": 1e999}', "too large", id="float-overflow"),
    pytest.param(b'{"rows": NaN}', "NaN is not a JSON value", id="nan"),
    pytest.param(b"[" * 30000 + b"]" * 30000, "deeper than 64", id="past-recursion-limit"),
    pytest.param(b'{"rows":' + b"[" * 65 + b"]" * 65 + b"}", "deeper than 64", id="depth-66"),
    pytest.param(b'{"subject": "\\udc80"}', "surrogate", id="lone-surrogate"),
    pytest.param(b'{"rows": "\xc3"}', "not UTF-8", id="broken-utf8"),
]


@pytest.mark.parametrize(("body", "says"), HOSTILE_BODIES)
@pytest.mark.parametrize("kind", ["report", "approval", "ingest"])
def test_hostile_start_bodies_are_400_invalid_json(
    app_host: AppHost, kind: str, body: bytes, says: str
) -> None:
    response = app_host.http.post(f"{app_host.api}/{kind}", content=body, headers=JSON)
    problem = problem_of(response, 400)
    assert problem["type"].endswith(":invalid-json")
    assert says in problem["detail"]


@pytest.mark.parametrize(("body", "says"), HOSTILE_BODIES)
def test_hostile_approve_bodies_are_400_invalid_json(
    app_host: AppHost, waiting_approval: str, body: bytes, says: str
) -> None:
    url = f"{app_host.api}/{waiting_approval}/approve"
    problem = problem_of(app_host.http.post(url, content=body, headers=JSON), 400)
    assert says in problem["detail"]
    assert app_host.wait_for(waiting_approval, {"Running"})["status"] == "Running"


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("report", {"callbackUrl": "http://[::1"}, "callbackUrl"),
        ("report", {"callbackUrl": "http://[::1]:99999/x"}, "callbackUrl"),
        ("ingest", {"urls": ["http://[::1"]}, "urls/0"),
        ("ingest", {"urls": ["https://ok.example/a", "http://[v1.x"]}, "urls/1"),
    ],
)
def test_malformed_urls_are_400_naming_the_field(
    app_host: AppHost, kind: str, body: dict[str, Any], field: str
) -> None:
    problem = problem_of(app_host.start(kind, body), 400)
    assert field in {error["field"] for error in problem["errors"]}


# ------------------------------------------------------------------- the list query


@pytest.mark.parametrize("top", ["²", "٣", "1_0", "+5", "9" * 5000, "1001", "0"])
def test_top_that_is_not_ascii_digits_in_range_is_400(app_host: AppHost, top: str) -> None:
    problem = problem_of(app_host.http.get(app_host.api, params={"top": top}), 400)
    assert [error["field"] for error in problem["errors"]] == ["top"]
    assert "from 1 to 1000 in ASCII digits" in problem["detail"]


def token_of(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        # Nested past the recursion limit, and short enough for the host's URL limit.
        pytest.param(token_of(b"[" * 3000 + b"]" * 3000), id="deep"),
        pytest.param(token_of(b'{"v":1,"h":' + b"9" * 4000 + b"}"), id="huge-int"),
        # The hub token goes back to the task hub as a header: a newline would break it.
        pytest.param(token_of(b'{"v":1,"h":"a\\r\\nx-injected: 1"}'), id="header-injection"),
        pytest.param(token_of(b'{"v":1,"h":"caf\\u00e9"}'), id="non-ascii-hub-token"),
        pytest.param("a" * 5000, id="too-long"),
    ],
)
def test_forged_continuation_tokens_are_400(app_host: AppHost, token: str) -> None:
    response = app_host.http.get(app_host.api, params={"continuationToken": token})
    problem = problem_of(response, 400)
    assert "take it from nextLink" in json.dumps(problem)


# ------------------------------------------------------------------- headers


def test_a_start_with_header_bytes_that_are_not_utf8_is_400(app_host: AppHost) -> None:
    path = "/api/operations/report"
    body = b'{"rows": 10}'
    status, content_type, problem = raw_request(
        app_host,
        "POST",
        path,
        {"Content-Type": b"application/json", "Idempotency-Key": b"\xff\xfe"},
        body,
    )
    assert (status, content_type) == (400, PROBLEM)
    assert problem is not None and "Idempotency-Key" in problem["detail"]

    status, content_type, problem = raw_request(
        app_host, "POST", path, {"Content-Type": b"application/\xffjson"}, body
    )
    assert (status, content_type) == (400, PROBLEM)
    assert problem is not None and "Content-Type header" in problem["message"]


def test_result_headers_that_are_not_utf8_never_fail_the_read(app_host: AppHost) -> None:
    report = app_host.start("report", {"rows": 40, "partitions": 2}).json()
    assert app_host.wait_for(report["id"])["status"] == "Succeeded"
    path = urlsplit(report["resultUri"]).path
    for name in ("Accept", "If-None-Match"):
        status, content_type, body = raw_request(app_host, "GET", path, {name: b"\xff\xfe\x80"})
        assert status < 500, (name, status, body)
        assert status == 200 or content_type == PROBLEM, (name, status)


@pytest.mark.parametrize("host", [b"[::1", b"a b", b"example.com:99999", b"\xff"])
@pytest.mark.parametrize(
    ("method", "route"),
    [("GET", ""), ("POST", "/report"), ("GET", "/{id}"), ("GET", "/{id}/status")],
)
def test_a_host_header_that_is_not_a_host_is_400(
    app_host: AppHost, waiting_approval: str, host: bytes, method: str, route: str
) -> None:
    path = "/api/operations" + route.format(id=waiting_approval)
    status, content_type, problem = raw_request(
        app_host, method, path, {"Host": host, "Content-Type": b"application/json"}, b"{}"
    )
    assert (status, content_type) == (400, PROBLEM)
    assert problem is not None and "Host header" in problem["message"]


# ------------------------------------------------------------------- racing the end


class EndsRightAfterTheCheck(df.DurableOrchestrationClient):
    """The SDK's durable client against the real host, except that the first status read
    (the handler's check that the operation still runs) is followed by the operation's
    end: what a timer firing, or another client canceling, between the check and the
    raise or terminate looks like to the handler."""

    raced = False

    async def get_status(self, instance_id: str, *args: Any, **kwargs: Any) -> Any:
        status = await super().get_status(instance_id, *args, **kwargs)
        if not self.raced:
            self.raced = True
            await super().terminate(instance_id, "ended by the test between check and act")
            deadline = time.monotonic() + 20
            while (await super().get_status(instance_id)).runtime_status != (
                df.OrchestrationRuntimeStatus.Terminated
            ):
                assert time.monotonic() < deadline, "the host did not terminate the instance"
                await asyncio.sleep(0.05)
        return status


@pytest.fixture
def in_app_settings(app_host: AppHost, monkeypatch: pytest.MonkeyPatch) -> AppHost:
    """The handler runs in this process: give it the app's settings (storage, containers)."""
    for name, value in app_host.settings.items():
        monkeypatch.setenv(name, value)
    return app_host


def racing_client(app_host: AppHost) -> EndsRightAfterTheCheck:
    rpc = f"{app_host.url}/runtime/webhooks/durabletask/"
    binding = {
        "taskHubName": "DurableOps",
        "creationUrls": {},
        "managementUrls": {},
        "baseUrl": rpc,
        "requiredQueryStringParameters": "",
        "rpcBaseUrl": rpc,
    }
    return EndsRightAfterTheCheck(json.dumps(binding))


def handler_request(app_host: AppHost, method: str, operation_id: str, suffix: str) -> Any:
    return func.HttpRequest(
        method=method,
        url=f"{app_host.api}/{operation_id}{suffix}",
        headers=JSON,
        params={},
        route_params={"name": operation_id},
        body=b'{"approved": true, "by": "ana"}',
    )


# One loop for both: the SDK's durable client keeps one aiohttp session per process.
@pytest.mark.asyncio(loop_scope="module")
async def test_an_approve_that_races_the_end_is_409_operation_ended(
    in_app_settings: AppHost,
) -> None:
    app_host = in_app_settings
    operation_id = await asyncio.to_thread(start_approval, app_host)
    await asyncio.to_thread(app_host.wait_for, operation_id, {"Running"})
    client = racing_client(app_host)

    response = await approve_operation(
        handler_request(app_host, "POST", operation_id, "/approve"), client, operation_id
    )

    assert client.raced
    assert response.status_code == 409
    assert response.headers["Content-Type"] == PROBLEM
    problem = json.loads(response.get_body())
    assert problem["type"] == "urn:durable-ops:problem:operation-ended"
    assert problem["operationStatus"] == "Canceled"
    assert "too late" in problem["message"]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_cancel_that_races_the_end_is_still_accepted(in_app_settings: AppHost) -> None:
    # The SDK's terminate takes the runtime's 410 (already ended) as done, so the cancel is
    # accepted and the monitor then shows how the operation ended; no failure either way.
    app_host = in_app_settings
    operation_id = await asyncio.to_thread(start_approval, app_host)
    await asyncio.to_thread(app_host.wait_for, operation_id, {"Running"})
    client = racing_client(app_host)

    response = await cancel_operation(
        handler_request(app_host, "DELETE", operation_id, ""), client, operation_id
    )

    assert client.raced
    assert response.status_code == 202
    ended = await asyncio.to_thread(app_host.wait_for, operation_id)
    assert ended["status"] == "Canceled"
