"""End to end over HTTP: signed webhooks (live, flaky and dead receivers) and expiry (410)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from tests.app.conftest import WEBHOOK_SECRET, AppHost, eventually, json_of, run_app_host, run_peer
from tests.app.openapi_conformance import Conformance, load_spec
from tests.support.azurite import Azurite
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


def _verify(headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does, written independently of the app's code."""
    fields = dict(part.split("=", 1) for part in headers["X-Ops-Signature"].split(","))
    timestamp = int(fields["t"])
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return abs(time.time() - timestamp) < 300 and hmac.compare_digest(expected, fields["v1"])


def test_webhook_delivers_the_final_status_signed(app_host: AppHost) -> None:
    with run_peer([200]) as receiver:
        started = json_of(
            app_host.start(
                "report", {"rows": 100, "partitions": 2, "callbackUrl": f"{receiver.url}/hook"}
            )
        )
        eventually(lambda: receiver.requests, timeout=20)
        (delivery,) = receiver.requests[:1]
    assert delivery.path == "/hook"
    assert _verify(delivery.headers, delivery.body)
    assert not _verify(delivery.headers, delivery.body + b" ")
    assert delivery.headers["X-Ops-Delivery"] == started["id"]
    payload = json.loads(delivery.body)
    spec = Conformance(load_spec())
    spec.validate({"$ref": "#/components/schemas/WebhookPayload"}, payload)
    assert payload["event"] == "operation.ended"
    assert payload["operation"]["id"] == started["id"]
    assert payload["operation"]["status"] == "Succeeded"
    assert payload["operation"]["resultUri"] == started["resultUri"]


def test_webhook_reports_a_cancel(app_host: AppHost) -> None:
    with run_peer([200]) as receiver:
        started = json_of(
            app_host.start(
                "approval",
                {"subject": "s", "timeoutSeconds": 600, "callbackUrl": receiver.url},
            )
        )
        app_host.wait_for(started["id"], {"Running"})
        assert app_host.http.delete(started["operationUri"]).status_code == 202
        eventually(lambda: receiver.requests, timeout=20)
        payload = json.loads(receiver.requests[0].body)
    assert payload["operation"]["status"] == "Canceled"


def test_webhook_is_retried_with_backoff_until_the_receiver_answers(app_host: AppHost) -> None:
    with run_peer([500, 503, 200]) as receiver:
        started = json_of(
            app_host.start("report", {"rows": 10, "partitions": 1, "callbackUrl": receiver.url})
        )
        eventually(lambda: len(receiver.requests) >= 3, timeout=30)
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert all(b["operation"]["id"] == started["id"] for b in bodies)
    assert all(_verify(r.headers, r.body) for r in receiver.requests)


def test_a_dead_receiver_neither_blocks_nor_fails_the_operation(
    app_host: AppHost, azurite: Azurite
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    started = json_of(app_host.start("report", {"rows": 100, "partitions": 2, "callbackUrl": dead}))
    final = app_host.wait_for(started["id"], timeout=20)
    assert final["status"] == "Succeeded"
    assert app_host.http.get(started["resultUri"]).status_code == 200

    # The delivery failed and was rescheduled in the outbox, with the reason recorded.
    state = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = state.get_container_client(app_host.settings["OPS_STATE_CONTAINER"])

    def failed_attempt() -> dict[str, object] | None:
        blob = container.get_blob_client(f"webhooks/{started['id']}.json")
        if not blob.exists():
            return None
        entry: dict[str, object] = json.loads(blob.download_blob().readall())
        return entry if int(str(entry["attempts"])) >= 1 else None

    entry = eventually(failed_attempt, timeout=20)
    assert "could not be reached" in str(entry["lastError"])


def test_a_webhook_is_abandoned_after_its_last_attempt(tmp_path: Path, azurite: Azurite) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    with run_app_host(tmp_path, azurite, OPS_WEBHOOK_MAX_ATTEMPTS="2") as host:
        started = json_of(host.start("report", {"rows": 10, "callbackUrl": dead}))
        assert host.wait_for(started["id"])["status"] == "Succeeded"
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        state = service.get_container_client(host.settings["OPS_STATE_CONTAINER"])
        abandoned = state.get_blob_client(f"webhooks-abandoned/{started['id']}.json")
        eventually(abandoned.exists, timeout=30)
        entry = json.loads(abandoned.download_blob().readall())
        assert entry["attempts"] == 2
        assert not state.get_blob_client(f"webhooks/{started['id']}.json").exists()


def test_callback_url_without_a_secret_is_refused(tmp_path: Path, azurite: Azurite) -> None:
    with run_app_host(tmp_path, azurite, OPS_WEBHOOK_SECRET="") as host:
        response = host.start("report", {"callbackUrl": "https://example.com/hook"})
    assert response.status_code == 400
    assert json_of(response)["errors"][0]["field"] == "callbackUrl"


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


# ------------------------------------------------------------------- storage down


def test_storage_down_gives_problems_and_failed_operations(tmp_path: Path) -> None:
    dead = Azurite(blob_port=free_port())  # nothing listens there
    with run_app_host(tmp_path, dead, OPS_STORAGE_RETRIES="0") as host:
        keyed = host.start("report", {"rows": 10}, **{"Idempotency-Key": "k-storage-down"})
        assert keyed.status_code == 503
        assert keyed.headers["Content-Type"] == "application/problem+json"
        assert keyed.headers["Retry-After"]

        started = host.start("report", {"rows": 10, "partitions": 1})
        assert started.status_code == 202
        final = host.wait_for(json_of(started)["id"], timeout=30)
        assert final["status"] == "Failed"
        assert final["error"]["detail"]
