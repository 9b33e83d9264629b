"""End to end over HTTP: start a report, monitor it, fetch its result (JSON, CSV, 304)."""

from __future__ import annotations

import csv
import io

import pytest

from tests.app.conftest import AppHost, json_of

pytestmark = pytest.mark.e2e

BUILT_IN_LINKS = {
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
}


def test_start_answers_202_with_location_retry_after_and_status_urls(app_host: AppHost) -> None:
    response = app_host.start("report", {"rows": 500, "partitions": 3})

    assert response.status_code == 202
    body = json_of(response)
    assert set(body) >= BUILT_IN_LINKS
    assert int(response.headers["Retry-After"]) >= 1
    assert body["operationUri"] == f"{app_host.api}/{body['id']}"
    assert body["statusUri"] == f"{app_host.api}/{body['id']}/status"
    assert body["resultUri"] == f"{app_host.api}/{body['id']}/result"
    assert response.headers["Location"] == body["operationUri"]
    assert response.headers["Operation-Location"] == body["statusUri"]
    # The built-in status URL really answers for this instance.
    built_in = app_host.http.get(body["statusQueryGetUri"])
    assert built_in.status_code in (200, 202)
    assert built_in.json()["instanceId"] == body["id"]


def test_report_succeeds_redirects_to_result_and_counts_every_row(app_host: AppHost) -> None:
    started = json_of(app_host.start("report", {"rows": 12_345, "partitions": 7}))
    final = app_host.wait_for(started["id"])

    assert final["status"] == "Succeeded"
    assert final["kind"] == "report"
    assert final["progress"]["fraction"] == 1.0
    assert final["resultUri"] == started["resultUri"]
    assert final["createdAt"].endswith("Z") and final["updatedAt"].endswith("Z")

    monitor = app_host.http.get(started["operationUri"])
    assert monitor.status_code == 303
    assert monitor.headers["Location"] == started["resultUri"]

    result = app_host.http.get(started["resultUri"])
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("application/json")
    assert int(result.headers["Content-Length"]) == len(result.content)
    report = result.json()
    assert report["rows"] == 12_345
    assert report["partitions"] == 7
    assert sum(c["count"] for c in report["categories"]) == 12_345
    assert report["totals"]["count"] == 12_345


def test_defaults_apply_when_the_body_is_empty(app_host: AppHost) -> None:
    response = app_host.http.post(f"{app_host.api}/report")
    assert response.status_code == 202
    final = app_host.wait_for(json_of(response)["id"])
    assert final["status"] == "Succeeded"
    assert final["summary"] == {"rows": 1000, "partitions": 4}


def test_same_input_gives_the_same_report(app_host: AppHost) -> None:
    first = json_of(app_host.start("report", {"rows": 2000, "partitions": 5}))
    second = json_of(app_host.start("report", {"rows": 2000, "partitions": 5}))
    reports = []
    for started in (first, second):
        app_host.wait_for(started["id"])
        reports.append(app_host.http.get(started["resultUri"]).json())
    assert reports[0]["categories"] == reports[1]["categories"]


def test_result_as_csv_and_conditional_get(app_host: AppHost) -> None:
    started = json_of(app_host.start("report", {"rows": 999, "partitions": 2}))
    app_host.wait_for(started["id"])

    as_csv = app_host.http.get(started["resultUri"], headers={"Accept": "text/csv"})
    assert as_csv.status_code == 200
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert sum(int(row["count"]) for row in rows) == 999

    as_json = app_host.http.get(started["resultUri"], headers={"Accept": "application/json"})
    etag = as_json.headers["ETag"]
    assert etag and etag != as_csv.headers["ETag"]

    not_modified = app_host.http.get(
        started["resultUri"], headers={"If-None-Match": etag, "Accept": "application/json"}
    )
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["ETag"] == etag

    changed = app_host.http.get(started["resultUri"], headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


def test_result_in_a_format_the_kind_does_not_have_is_406(app_host: AppHost) -> None:
    started = json_of(app_host.start("report", {"rows": 10, "partitions": 1}))
    app_host.wait_for(started["id"])
    response = app_host.http.get(started["resultUri"], headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert response.headers["Content-Type"] == "application/problem+json"
    assert set(json_of(response)["available"]) == {"application/json", "text/csv"}
