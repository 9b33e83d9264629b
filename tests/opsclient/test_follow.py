"""follow(response) against a real ARM-style server: each final-state rule, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from opsclient import (
    AsyncOperationsClient,
    OperationFailed,
    OperationNotFound,
    OperationsClient,
    RunState,
)
from tests.opsclient.arm_api import FAST, RunningArmAPI


def follow(
    flavor: str,
    api: RunningArmAPI,
    method: str,
    path: str,
    body: Any = None,
    *,
    client_options: dict[str, Any] | None = None,
    **follow_options: Any,
) -> Any:
    """Send the request with a plain httpx client, then hand its answer to follow()."""
    options = {"polling": FAST, **(client_options or {})}
    if flavor == "sync":
        with httpx.Client(base_url=api.url) as http, OperationsClient(**options) as ops:
            return ops.follow(http.request(method, path, json=body), **follow_options)

    async def go() -> Any:
        async with (
            httpx.AsyncClient(base_url=api.url) as http,
            AsyncOperationsClient(**options) as ops,
        ):
            response = await http.request(method, path, json=body)
            return await ops.follow(response, **follow_options)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("method", "path", "body", "via", "expected"),
    [
        # PUT: 201 + Azure-AsyncOperation, then the original URI.
        ("PUT", "/things/a", {"size": 1}, None, {"name": "a", "size": 1}),
        # PATCH: 202 + Operation-Location, then the original URI.
        ("PATCH", "/things/b", {"size": 2}, None, {"name": "b", "size": 2}),
        # POST with a Location: that URL.
        ("POST", "/things/c/export", None, None, {"exported": "c"}),
        # resourceLocation in the final status wins over the POST's Location...
        ("POST", "/reports", {"rows": 5}, None, {"rows": 5}),
        # ...unless final-state-via says location.
        ("POST", "/reports", {"rows": 5}, "location", {"elsewhere": True}),
        ("POST", "/things/d/archive", None, None, {"exported-by-archive": "d"}),
        ("POST", "/things/e/restart", None, "original-uri", {"restarted": "e"}),
    ],
)
def test_each_final_state_rule(
    flavor: str,
    api: RunningArmAPI,
    method: str,
    path: str,
    body: Any,
    via: str | None,
    expected: Any,
) -> None:
    assert follow(flavor, api, method, path, body, final_state_via=via) == expected


@pytest.mark.parametrize("via", ["azure-async-operation", "operation-location"])
def test_a_post_whose_final_state_is_the_status_body(
    flavor: str, api: RunningArmAPI, via: str
) -> None:
    final = follow(flavor, api, "POST", "/things/d/archive", final_state_via=via)
    assert final["status"] == "Succeeded"
    assert final["properties"] == {"archived": "d"}
    assert not api.state.requests_to("GET", "/exports/")  # no final GET


def test_a_delete_without_result_url_gives_the_final_status(
    flavor: str, api: RunningArmAPI
) -> None:
    final = follow(flavor, api, "DELETE", "/things/gone")
    assert (final["status"], final["name"]) == ("Succeeded", "delete gone")


def test_a_durable_functions_check_status_answer(flavor: str, api: RunningArmAPI) -> None:
    assert follow(flavor, api, "POST", "/orchestrators/hello") == ["Tokyo", "Seattle"]


def test_an_answer_that_is_not_202_is_the_result(flavor: str, api: RunningArmAPI) -> None:
    assert follow(flavor, api, "GET", "/plain") == {"plain": True}
    assert len(api.state.requests) == 1  # nothing polled


def test_a_failed_operation_raises_with_the_servers_message(
    flavor: str, api: RunningArmAPI
) -> None:
    with pytest.raises(OperationFailed, match="x exploded"):
        follow(flavor, api, "POST", "/things/x/explode")


def test_an_error_answer_raises_at_once(flavor: str, api: RunningArmAPI) -> None:
    with pytest.raises(OperationNotFound):
        follow(flavor, api, "POST", "/nowhere")


def test_a_result_that_answers_404_for_a_while_is_waited_for(
    flavor: str, api: RunningArmAPI
) -> None:
    assert follow(flavor, api, "PUT", "/things/lazy-1", {"v": 1}) == {"name": "lazy-1", "v": 1}
    assert len(api.state.requests_to("GET", "/things/lazy-1")) == 3  # 404, 404, 200


def test_a_result_404_beyond_the_grace_is_not_found(flavor: str, api: RunningArmAPI) -> None:
    with pytest.raises(OperationNotFound):
        follow(flavor, api, "PUT", "/things/lazy-2", {}, client_options={"result_grace": 0})


def test_wait_takes_the_final_url_and_result_reads_it(api: RunningArmAPI) -> None:
    with httpx.Client(base_url=api.url) as http, OperationsClient(polling=FAST) as ops:
        started = http.put("/things/w", json={"size": 3})
        monitor = started.headers["azure-asyncoperation"]
        final = ops.wait(monitor, final_url=f"{api.url}/things/w")
        assert final.state is RunState.SUCCEEDED
        assert ops.result(final) == {"name": "w", "size": 3}


def test_a_result_read_twice_is_revalidated_and_served_from_the_cache(
    api: RunningArmAPI,
) -> None:
    with httpx.Client(base_url=api.url) as http, OperationsClient(polling=FAST) as ops:
        started = http.put("/things/etag", json={"size": 4})
        final = ops.wait(
            started.headers["azure-asyncoperation"], final_url=f"{api.url}/things/etag"
        )
        first = ops.result(final)
        second = ops.result(final)
        as_csv = ops.result(final, accept="text/csv")  # another Accept: another entry
    assert first == second == as_csv == {"name": "etag", "size": 4}
    gets = api.state.requests_to("GET", "/things/etag")
    assert "if-none-match" not in gets[0]
    assert gets[1]["if-none-match"].startswith('"')
    assert "if-none-match" not in gets[2]
