"""End to end: writing results survives a Blob storage outage, and fails clearly beyond it.

Each outage test runs an Azurite of its own (the session's is shared by every other test)
and stops it under a running host. Azurite is stopped *before* the report starts: a start
without Idempotency-Key or callbackUrl writes nothing to storage, so the report's first
storage call is its result write, which therefore meets the outage every time. The
durable retry is shortened by its settings so the tests take seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import AppHost, eventually, json_of, run_app_host, run_peer
from tests.support.azurite import Azurite, run_azurite

pytestmark = pytest.mark.e2e

# Waits of 0.25, 0.5, 1, then 2 s between attempts; each attempt against a stopped storage
# takes ~3 s of the SDK's own retries. 30 attempts outlast any outage these tests make.
RIDE_OUT = {"OPS_RESULT_WRITE_RETRY_SECONDS": "0.25", "OPS_RESULT_WRITE_ATTEMPTS": "30"}
# The outage lasts until this many attempts have failed (about 15 s).
FAILED_ATTEMPTS_DURING_OUTAGE = 4


class StoppableAzurite:
    """An Azurite of the test's own that can be stopped and restarted on the same port
    and folder (its blobs survive the restart)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._running: ExitStack | None = None
        self.azurite = self.start()

    def start(self) -> Azurite:
        """Start it (again, on the port it had)."""
        assert self._running is None
        port = self.azurite.blob_port if hasattr(self, "azurite") else None
        stack = ExitStack()
        azurite = stack.enter_context(run_azurite(self._folder, port=port))
        self._running = stack
        return azurite

    def stop(self) -> None:
        """Stop it; connections to its port are refused until `start`."""
        if self._running is not None:
            self._running.close()
            self._running = None


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[StoppableAzurite]:
    storage = StoppableAzurite(tmp_path / "azurite")
    try:
        yield storage
    finally:
        storage.stop()


def failed_attempts(host: AppHost, started: dict[str, Any], activity: str) -> list[str]:
    """The reasons of the failed attempts of `activity`, from the instance's history."""
    answer = host.http.get(
        started["statusQueryGetUri"], params={"showHistory": "true", "showInput": "false"}
    )
    assert answer.status_code in (200, 202), answer.text
    return [
        str(event.get("Reason"))
        for event in answer.json().get("historyEvents") or []
        if event["EventType"] == "TaskFailed" and event.get("FunctionName") == activity
    ]


def test_report_rides_out_a_storage_outage_and_succeeds(
    tmp_path: Path, own_azurite: StoppableAzurite
) -> None:
    with run_app_host(tmp_path, own_azurite.azurite, **RIDE_OUT) as host:
        own_azurite.stop()
        response = host.start("report", {"rows": 4321, "partitions": 3})
        assert response.status_code == 202, response.text
        started = json_of(response)

        failures = eventually(
            lambda: (
                reasons
                if len(reasons := failed_attempts(host, started, "report_write"))
                >= FAILED_ATTEMPTS_DURING_OUTAGE
                else None
            ),
            timeout=40,
        )
        assert all("Blob storage was unavailable" in reason for reason in failures), failures
        # Reading the status needs no storage: the client keeps polling as usual.
        status = host.http.get(started["statusUri"])
        assert status.status_code == 200
        assert status.json()["status"] == "Running"
        assert "Retry-After" in status.headers

        own_azurite.start()
        final = host.wait_for(started["id"], timeout=30)

        assert final["status"] == "Succeeded", final
        result = host.http.get(started["resultUri"])
        assert result.status_code == 200
        report = result.json()
        assert report["operationId"] == started["id"]
        assert report["rows"] == 4321
        assert report["partitions"] == 3
        assert report["totals"]["count"] == 4321
        csv_result = host.http.get(started["resultUri"], headers={"Accept": "text/csv"})
        assert csv_result.status_code == 200
        assert csv_result.text.startswith("category,count,sum,min,max,mean\n")


def test_storage_down_beyond_the_retry_budget_fails_the_report_clearly(
    tmp_path: Path, own_azurite: StoppableAzurite
) -> None:
    with run_app_host(
        tmp_path,
        own_azurite.azurite,
        OPS_RESULT_WRITE_RETRY_SECONDS="0.25",
        OPS_RESULT_WRITE_ATTEMPTS="2",
    ) as host:
        own_azurite.stop()
        started = json_of(host.start("report", {"rows": 100, "partitions": 2}))

        final = host.wait_for(started["id"], timeout=30)

        assert final["status"] == "Failed", final
        assert len(failed_attempts(host, started, "report_write")) == 2
        monitor = host.http.get(started["operationUri"])
        assert monitor.status_code == 422
        assert monitor.headers["Content-Type"].startswith("application/problem+json")
        problem = monitor.json()
        assert problem["detail"] == problem["message"]
        assert problem["detail"].startswith("writing the result gave up after 2 attempts in ")
        assert (
            f"Blob storage was unavailable while writing the report of {started['id']} "
            "(could not connect)" in problem["detail"]
        ), problem["detail"]


def test_a_refused_write_fails_at_once_without_burning_attempts(
    tmp_path: Path, azurite: Azurite
) -> None:
    # Not an outage: storage answers, and refuses (a container name it does not accept).
    # The default retry (8 attempts, ~80 s) would make a retried refusal fail slowly.
    with run_app_host(tmp_path, azurite, OPS_RESULTS_CONTAINER="Not_A_Valid_Name") as host:
        started = json_of(host.start("report", {"rows": 100, "partitions": 2}))

        final = host.wait_for(started["id"], timeout=30)

        assert final["status"] == "Failed", final
        assert failed_attempts(host, started, "report_write") == []
        detail = host.http.get(started["operationUri"]).json()["detail"]
        assert detail.startswith(
            f"writing the result failed: Blob storage refused to write the report of "
            f"{started['id']} (HTTP 400"
        ), detail


def test_ingest_rides_out_a_storage_outage_without_spending_the_source_attempts(
    tmp_path: Path, own_azurite: StoppableAzurite
) -> None:
    payload = b"ingested through an outage\n" * 100
    with (
        run_peer([200], payload=payload) as source,
        run_app_host(tmp_path, own_azurite.azurite, **RIDE_OUT) as host,
    ):
        own_azurite.stop()
        started = json_of(host.start("ingest", {"urls": [f"{source.url}/data.txt"]}))

        failures = eventually(
            lambda: (
                reasons
                if len(reasons := failed_attempts(host, started, "ingest_copy")) >= 2
                else None
            ),
            timeout=40,
        )
        # Every failed attempt is the storage outage: the source's own 4 attempts (1 s
        # apart) were not spent on it, or the operation would have failed by now.
        assert all("Blob storage was unavailable" in reason for reason in failures), failures

        own_azurite.start()
        final = host.wait_for(started["id"], timeout=30)

        assert final["status"] == "Succeeded", final
        manifest = host.http.get(started["resultUri"]).json()
        assert [(f["status"], f["bytes"]) for f in manifest["files"]] == [("copied", len(payload))]
