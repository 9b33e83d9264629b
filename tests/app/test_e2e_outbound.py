"""End to end over HTTP: the outbound policy on callbackUrl and ingest `urls`.

A host started WITHOUT OPS_OUTBOUND_ALLOW (production's policy) refuses loopback at the
edge when the URL spells it (400), and at fetch/POST time when a name resolves to it; the
shared `app_host` (started with loopback allowed, as `make run` is) reaches local peers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.storage.blob import BlobServiceClient

from tests.app.conftest import AppHost, eventually, json_of, run_app_host, run_peer
from tests.support.azurite import Azurite
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
POLICY_TEXT = "refused by the app's outbound policy"


@pytest.fixture(scope="module")
def strict_host(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[AppHost]:
    """The app with production's outbound policy: nothing but public addresses."""
    with run_app_host(tmp_path_factory.mktemp("strict"), azurite, OPS_OUTBOUND_ALLOW="") as host:
        yield host


def _invalid_fields(response: httpx.Response) -> dict[str, str]:
    """The 400 problem's `errors` as {field: detail}, after checking its shape."""
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == PROBLEM
    body = json_of(response)
    assert body["message"] == body["detail"]
    return {str(e["field"]): str(e["detail"]) for e in body["errors"]}


def test_literal_forbidden_addresses_are_refused_at_the_edge(strict_host: AppHost) -> None:
    port = free_port()
    callback = strict_host.start(
        "report", {"rows": 10, "callbackUrl": f"http://127.0.0.1:{port}/hook"}
    )
    errors = _invalid_fields(callback)
    assert list(errors) == ["callbackUrl"]
    assert "loopback" in errors["callbackUrl"] and "OPS_OUTBOUND_ALLOW" in errors["callbackUrl"]

    urls = [
        f"http://127.0.0.1:{port}/data",
        f"http://[::1]:{port}/data",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
        "https://example.com/fine",
    ]
    errors = _invalid_fields(strict_host.start("ingest", {"urls": urls}))
    assert list(errors) == ["urls/0", "urls/1", "urls/2", "urls/3"]
    assert all("OPS_OUTBOUND_ALLOW" in detail for detail in errors.values())


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://example.com:99999/hook",
        "http://example.com:port/hook",
        "gopher://example.com/",
        "http://user:secret@example.com/hook",
        "http://exa mple.com/",
    ],
)
def test_malformed_urls_are_400_never_500(strict_host: AppHost, url: str) -> None:
    assert list(_invalid_fields(strict_host.start("ingest", {"urls": [url]}))) == ["urls/0"]
    callback = strict_host.start("report", {"rows": 10, "callbackUrl": url})
    assert list(_invalid_fields(callback)) == ["callbackUrl"]


def test_ingest_of_a_name_resolving_to_loopback_fails_with_the_policy_message(
    strict_host: AppHost,
) -> None:
    with run_peer([200], b"secret data") as peer:
        url = f"http://localhost:{peer.url.rsplit(':', 1)[1]}/data"
        started = json_of(strict_host.start("ingest", {"urls": [url]}))
        final = strict_host.wait_for(started["id"], timeout=30)
        assert peer.requests == []
    assert final["status"] == "Failed"
    detail = final["error"]["detail"]
    assert POLICY_TEXT in detail and "OPS_OUTBOUND_ALLOW" in detail
    assert "localhost" in detail


def test_with_the_setting_ingest_reaches_a_local_source(app_host: AppHost) -> None:
    with run_peer([200], b"local data") as peer:
        url = f"http://localhost:{peer.url.rsplit(':', 1)[1]}/data"
        started = json_of(app_host.start("ingest", {"urls": [url]}))
        final = app_host.wait_for(started["id"], timeout=30)
    assert final["status"] == "Succeeded", final
    assert len(peer.requests) == 1
    manifest = app_host.http.get(started["resultUri"]).json()
    assert manifest["files"][0]["bytes"] == len(b"local data")


def _abandoned(azurite: Azurite, host: AppHost, operation_id: str) -> dict[str, Any] | None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    state = service.get_container_client(host.settings["OPS_STATE_CONTAINER"])
    blob = state.get_blob_client(f"webhooks-abandoned/{operation_id}.json")
    if not blob.exists():
        return None
    entry: dict[str, Any] = json.loads(blob.download_blob().readall())
    return entry


def test_a_webhook_to_a_loopback_receiver_is_abandoned_with_the_policy_reason(
    strict_host: AppHost, azurite: Azurite
) -> None:
    with run_peer([200]) as receiver:
        callback = f"http://localhost:{receiver.url.rsplit(':', 1)[1]}/hook"
        started = json_of(strict_host.start("report", {"rows": 10, "callbackUrl": callback}))
        assert strict_host.wait_for(started["id"])["status"] == "Succeeded"
        entry = eventually(lambda: _abandoned(azurite, strict_host, started["id"]), timeout=30)
        assert receiver.requests == []
    assert POLICY_TEXT in entry["lastError"]
    # Policy, not luck: given up at the first refusal, not retried with backoff.
    assert entry["attempts"] == 1
