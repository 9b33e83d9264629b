"""End to end: large results leave by a 302 to a read-only SAS URL of their blob on Azurite.

One app host with tiny limits, so real results cross them: an approval's outcome (~235
bytes, plus its subject) is below OPS_RESULT_REDIRECT_BYTES with a short subject and above
it with a long one; a report's CSV (~300 bytes) is above it; the report's JSON (~1,400
bytes) is also above OPS_RESULT_INLINE_MAX_BYTES.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.storage.blob import BlobServiceClient

from operations.blobstore import BlobStore, tombstone_blob_name
from opsclient import OperationsClient
from tests.app.conftest import AppHost, json_of, run_app_host
from tests.app.openapi_conformance import Conformance, load_spec
from tests.support.azurite import Azurite

pytestmark = pytest.mark.e2e

REDIRECT_ABOVE = 260
INLINE_MAX = 1000
LINK_SECONDS = 300
FORMATS = ["application/json", "text/csv"]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[AppHost]:
    with run_app_host(
        tmp_path_factory.mktemp("redirect"),
        azurite,
        OPS_RESULT_REDIRECT_BYTES=str(REDIRECT_ABOVE),
        OPS_RESULT_INLINE_MAX_BYTES=str(INLINE_MAX),
        OPS_RESULT_LINK_SECONDS=str(LINK_SECONDS),
    ) as app:
        yield app


@pytest.fixture(scope="module")
def report(host: AppHost) -> dict[str, Any]:
    """A finished report (the 202 body); its results are above the redirect threshold."""
    started = json_of(host.start("report", {"rows": 5000, "partitions": 3}))
    assert host.wait_for(started["id"])["status"] == "Succeeded"
    return started


def _approved(host: AppHost, subject: str) -> dict[str, Any]:
    started = json_of(host.start("approval", {"subject": subject, "timeoutSeconds": 600}))
    host.wait_for(started["id"], {"Running"})
    decided = host.http.post(
        f"{started['operationUri']}/approve", json={"approved": True, "by": "ana"}
    )
    assert decided.status_code == 202, decided.text
    assert host.wait_for(started["id"])["status"] == "Succeeded"
    return started


@pytest.fixture(scope="module")
def approval(host: AppHost) -> dict[str, Any]:
    """A decided approval (the 202 body); its outcome is below the redirect threshold."""
    return _approved(host, "s")


@pytest.fixture(scope="module")
def long_approval(host: AppHost) -> dict[str, Any]:
    """A decided approval whose outcome is between the redirect threshold and the cap."""
    return _approved(host, "a long subject " * 25)


def _inline(host: AppHost, result_uri: str, accept: str) -> httpx.Response:
    response = host.http.get(result_uri, params={"redirect": "false"}, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    return response


def _redirect(host: AppHost, url: str, **options: Any) -> str:
    """The SAS URL a result answer redirects to, after checking the redirect itself."""
    response = host.http.get(url, **options)
    assert response.status_code == 302, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Vary"] == "Accept"
    location = response.headers["Location"]
    assert location.startswith("http://127.0.0.1:"), location
    return location


def _sas(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def test_a_result_below_the_threshold_stays_inline(host: AppHost, approval: dict[str, Any]) -> None:
    response = host.http.get(approval["resultUri"])
    assert response.status_code == 200
    assert len(response.content) <= REDIRECT_ABOVE
    assert response.json()["outcome"] == "approved"
    assert "Location" not in response.headers


@pytest.mark.parametrize("accept", FORMATS)
def test_above_the_threshold_the_result_is_a_sas_url_on_azurite_anyone_can_read(
    host: AppHost,
    azurite: Azurite,
    report: dict[str, Any],
    long_approval: dict[str, Any],
    accept: str,
) -> None:
    # The report's JSON is over the inline cap: compare JSON on the long approval.
    operation = long_approval if accept == "application/json" else report
    inline = _inline(host, operation["resultUri"], accept)
    assert REDIRECT_ABOVE < len(inline.content) <= INLINE_MAX

    location = _redirect(host, operation["resultUri"], headers={"Accept": accept})

    # Storage's own origin and the host's container: the bytes never pass through the app.
    container = host.settings["OPS_RESULTS_CONTAINER"]
    extension = "json" if accept == "application/json" else "csv"
    assert urlsplit(location).path == (
        f"/{urlsplit(azurite.blob_endpoint).path.strip('/')}/{container}/"
        f"{operation['id']}/result.{extension}"
    )
    with httpx.Client() as stranger:  # no function key, no headers, no cookies
        downloaded = stranger.get(location)
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == inline.content
    assert downloaded.headers["Content-Type"] == inline.headers["Content-Type"]
    assert downloaded.headers["ETag"] == inline.headers["ETag"]


def test_the_sas_is_read_only_for_one_blob_and_expires_after_the_link_lifetime(
    host: AppHost, report: dict[str, Any]
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    location = _redirect(host, report["resultUri"])
    after = datetime.now(UTC)
    sas = _sas(location)
    assert sas["sp"] == "r" and sas["sr"] == "b"
    expiry = datetime.strptime(sas["se"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    lifetime = timedelta(seconds=LINK_SECONDS)
    assert before + lifetime <= expiry <= after + lifetime

    with httpx.Client() as stranger:
        overwrite = stranger.put(location, content=b"{}", headers={"x-ms-blob-type": "BlockBlob"})
        delete = stranger.delete(location)
        sibling = stranger.get(location.replace("/result.json?", "/result.csv?"))
        still_there = stranger.get(location)
    assert overwrite.status_code == 403
    assert delete.status_code == 403
    assert sibling.status_code == 403  # the signature covers one blob name
    assert still_there.status_code == 200
    assert still_there.json()["rows"] == 5000


def test_the_client_chooses_with_the_redirect_parameter(
    host: AppHost, report: dict[str, Any], approval: dict[str, Any]
) -> None:
    small = _redirect(host, approval["resultUri"], params={"redirect": "TRUE"})
    with httpx.Client() as stranger:
        assert stranger.get(small).json()["outcome"] == "approved"

    csv_inline = host.http.get(
        report["resultUri"], params={"redirect": "false"}, headers={"Accept": "text/csv"}
    )
    assert csv_inline.status_code == 200
    assert csv_inline.headers["Content-Type"] == "text/csv; charset=utf-8"


def test_inline_is_refused_above_the_hard_cap(host: AppHost, report: dict[str, Any]) -> None:
    refused = host.http.get(report["resultUri"], params={"redirect": "false"})
    assert refused.status_code == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    body = json_of(refused)
    assert body["type"] == "urn:durable-ops:problem:result-too-large-inline"
    assert body["limit"] == INLINE_MAX and body["size"] > INLINE_MAX
    assert body["message"] == body["detail"]
    # Without the parameter the same result redirects, whatever its size.
    _redirect(host, report["resultUri"])


def test_if_none_match_answers_304_before_any_redirect(
    host: AppHost, report: dict[str, Any]
) -> None:
    location = _redirect(host, report["resultUri"], headers={"Accept": "text/csv"})
    with httpx.Client() as stranger:
        etag = stranger.get(location).headers["ETag"]
    for params in ({}, {"redirect": "true"}):
        response = host.http.get(
            report["resultUri"],
            params=params,
            headers={"Accept": "text/csv", "If-None-Match": etag},
        )
        assert response.status_code == 304
        assert response.headers["ETag"] == etag
        assert "Location" not in response.headers


def test_the_link_carries_no_function_key(host: AppHost, report: dict[str, Any]) -> None:
    # In Azure resultUri carries the caller's ?code=; the storage URL must not.
    location = _redirect(host, report["resultUri"], params={"code": "the-function-key"})
    assert "code" not in _sas(location)
    assert "the-function-key" not in location


@pytest.mark.parametrize("value", ["yes", "", "1", "true,false"])
def test_a_bad_redirect_value_is_a_400_problem(
    host: AppHost, report: dict[str, Any], value: str
) -> None:
    response = host.http.get(report["resultUri"], params={"redirect": value})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    body = json_of(response)
    assert body["type"] == "urn:durable-ops:problem:invalid-query"
    assert body["message"] == body["detail"] and "redirect" in body["message"]
    assert body["errors"][0]["field"] == "redirect"


def test_missing_unready_expired_and_unacceptable_results_answer_as_before(
    host: AppHost, azurite: Azurite, report: dict[str, Any]
) -> None:
    unknown = host.http.get(f"{host.api}/{uuid.uuid4().hex}/result", params={"redirect": "true"})
    assert unknown.status_code == 404
    assert json_of(unknown)["type"] == "urn:durable-ops:problem:operation-not-found"

    waiting = json_of(host.start("approval", {"subject": "later", "timeoutSeconds": 600}))
    not_ready = host.http.get(waiting["resultUri"], params={"redirect": "true"})
    assert not_ready.status_code == 404
    assert json_of(not_ready)["type"] == "urn:durable-ops:problem:result-not-ready"
    host.http.delete(waiting["operationUri"])

    expired_id = uuid.uuid4().hex
    store = BlobStore(
        BlobServiceClient.from_connection_string(azurite.connection_string),
        host.settings["OPS_RESULTS_CONTAINER"],
        host.settings["OPS_STATE_CONTAINER"],
    )
    store.create_record(tombstone_blob_name(expired_id), {"expiredAt": "2026-01-01T00:00:00Z"})
    gone = host.http.get(f"{host.api}/{expired_id}/result", params={"redirect": "true"})
    assert gone.status_code == 410
    assert gone.headers["Content-Type"] == "application/problem+json"

    unacceptable = host.http.get(
        report["resultUri"], params={"redirect": "true"}, headers={"Accept": "image/png"}
    )
    assert unacceptable.status_code == 406
    assert json_of(unacceptable)["message"]


def test_opsclient_result_follows_the_redirect_to_the_same_json(
    host: AppHost, report: dict[str, Any], long_approval: dict[str, Any]
) -> None:
    inline_json = _inline(host, long_approval["resultUri"], "application/json").json()
    inline_csv = _inline(host, report["resultUri"], "text/csv").text
    with httpx.Client() as stranger:
        report_json = stranger.get(_redirect(host, report["resultUri"])).json()
    with OperationsClient(host.url) as client:
        assert client.result(long_approval["id"]) == inline_json
        assert client.result(report["id"]) == report_json
        assert client.result(report["id"], accept="text/csv") == inline_csv
    assert report_json["rows"] == 5000


def test_the_redirect_answers_match_docs_openapi(host: AppHost, report: dict[str, Any]) -> None:
    conformance = Conformance(load_spec())
    url = report["resultUri"]
    conformance.check(host.http.get(url))
    conformance.check(host.http.get(url, params={"redirect": "false"}))
    conformance.check(host.http.get(url, params={"redirect": "maybe"}))
    conformance.check(
        host.http.get(url, params={"redirect": "false"}, headers={"Accept": "text/csv"})
    )
    assert {status for _, _, status in conformance.checked} == {302, 422, 400, 200}
