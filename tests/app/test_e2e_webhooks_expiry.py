"""End to end over HTTP: expiry (410, blobs and histories gone) and storage outages.

The webhook tests are in test_e2e_webhooks.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from tests.app.conftest import AppHost, eventually, json_of, run_app_host, run_peer
from tests.app.openapi_conformance import Conformance, load_spec
from tests.support.azurite import Azurite
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


# ------------------------------------------------------------------- expiry


@pytest.fixture(scope="module")
def expiring_host(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[AppHost]:
    """The app with a 1-second TTL and the expiry timer firing every second."""
    with run_app_host(
        tmp_path_factory.mktemp("expiring"),
        azurite,
        OPS_OPERATION_TTL_SECONDS="1",
        OPS_PURGE_SCHEDULE="*/1 * * * * *",
    ) as host:
        yield host


def test_expired_operation_answers_410_and_its_blobs_are_gone(
    expiring_host: AppHost, azurite: Azurite
) -> None:
    started = json_of(expiring_host.start("report", {"rows": 100, "partitions": 2}))

    def gone() -> bool:
        status = expiring_host.http.get(started["operationUri"]).status_code
        assert status in (200, 303, 410)
        return status == 410

    eventually(gone, timeout=30)
    spec = Conformance(load_spec())
    status = spec.check(expiring_host.http.get(started["operationUri"]))
    assert json_of(status)["expiredAt"]
    assert spec.check(expiring_host.http.get(started["resultUri"])).status_code == 410
    assert spec.check(expiring_host.http.delete(started["operationUri"])).status_code == 410
    approve = {"approved": True, "by": "late"}
    late = expiring_host.http.post(f"{started['operationUri']}/approve", json=approve)
    assert spec.check(late).status_code == 410
    # The history is purged: the built-in status URL no longer knows the instance.
    assert expiring_host.http.get(started["statusQueryGetUri"]).status_code == 404

    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    results = blobs.get_container_client(expiring_host.settings["OPS_RESULTS_CONTAINER"])
    assert list(results.list_blobs(name_starts_with=f"{started['id']}/")) == []


def test_running_operations_do_not_expire(expiring_host: AppHost) -> None:
    running = json_of(
        expiring_host.start("approval", {"subject": "keep me", "timeoutSeconds": 600})
    )
    expiring_host.wait_for(running["id"], {"Running"})
    finished = json_of(expiring_host.start("report", {"rows": 10, "partitions": 1}))
    # Once the finished one is gone, expiry has run after the running one passed its TTL.
    eventually(
        lambda: expiring_host.http.get(finished["operationUri"]).status_code == 410, timeout=30
    )
    status = expiring_host.http.get(running["operationUri"])
    assert status.status_code == 200
    assert status.json()["status"] == "Running"
    expiring_host.http.delete(running["operationUri"])


def test_expiry_purges_the_webhook_delivery_too(expiring_host: AppHost) -> None:
    with run_peer([200]) as receiver:
        started = json_of(
            expiring_host.start(
                "report", {"rows": 10, "partitions": 1, "callbackUrl": receiver.url}
            )
        )
        eventually(lambda: receiver.requests, timeout=20)
    delivery = started["statusQueryGetUri"].replace(started["id"], f"webhook-{started['id']}")
    assert expiring_host.http.get(delivery).status_code == 200
    eventually(
        lambda: expiring_host.http.get(started["operationUri"]).status_code == 410, timeout=30
    )
    # The tombstone comes first (410 from then on); the purges follow it.
    eventually(lambda: expiring_host.http.get(delivery).status_code == 404, timeout=30)


# ------------------------------------------------------------------- storage down


def test_storage_down_gives_problems_and_failed_operations(tmp_path: Path) -> None:
    dead = Azurite(blob_port=free_port())  # nothing listens there
    # One attempt at writing the result: the default durable retry would wait ~80 s.
    with run_app_host(
        tmp_path, dead, OPS_STORAGE_RETRIES="0", OPS_RESULT_WRITE_ATTEMPTS="1"
    ) as host:
        keyed = host.start("report", {"rows": 10}, **{"Idempotency-Key": "k-storage-down"})
        assert keyed.status_code == 503
        assert keyed.headers["Content-Type"] == "application/problem+json"
        assert keyed.headers["Retry-After"]

        started = host.start("report", {"rows": 10, "partitions": 1})
        assert started.status_code == 202
        final = host.wait_for(json_of(started)["id"], timeout=30)
        assert final["status"] == "Failed"
        assert final["error"]["detail"]
