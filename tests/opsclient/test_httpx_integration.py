"""OperationsTransport / AsyncOperationsTransport: an httpx program gets final results."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from opsclient import (
    FOLLOW_EXTENSION,
    AsyncOperationsTransport,
    OperationFailed,
    OperationsTransport,
    OperationTimeout,
    RetryPolicy,
)
from tests.opsclient.arm_api import FAST, RunningArmAPI


def send(
    flavor: str,
    api: RunningArmAPI,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
    **transport_options: Any,
) -> httpx.Response:
    """One request through an httpx client that has the operations transport installed."""
    options = {"polling": FAST, **transport_options}
    if flavor == "sync":
        transport = OperationsTransport(**options)
        with httpx.Client(transport=transport, base_url=api.url, headers=headers) as http:
            return http.request(method, path, json=body, extensions=extensions)

    async def go() -> httpx.Response:
        transport = AsyncOperationsTransport(**options)
        async with httpx.AsyncClient(
            transport=transport, base_url=api.url, headers=headers
        ) as http:
            return await http.request(method, path, json=body, extensions=extensions)

    return asyncio.run(go())


def test_a_202_comes_back_as_the_final_result(flavor: str, api: RunningArmAPI) -> None:
    response = send(flavor, api, "POST", "/reports", body={"rows": 7})
    assert response.status_code == 200
    assert response.json() == {"rows": 7}
    assert response.headers["x-result"] == "yes"  # the result's own headers
    assert response.headers["etag"]
    assert response.request.method == "POST"  # the caller's request, as sent


def test_a_put_201_with_azure_async_operation_is_followed(flavor: str, api: RunningArmAPI) -> None:
    response = send(flavor, api, "PUT", "/things/t", body={"size": 9})
    assert (response.status_code, response.json()) == (200, {"name": "t", "size": 9})


def test_other_answers_pass_through_untouched(flavor: str, api: RunningArmAPI) -> None:
    assert send(flavor, api, "GET", "/plain").json() == {"plain": True}
    missing = send(flavor, api, "GET", "/nowhere")
    assert missing.status_code == 404


def test_opting_out_per_request_returns_the_202(flavor: str, api: RunningArmAPI) -> None:
    response = send(
        flavor, api, "POST", "/reports", body={"rows": 1}, extensions={FOLLOW_EXTENSION: False}
    )
    assert response.status_code == 202
    assert response.headers["operation-location"].startswith("/operations/")
    assert not api.state.requests_to("GET", "/operations/")


def test_a_failed_operation_is_a_422_problem(flavor: str, api: RunningArmAPI) -> None:
    response = send(flavor, api, "POST", "/things/x/explode")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:durable-ops:problem:operation-failed"
    assert "x exploded" in problem["message"]
    assert problem["message"] == problem["detail"]
    assert isinstance(response.extensions["opsclient.error"], OperationFailed)
    with pytest.raises(httpx.HTTPStatusError):
        response.raise_for_status()


def test_our_timeout_is_a_504_naming_the_status_url(flavor: str, api: RunningArmAPI) -> None:
    response = send(flavor, api, "POST", "/reports", body={"rows": 1}, timeout=0)
    assert response.status_code == 504
    problem = response.json()
    assert problem["operationStatus"] == "Running"
    assert problem["statusUrl"].startswith(f"{api.url}/operations/")
    assert isinstance(response.extensions["opsclient.error"], OperationTimeout)


def test_an_error_status_while_polling_comes_back_as_it_was(
    flavor: str, api: RunningArmAPI
) -> None:
    api.state.faults.append(("GET", "/operations/", 403))
    response = send(flavor, api, "POST", "/reports", body={"rows": 1})
    assert response.status_code == 403
    assert response.json()["title"] == "fault 403"


def test_a_network_failure_while_polling_raises_the_httpx_error(
    flavor: str, api: RunningArmAPI
) -> None:
    api.state.faults.append(("GET", "/operations/", "drop"))
    with pytest.raises(httpx.TransportError):
        send(flavor, api, "POST", "/reports", body={"rows": 1}, retry=RetryPolicy(attempts=1))


def test_credentials_go_only_to_the_original_origin(flavor: str, api: RunningArmAPI) -> None:
    secret = {"Authorization": "Bearer s3cret", "x-functions-key": "k"}
    response = send(flavor, api, "POST", "/reports?cross=1", body={"rows": 2}, headers=secret)
    assert response.json() == {"rows": 2}
    polls = api.state.requests_to("GET", "/operations/")
    assert polls and all(h["authorization"] == "Bearer s3cret" for h in polls)
    assert all(h["x-functions-key"] == "k" for h in polls)
    (result,) = api.state.requests_to("GET", "/reports/")
    assert result["host"].startswith("localhost:")
    assert "authorization" not in result and "x-functions-key" not in result


def test_concurrent_requests_keep_their_own_credentials(api: RunningArmAPI) -> None:
    async def go() -> list[Any]:
        transport = AsyncOperationsTransport(polling=FAST)
        async with httpx.AsyncClient(transport=transport, base_url=api.url) as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/reports", json={"rows": n}, headers={"Authorization": f"Bearer u{n}"}
                    )
                    for n in range(4)
                )
            )
        return [a.json()["rows"] for a in answers]

    assert asyncio.run(go()) == [0, 1, 2, 3]
    rows = {op: api.state.things[f"report-{op}"]["rows"] for op in api.state.operations}
    polls = [
        (path.split("/")[2], headers["authorization"])
        for method, path, headers in api.state.requests
        if method == "GET" and path.startswith(("/operations/", "/reports/"))
    ]
    # Each operation was polled (and its result read) only with its own request's token.
    assert len(polls) >= 12
    assert all(token == f"Bearer u{rows[op]}" for op, token in polls)
