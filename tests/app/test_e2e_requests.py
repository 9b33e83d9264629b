"""End to end over HTTP: bad inputs, Idempotency-Key, unknown ids, the list endpoint."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.app.conftest import AppHost, json_of

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def _problem(response_status: int, response: object) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == response_status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    body = json_of(response)
    assert body["status"] == response_status
    assert body["type"] and body["title"] and body["detail"]
    assert body["message"] == body["detail"]
    return body


# ------------------------------------------------------------------- bad start requests


def test_unknown_kind_is_404_and_names_the_known_kinds(app_host: AppHost) -> None:
    body = _problem(404, app_host.start("nonsense", {}))
    assert "report" in str(body["detail"])


def test_body_that_is_not_json_is_415(app_host: AppHost) -> None:
    response = app_host.http.post(
        f"{app_host.api}/report", content=b"rows=10", headers={"Content-Type": "text/plain"}
    )
    _problem(415, response)


def test_malformed_json_is_400(app_host: AppHost) -> None:
    response = app_host.http.post(
        f"{app_host.api}/report",
        content=b'{"rows": 10,',
        headers={"Content-Type": "application/json"},
    )
    body = _problem(400, response)
    assert "not valid JSON" in str(body["detail"])


def test_body_over_the_limit_is_413(app_host: AppHost) -> None:
    huge = b'{"rows": 1, "pad": "' + b"x" * 70_000 + b'"}'
    response = app_host.http.post(
        f"{app_host.api}/report", content=huge, headers={"Content-Type": "application/json"}
    )
    body = _problem(413, response)
    assert body["limit"] == 65536


@pytest.mark.parametrize(
    ("kind", "payload", "fields"),
    [
        ("report", {"rows": 0}, {"rows"}),
        ("report", {"rows": "10"}, {"rows"}),
        ("report", {"rows": True}, {"rows"}),
        ("report", {"rows": 1.5}, {"rows"}),
        ("report", {"partitions": 65}, {"partitions"}),
        ("report", {"partitions": 0, "rows": -1}, {"partitions", "rows"}),
        ("report", {"colour": "red"}, {"colour"}),
        ("report", [1, 2], {""}),
        ("report", {"callbackUrl": "not a url"}, {"callbackUrl"}),
        ("approval", {}, {"subject", "timeoutSeconds"}),
        ("approval", {"subject": "", "timeoutSeconds": 0}, {"subject", "timeoutSeconds"}),
        ("ingest", {"urls": []}, {"urls"}),
        ("ingest", {"urls": ["ftp://x/y", "https://ok.example/a"]}, {"urls/0"}),
    ],
)
def test_invalid_fields_are_400_naming_each_field(
    app_host: AppHost, kind: str, payload: object, fields: set[str]
) -> None:
    body = _problem(400, app_host.start(kind, payload))
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {e["field"] for e in errors} == fields
    for error in errors:
        assert error["detail"]
        assert error["pointer"].startswith("#")


# ------------------------------------------------------------------- Idempotency-Key


def test_same_key_and_body_returns_the_same_operation(app_host: AppHost) -> None:
    key = str(uuid.uuid4())
    first = app_host.start("report", {"rows": 50, "partitions": 2}, **{"Idempotency-Key": key})
    # Same JSON, different key order and spacing: the same request.
    second = app_host.http.post(
        f"{app_host.api}/report",
        content=b'{ "partitions": 2,  "rows": 50 }',
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
    )
    assert first.status_code == second.status_code == 202
    assert json_of(first)["id"] == json_of(second)["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]

    listed = app_host.http.get(app_host.api, params={"kind": "report", "top": 1000}).json()
    ids = [item["id"] for item in listed["value"]]
    assert ids.count(json_of(first)["id"]) == 1


def test_concurrent_requests_with_one_key_start_one_operation(app_host: AppHost) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda _: app_host.start("report", {"rows": 20}, **key), range(6))
        )
    assert {r.status_code for r in responses} == {202}
    ids = {json_of(r)["id"] for r in responses}
    assert len(ids) == 1
    assert sum(1 for r in responses if "Idempotent-Replayed" not in r.headers) == 1
    assert app_host.wait_for(ids.pop())["status"] == "Succeeded"


def test_same_key_with_a_different_body_is_422(app_host: AppHost) -> None:
    key = str(uuid.uuid4())
    first = app_host.start("report", {"rows": 50}, **{"Idempotency-Key": key})
    assert first.status_code == 202
    body = _problem(422, app_host.start("report", {"rows": 51}, **{"Idempotency-Key": key}))
    assert json_of(first)["id"] in str(body["detail"])
    _problem(
        422,
        app_host.start(
            "approval", {"subject": "x", "timeoutSeconds": 5}, **{"Idempotency-Key": key}
        ),
    )


def test_a_bad_idempotency_key_is_400(app_host: AppHost) -> None:
    _problem(400, app_host.start("report", {}, **{"Idempotency-Key": "x" * 300}))
    _problem(400, app_host.start("report", {}, **{"Idempotency-Key": "has space"}))


# ------------------------------------------------------------------- unknown operations


@pytest.mark.parametrize("operation_id", ["0" * 32, "not-an-operation", "a" * 100])
def test_unknown_operation_is_404_everywhere(app_host: AppHost, operation_id: str) -> None:
    _problem(404, app_host.http.get(f"{app_host.api}/{operation_id}"))
    _problem(404, app_host.http.get(f"{app_host.api}/{operation_id}/status"))
    _problem(404, app_host.http.get(f"{app_host.api}/{operation_id}/result"))
    _problem(404, app_host.http.delete(f"{app_host.api}/{operation_id}"))


def test_get_on_a_kind_url_says_how_to_start_one(app_host: AppHost) -> None:
    body = _problem(404, app_host.http.get(f"{app_host.api}/report"))
    assert "POST" in str(body["detail"])


# ------------------------------------------------------------------- list


def test_list_filters_by_kind_and_status_and_pages_with_continuation(app_host: AppHost) -> None:
    ids = set()
    for _ in range(3):
        started = app_host.start("approval", {"subject": "list me", "timeoutSeconds": 600})
        ids.add(json_of(started)["id"])
    for operation_id in ids:
        app_host.wait_for(operation_id, {"Running"})

    seen: list[str] = []
    url: str | None = f"{app_host.api}?kind=approval&status=Running&top=2"
    pages = 0
    while url:
        response = app_host.http.get(url)
        assert response.status_code == 200
        page = response.json()
        assert len(page["value"]) <= 2
        for item in page["value"]:
            assert item["kind"] == "approval"
            assert item["status"] == "Running"
        seen.extend(item["id"] for item in page["value"])
        url = page["nextLink"]
        pages += 1
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))
    assert pages >= 2
    for operation_id in ids:
        app_host.http.delete(f"{app_host.api}/{operation_id}")


def test_list_pages_reach_every_operation_across_task_hub_pages(app_host: AppHost) -> None:
    # Reports between the approvals: a page of approvals takes several hub pages.
    approvals = set()
    for _ in range(4):
        started = app_host.start("approval", {"subject": "paged", "timeoutSeconds": 600})
        approvals.add(json_of(started)["id"])
        app_host.start("report", {"rows": 10, "partitions": 1})
    for operation_id in approvals:
        app_host.wait_for(operation_id, {"Running"})

    seen: list[str] = []
    url: str | None = f"{app_host.api}?kind=approval&top=1"
    while url:
        page = json_of(app_host.http.get(url))
        assert len(page["value"]) <= 1
        assert all(item["kind"] == "approval" for item in page["value"])
        seen.extend(item["id"] for item in page["value"])
        url = page["nextLink"]
    assert approvals <= set(seen)
    assert len(seen) == len(set(seen))
    everything = json_of(app_host.http.get(app_host.api, params={"top": 1000}))
    assert {item["id"] for item in everything["value"]} >= approvals
    for operation_id in approvals:
        app_host.http.delete(f"{app_host.api}/{operation_id}")


def test_list_is_newest_first(app_host: AppHost) -> None:
    listed = app_host.http.get(app_host.api, params={"top": 1000}).json()["value"]
    created = [item["createdAt"] for item in listed]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "Sleeping"}, "status"),
        ({"kind": "nonsense"}, "kind"),
        ({"top": "0"}, "top"),
        ({"top": "abc"}, "top"),
        ({"top": "100000"}, "top"),
    ],
)
def test_list_with_bad_parameters_is_400(
    app_host: AppHost, params: dict[str, str], field: str
) -> None:
    body = _problem(400, app_host.http.get(app_host.api, params=params))
    assert [e["field"] for e in body["errors"]] == [field]


def test_list_with_a_forged_continuation_token_is_400(app_host: AppHost) -> None:
    _problem(400, app_host.http.get(app_host.api, params={"continuationToken": "!!!"}))
