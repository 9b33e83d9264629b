"""End to end over HTTP: running operations, approval events, cancel, failures, retries."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import AppHost, eventually, json_of, run_app_host, run_peer
from tests.support.azurite import Azurite

pytestmark = pytest.mark.e2e


def _start_approval(app_host: AppHost, timeout_seconds: int = 600) -> dict[str, str]:
    response = app_host.start(
        "approval", {"subject": "deploy v2 to production", "timeoutSeconds": timeout_seconds}
    )
    assert response.status_code == 202, response.text
    return json_of(response)


def test_running_operation_answers_200_with_retry_after_and_result_404(app_host: AppHost) -> None:
    started = _start_approval(app_host)
    status = app_host.wait_for(started["id"], {"Running"})

    monitor = app_host.http.get(started["operationUri"])
    assert monitor.status_code == 200
    assert int(monitor.headers["Retry-After"]) >= 1
    body = monitor.json()
    assert body["status"] == "Running"
    assert body["kind"] == "approval"
    assert "waiting for approval" in body["progress"]["message"]
    assert 0.0 <= body["progress"]["fraction"] < 1.0
    assert "resultUri" not in status and "error" not in status

    result = app_host.http.get(started["resultUri"])
    assert result.status_code == 404
    assert result.headers["Content-Type"] == "application/problem+json"
    assert started["operationUri"] in result.headers["Link"]
    assert json_of(result)["operationStatus"] == "Running"


def test_approve_event_decides_the_outcome(app_host: AppHost) -> None:
    started = _start_approval(app_host)
    app_host.wait_for(started["id"], {"Running"})

    response = app_host.http.post(
        f"{started['operationUri']}/approve", json={"approved": True, "by": "ada"}
    )
    assert response.status_code == 202

    final = app_host.wait_for(started["id"])
    assert final["status"] == "Succeeded"
    outcome = app_host.http.get(started["resultUri"]).json()
    assert outcome["outcome"] == "approved"
    assert outcome["approved"] is True
    assert outcome["by"] == "ada"
    assert outcome["subject"] == "deploy v2 to production"

    again = app_host.http.post(
        f"{started['operationUri']}/approve", json={"approved": False, "by": "bob"}
    )
    assert again.status_code == 409


def test_built_in_send_event_uri_works_too(app_host: AppHost) -> None:
    started = _start_approval(app_host)
    app_host.wait_for(started["id"], {"Running"})
    url = started["sendEventPostUri"].replace("{eventName}", "approve")
    raised = app_host.http.post(url, json={"approved": False, "by": "grace"})
    assert raised.status_code == 202
    assert app_host.wait_for(started["id"])["status"] == "Succeeded"
    outcome = app_host.http.get(started["resultUri"]).json()
    assert (outcome["outcome"], outcome["by"]) == ("rejected", "grace")


def test_approval_times_out_on_its_durable_timer(app_host: AppHost) -> None:
    started = _start_approval(app_host, timeout_seconds=1)
    assert app_host.wait_for(started["id"])["status"] == "Succeeded"
    outcome = app_host.http.get(started["resultUri"]).json()
    assert outcome["outcome"] == "timedOut"
    assert outcome["approved"] is False


def test_approve_with_a_bad_body_or_on_another_kind(app_host: AppHost) -> None:
    started = _start_approval(app_host)
    bad = app_host.http.post(f"{started['operationUri']}/approve", json={"approved": "yes"})
    assert bad.status_code == 400
    fields = {e["field"] for e in json_of(bad)["errors"]}
    assert fields == {"approved", "by"}

    report = json_of(app_host.start("report", {"rows": 5, "partitions": 1}))
    wrong_kind = app_host.http.post(
        f"{report['operationUri']}/approve", json={"approved": True, "by": "x"}
    )
    assert wrong_kind.status_code == 409

    missing = app_host.http.post(
        f"{app_host.api}/{'0' * 32}/approve", json={"approved": True, "by": "x"}
    )
    assert missing.status_code == 404
    app_host.http.delete(started["operationUri"])


def test_cancel_a_running_operation_then_409(app_host: AppHost) -> None:
    started = _start_approval(app_host)
    app_host.wait_for(started["id"], {"Running"})

    canceled = app_host.http.delete(started["operationUri"])
    assert canceled.status_code == 202
    assert canceled.headers["Location"] == started["operationUri"]

    final = app_host.wait_for(started["id"])
    assert final["status"] == "Canceled"
    assert "resultUri" not in final

    again = app_host.http.delete(started["operationUri"])
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"
    assert json_of(again)["operationStatus"] == "Canceled"

    result = app_host.http.get(started["resultUri"])
    assert result.status_code == 404


def test_cancel_a_finished_operation_is_409(app_host: AppHost) -> None:
    started = json_of(app_host.start("report", {"rows": 10, "partitions": 2}))
    app_host.wait_for(started["id"])
    response = app_host.http.delete(started["operationUri"])
    assert response.status_code == 409
    assert json_of(response)["operationStatus"] == "Succeeded"


def test_ingest_retries_transient_failures_then_copies(app_host: AppHost) -> None:
    payload = b"hello durable world\n" * 1000
    with run_peer([503, 503, 200], payload) as flaky:
        started = json_of(app_host.start("ingest", {"urls": [f"{flaky.url}/data.txt"]}))
        final = app_host.wait_for(started["id"], timeout=30)
        assert final["status"] == "Succeeded", final
        assert len(flaky.requests) == 3
    manifest = app_host.http.get(started["resultUri"]).json()
    (copied,) = manifest["files"]
    assert copied["bytes"] == len(payload)
    assert copied["sha256"] == hashlib.sha256(payload).hexdigest()
    assert copied["blob"] == f"{started['id']}/files/000"


def test_ingest_that_keeps_failing_reads_failed_with_a_problem(app_host: AppHost) -> None:
    with run_peer([503]) as dead:
        started = json_of(app_host.start("ingest", {"urls": [f"{dead.url}/gone"]}))
        final = app_host.wait_for(started["id"], timeout=30)
        attempts = len(dead.requests)
    assert final["status"] == "Failed"
    error = final["error"]
    assert error["status"] == 422
    assert error["title"] and error["type"]
    assert "503" in error["detail"]
    assert error["message"] == error["detail"]
    assert attempts == 4

    monitor = app_host.http.get(started["operationUri"])
    assert monitor.status_code == 422
    assert json_of(monitor)["detail"] == error["detail"]
    result = app_host.http.get(started["resultUri"])
    assert result.status_code == 404


def test_ingest_does_not_retry_a_404(app_host: AppHost) -> None:
    with run_peer([404]) as missing:
        started = json_of(app_host.start("ingest", {"urls": [f"{missing.url}/nothing"]}))
        final = app_host.wait_for(started["id"], timeout=30)
        assert len(missing.requests) == 1
    assert final["status"] == "Failed"
    assert "HTTP 404" in final["error"]["detail"]


def test_progress_is_reported_while_partitions_finish(app_host: AppHost) -> None:
    started = json_of(app_host.start("report", {"rows": 400_000, "partitions": 16}))
    fractions: list[float] = []

    def finished() -> bool:
        body = app_host.http.get(started["operationUri"], params={"redirect": "false"}).json()
        fractions.append(body["progress"]["fraction"])
        return bool(body["status"] == "Succeeded")

    eventually(finished, timeout=60)
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_work_in_flight_survives_a_host_crash(tmp_path: Path, azurite: Azurite) -> None:
    with run_app_host(tmp_path, azurite) as host:
        started = json_of(host.start("report", {"rows": 300_000, "partitions": 8}))
        host.process.kill()  # SIGKILL: nothing gets to clean up
        host.process.start()  # same port, same task hub
        with httpx.Client(timeout=30) as fresh:
            restarted = replace(host, http=fresh)
            final = restarted.wait_for(started["id"], timeout=60)
            assert final["status"] == "Succeeded"
            report = fresh.get(started["resultUri"]).json()
    assert report["rows"] == 300_000
    assert report["totals"]["count"] == 300_000
