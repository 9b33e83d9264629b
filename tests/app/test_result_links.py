"""Unit and component tests of result delivery: the inline-or-redirect rules (pure), the
user delegation key cache (explicit clock, a stand-in for storage's key endpoint), and
account-key SAS URLs checked by real Azurite."""

from __future__ import annotations

import base64
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobServiceClient, UserDelegationKey

from operations.blobsas import (
    CLOCK_SKEW,
    AccountKeySigner,
    UserDelegationKeyCache,
    UserDelegationSigner,
)
from operations.blobstore import BlobStore, _sas_signer
from operations.errors import StorageConfigurationError
from operations.requests import BadRequest
from operations.result_delivery import (
    Delivery,
    choose_delivery,
    parse_redirect_choice,
    result_link_lifetime,
    served_content_type,
)
from tests.support.azurite import Azurite

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)


# ------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("raw", "choice"),
    [(None, None), ("true", True), ("TRUE", True), (" false ", False), ("False", False)],
)
def test_the_redirect_parameter_reads_true_false_or_absent(
    raw: str | None, choice: bool | None
) -> None:
    assert parse_redirect_choice(raw) is choice


@pytest.mark.parametrize("raw", ["", "yes", "1", "on", "true,false"])
def test_any_other_redirect_value_is_a_400_naming_the_parameter(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_redirect_choice(raw)
    assert caught.value.status == 400
    assert caught.value.slug == "invalid-query"
    assert caught.value.extra["errors"] == [
        {"field": "redirect", "detail": f"{raw!r} is not true or false"}
    ]


@pytest.mark.parametrize(
    ("size", "asked", "delivery"),
    [
        (100, None, Delivery.INLINE),  # at or below the threshold
        (1000, None, Delivery.INLINE),
        (1001, None, Delivery.REDIRECT),  # above it
        (10, True, Delivery.REDIRECT),  # asked for
        (5000, False, Delivery.INLINE),  # asked for inline, under the cap
        (8000, False, Delivery.INLINE),
    ],
)
def test_delivery_by_size_unless_the_client_chooses(
    size: int, asked: bool | None, delivery: Delivery
) -> None:
    assert choose_delivery(size, asked, redirect_above=1000, inline_max=8000) is delivery


def test_nothing_above_the_inline_cap_is_sent_inline() -> None:
    # Even when the threshold is set above the cap.
    assert choose_delivery(9000, None, redirect_above=10**9, inline_max=8000) is Delivery.REDIRECT
    with pytest.raises(BadRequest) as caught:
        choose_delivery(9000, False, redirect_above=1000, inline_max=8000)
    assert caught.value.status == 422
    assert caught.value.extra == {"size": 9000, "limit": 8000}
    assert "redirect=false" in caught.value.detail


def test_csv_is_served_with_its_charset_json_as_it_is() -> None:
    assert served_content_type("text/csv") == "text/csv; charset=utf-8"
    assert served_content_type("application/json") == "application/json"


def test_the_link_lifetime_setting_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPS_RESULT_LINK_SECONDS", raising=False)
    assert result_link_lifetime() == timedelta(seconds=600)
    monkeypatch.setenv("OPS_RESULT_LINK_SECONDS", "3600")
    assert result_link_lifetime() == timedelta(hours=1)
    for bad in ("59", "3601", "ten"):
        monkeypatch.setenv("OPS_RESULT_LINK_SECONDS", bad)
        with pytest.raises(ValueError, match="OPS_RESULT_LINK_SECONDS"):
            result_link_lifetime()


# ------------------------------------------------------------ user delegation keys


class KeyEndpoint:
    """Stands in for storage's Get User Delegation Key: records each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[datetime, datetime]] = []
        self._lock = threading.Lock()

    def __call__(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        with self._lock:
            self.requests.append((start, expiry))
            key = UserDelegationKey()
            key.signed_oid = "11111111-1111-1111-1111-111111111111"
            key.signed_tid = "22222222-2222-2222-2222-222222222222"
            key.signed_start = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            key.signed_expiry = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
            key.signed_service = "b"
            key.signed_version = "2025-01-05"
            key.value = base64.b64encode(f"key number {len(self.requests)}".encode()).decode()
            return key


def test_one_key_serves_every_link_until_it_would_expire_before_one() -> None:
    endpoint = KeyEndpoint()
    keys = UserDelegationKeyCache(endpoint)

    first = keys.key_valid_until(NOW, NOW + TEN_MINUTES)
    assert endpoint.requests == [(NOW - CLOCK_SKEW, NOW + timedelta(hours=1))]
    # 44 minutes later a 10-minute link still ends 5 minutes (the skew) before the key.
    later = NOW + timedelta(minutes=44)
    assert keys.key_valid_until(later, later + TEN_MINUTES) is first
    assert len(endpoint.requests) == 1
    # One more minute and it would not: a new key, starting (skewed) now.
    last = NOW + timedelta(minutes=46)
    assert keys.key_valid_until(last, last + TEN_MINUTES) is not first
    assert endpoint.requests[1] == (last - CLOCK_SKEW, last + timedelta(hours=1))


def test_a_key_lives_four_links_long_when_links_are_long() -> None:
    endpoint = KeyEndpoint()
    UserDelegationKeyCache(endpoint).key_valid_until(NOW, NOW + timedelta(hours=1))
    assert endpoint.requests == [(NOW - CLOCK_SKEW, NOW + timedelta(hours=4))]


def test_threads_signing_at_once_share_one_key_request() -> None:
    endpoint = KeyEndpoint()
    keys = UserDelegationKeyCache(endpoint)
    start = threading.Barrier(8)

    def sign(_: int) -> UserDelegationKey:
        start.wait()
        return keys.key_valid_until(NOW, NOW + TEN_MINUTES)

    with ThreadPoolExecutor(8) as pool:
        handed_out = {id(key) for key in pool.map(sign, range(8))}
    assert len(endpoint.requests) == 1
    assert len(handed_out) == 1


def test_a_user_delegation_sas_reads_one_blob_over_https_until_its_expiry() -> None:
    endpoint = KeyEndpoint()
    signer = UserDelegationSigner("acct", UserDelegationKeyCache(endpoint))
    query = signer.sign(
        "results",
        "op/result.csv",
        now=NOW,
        expiry=NOW + TEN_MINUTES,
        https_only=True,
        content_type="text/csv; charset=utf-8",
    )
    fields = {name: values[0] for name, values in parse_qs(query).items()}
    assert fields["sp"] == "r" and fields["sr"] == "b" and fields["spr"] == "https"
    assert fields["se"] == "2026-06-01T12:10:00Z"
    assert fields["skoid"] == "11111111-1111-1111-1111-111111111111"
    assert fields["ske"] == "2026-06-01T13:00:00Z"
    assert fields["rsct"] == "text/csv; charset=utf-8"
    assert "sig" in fields


def test_the_signer_follows_the_storage_credential() -> None:
    class Identity:
        def get_token(
            self,
            *scopes: str,
            claims: str | None = None,
            tenant_id: str | None = None,
            enable_cae: bool = False,
            **kwargs: Any,
        ) -> AccessToken:
            raise AssertionError("no token is needed to choose a signer")

    keyed = BlobServiceClient.from_connection_string(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;"
        "EndpointSuffix=core.windows.net"
    )
    assert isinstance(_sas_signer(keyed), AccountKeySigner)
    identity = BlobServiceClient("https://acct.blob.core.windows.net", credential=Identity())
    assert isinstance(_sas_signer(identity), UserDelegationSigner)
    sas_only = BlobServiceClient.from_connection_string(
        "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=x&sig=y"
    )
    with pytest.raises(StorageConfigurationError, match="AccountKey"):
        _sas_signer(sas_only)


# ------------------------------------------------------- account-key SAS on Azurite


@pytest.fixture
def store(azurite: Azurite) -> BlobStore:
    tag = uuid.uuid4().hex[:8]
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return BlobStore(service, f"results-{tag}", f"state-{tag}")


def test_an_account_key_link_reads_the_blob_on_azurite_and_dies_at_its_expiry(
    store: BlobStore, azurite: Azurite
) -> None:
    store.write_blob("op/result.csv", b"category,count\na,1\n", "text/csv")
    info = store.result_info("op/result.csv")
    assert info is not None
    assert (info.content_type, info.size) == ("text/csv", 19)

    fresh = store.result_read_url("op/result.csv", lifetime=TEN_MINUTES)
    assert fresh.startswith(f"{azurite.blob_endpoint}/{store.results.container_name}/op/")
    expired = store.result_read_url(
        "op/result.csv", lifetime=TEN_MINUTES, now=datetime.now(UTC) - timedelta(hours=1)
    )
    typed = store.result_read_url(
        "op/result.csv", lifetime=TEN_MINUTES, content_type="text/csv; charset=utf-8"
    )
    with httpx.Client() as stranger:
        read = stranger.get(fresh)
        refused = stranger.get(expired)
        retyped = stranger.get(typed)
    assert read.status_code == 200 and read.content == b"category,count\na,1\n"
    assert read.headers["Content-Type"] == "text/csv"
    assert refused.status_code == 403
    assert retyped.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert store.result_info("op/missing.csv") is None


def test_a_link_to_a_missing_blob_is_a_404_from_storage(store: BlobStore) -> None:
    link = store.result_read_url("op/none.json", lifetime=TEN_MINUTES)
    with httpx.Client() as stranger:
        assert stranger.get(link).status_code == 404
    assert urlsplit(link).path.endswith("/op/none.json")
