"""opsclient against the real app: durablehost as a process, Azurite behind it, real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from opsclient import (
    AsyncOperationsClient,
    HTTPStatusError,
    OperationAlreadyFinished,
    OperationCanceled,
    OperationFailed,
    OperationsClient,
    OperationStatus,
    PollingPolicy,
    Progress,
    RunState,
)
from tests.opsclient.conftest import REPO, WEBHOOK_SECRET, RunningApp
from tests.opsclient.fake_api import serve_fake_api

pytestmark = pytest.mark.e2e

# The app asks for Retry-After: 1; polling faster keeps the tests short and shows the cap.
QUICK = PollingPolicy(min_interval=0.05, max_interval=0.2, default_interval=0.1)
WAIT = 60.0


def client_for(app: RunningApp) -> OperationsClient:
    return OperationsClient(app.url, polling=QUICK)


def until(check: Any, timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something truthy (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value


def test_run_to_a_result(running_app: RunningApp) -> None:
    with client_for(running_app) as client:
        report = client.run("report", {"rows": 12_345, "partitions": 5}, timeout=WAIT)
        assert report["rows"] == 12_345
        operation = client.start("report", {"rows": 300, "partitions": 2})
        final = client.wait(operation, timeout=WAIT)
        assert final.state is RunState.SUCCEEDED
        assert final.result_url == operation.result_url
        table = client.result(final, accept="text/csv")
        assert isinstance(table, str) and table.count("\n") >= 2


async def test_the_async_client_gets_the_same_result(running_app: RunningApp) -> None:
    async with AsyncOperationsClient(running_app.url, polling=QUICK) as client:
        report = await client.run("report", {"rows": 12_345, "partitions": 5}, timeout=WAIT)
    with client_for(running_app) as sync_client:
        again = sync_client.run("report", {"rows": 12_345, "partitions": 5}, timeout=WAIT)
    per_run = {"operationId", "generatedAt"}
    assert report["rows"] == 12_345
    assert {k: v for k, v in report.items() if k not in per_run} == {
        k: v for k, v in again.items() if k not in per_run
    }


def test_a_durable_status_url_works_unchanged(running_app: RunningApp) -> None:
    with client_for(running_app) as client:
        operation = client.start("report", {"rows": 100, "partitions": 2})
        final = client.wait(operation.status_url, timeout=WAIT)  # the statusQueryGetUri
    assert final.runtime_status == "Completed"
    assert final.id == operation.id


def test_a_failing_operation(running_app: RunningApp) -> None:
    # ingest copies URLs into blobs; a 404 is permanent, so the operation fails.
    with (
        serve_fake_api() as peer,
        client_for(running_app) as client,
        pytest.raises(OperationFailed) as caught,
    ):
        client.run("ingest", {"urls": [f"{peer.url}/missing.csv"]}, timeout=WAIT)
    error = caught.value.error  # the monitor's 422 problem (contract: Failed -> 422)
    assert (error["status"], error["operationStatus"]) == (422, "Failed")
    assert "404" in str(error["detail"])
    assert "404" in str(caught.value)
    assert caught.value.status is not None and caught.value.status.state is RunState.FAILED


def test_cancel(running_app: RunningApp) -> None:
    with client_for(running_app) as client:
        operation = client.start("approval", {"subject": "opsclient e2e", "timeoutSeconds": 600})
        until(lambda: client.get(operation).state is RunState.RUNNING)
        client.cancel(operation)
        with pytest.raises(OperationCanceled):
            client.wait(operation, timeout=WAIT)
        with pytest.raises(OperationAlreadyFinished):
            client.cancel(operation)


def test_raise_event_decides_an_approval(running_app: RunningApp) -> None:
    with client_for(running_app) as client:
        operation = client.start("approval", {"subject": "opsclient e2e", "timeoutSeconds": 600})
        until(lambda: client.get(operation).state is RunState.RUNNING)
        client.raise_event(operation, "approve", {"approved": True, "by": "opsclient"})
        outcome = client.result(client.wait(operation, timeout=WAIT))
    assert outcome["outcome"] == "approved"


def test_progress_callbacks(running_app: RunningApp) -> None:
    seen: list[OperationStatus] = []
    eager = PollingPolicy(min_interval=0.02, max_interval=0.05, default_interval=0.05)
    with OperationsClient(running_app.url, polling=eager) as client:
        report = client.run(
            "report", {"rows": 400_000, "partitions": 16}, timeout=WAIT, on_progress=seen.append
        )
    assert report["rows"] == 400_000
    progress = [s.progress for s in seen]
    assert progress, "no progress was reported"
    assert all(isinstance(p, Progress) for p in progress)
    fractions = [p.fraction for p in progress if p is not None and p.fraction is not None]
    assert fractions == sorted(fractions)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    # Called on changes only: no two neighbours are the same.
    assert all(a != b for a, b in itertools.pairwise(progress))


def test_progress_of_a_waiting_approval_then_its_decision(running_app: RunningApp) -> None:
    messages: list[str | None] = []
    with client_for(running_app) as client:
        operation = client.start("approval", {"subject": "opsclient e2e", "timeoutSeconds": 600})

        def approve_once_waiting(status: OperationStatus) -> None:
            messages.append(status.progress.message if status.progress else None)
            if len(messages) == 1:
                client.raise_event(operation, "approve", {"approved": False, "by": "opsclient"})

        final = client.wait(operation, timeout=WAIT, on_progress=approve_once_waiting)
        outcome = client.result(final)
    assert outcome["outcome"] == "rejected"
    assert messages[0] is not None and "waiting for approval" in messages[0]
    assert len(messages) == len(set(messages))  # reported on changes only


def test_idempotent_start(running_app: RunningApp) -> None:
    key = str(uuid.uuid4())
    with client_for(running_app) as client:
        first = client.start("report", {"rows": 50, "partitions": 1}, idempotency_key=key)
        again = client.start("report", {"rows": 50, "partitions": 1}, idempotency_key=key)
        assert again.id == first.id
        with pytest.raises(HTTPStatusError) as caught:
            client.start("report", {"rows": 51, "partitions": 1}, idempotency_key=key)
        assert caught.value.status_code == 422
        client.wait(first, timeout=WAIT)
        listed = {s.id for s in client.list(kind="report", top=5)}
    assert first.id in listed


def test_callback_url_is_accepted_and_called(running_app: RunningApp) -> None:
    with serve_fake_api() as receiver, client_for(running_app) as client:
        operation = client.start(
            "report", {"rows": 20, "partitions": 1}, callback_url=f"{receiver.url}/hooks/done"
        )
        client.wait(operation, timeout=WAIT)
        headers, body = until(lambda: receiver.state.webhooks and receiver.state.webhooks[0])
    delivered = json.loads(body)["operation"]
    assert (delivered["id"], delivered["status"]) == (operation.id, "Succeeded")
    # X-Ops-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
    fields = dict(part.split("=", 1) for part in headers["x-ops-signature"].split(","))
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)


def test_the_cli_against_the_app(running_app: RunningApp) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opsclient", "run", "report", "--input", '{"rows": 777}'],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OPSCLIENT_BASE_URL": running_app.url},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 777
    refused = subprocess.run(
        [sys.executable, "-m", "opsclient", "run", "report", "--input", '{"rows": 0}'],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OPSCLIENT_BASE_URL": running_app.url},
        timeout=120,
    )
    assert refused.returncode == 2
    assert "rows" in refused.stderr
    assert "Traceback" not in refused.stderr
