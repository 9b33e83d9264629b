"""follow(), the transport and the poller against the real app (durablehost + Azurite)."""

from __future__ import annotations

import httpx
import pytest

from opsclient import (
    AsyncOperationsClient,
    AsyncOperationsTransport,
    OperationsClient,
    OperationsTransport,
    PollingPolicy,
)
from tests.opsclient.conftest import RunningApp

pytestmark = pytest.mark.e2e

QUICK = PollingPolicy(min_interval=0.05, max_interval=0.2, default_interval=0.1)
WAIT = 60.0
REPORT = {"rows": 2_000, "partitions": 2}


def test_follow_reads_the_status_resource_and_its_resource_location(
    running_app: RunningApp,
) -> None:
    with (
        httpx.Client(base_url=running_app.url) as http,
        OperationsClient(polling=QUICK) as ops,
    ):
        started = http.post("/api/operations/report", json=REPORT)
        assert started.status_code == 202
        report = ops.follow(started, timeout=WAIT)
        again = ops.follow(http.post("/api/operations/report", json=REPORT), timeout=WAIT)
    assert report["rows"] == again["rows"] == 2_000


def test_the_transport_turns_the_202_into_the_report(running_app: RunningApp) -> None:
    transport = OperationsTransport(timeout=WAIT, polling=QUICK)
    with httpx.Client(transport=transport, base_url=running_app.url) as http:
        response = http.post("/api/operations/report", json=REPORT)
        refused = http.post("/api/operations/report", json={"rows": "many"})
    assert response.status_code == 200
    assert response.json()["rows"] == 2_000
    assert response.headers["etag"]
    assert refused.status_code == 400  # not a 202: passed through
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_async_transport_and_poller(running_app: RunningApp) -> None:
    transport = AsyncOperationsTransport(timeout=WAIT, polling=QUICK)
    async with httpx.AsyncClient(transport=transport, base_url=running_app.url) as http:
        response = await http.post("/api/operations/report", json=REPORT)
    assert response.json()["rows"] == 2_000
    async with AsyncOperationsClient(running_app.url, polling=QUICK) as ops:
        poller = await ops.begin("report", REPORT, timeout=WAIT)
        token = poller.continuation_token()
        report = await poller
    assert report["rows"] == 2_000
    async with AsyncOperationsClient(running_app.url, polling=QUICK) as fresh:
        resumed = await fresh.poller_from_continuation_token(token, timeout=WAIT).result()
    assert resumed["rows"] == 2_000
