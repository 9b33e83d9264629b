"""Component tests of the blob store and the idempotency store against real Azurite."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from operations.blobstore import BlobStore
from operations.errors import IdempotencyConflictError
from operations.idempotency import IdempotencyClaim, IdempotencyStore
from tests.support.azurite import Azurite

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(azurite: Azurite) -> BlobStore:
    tag = uuid.uuid4().hex[:8]
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return BlobStore(service, f"results-{tag}", f"state-{tag}")


def test_results_stream_in_and_out_with_their_content_type(store: BlobStore) -> None:
    chunks = [bytes([i]) * 100_000 for i in range(5)]
    written = store.write_blob("op1/files/000", iter(chunks), "text/plain")
    assert written["bytes"] == 500_000
    blob = store.open_result("op1/files/000")
    assert blob is not None
    assert blob.content_type == "text/plain"
    assert blob.size == 500_000
    assert b"".join(blob.chunks) == b"".join(chunks)
    assert store.result_etag("op1/files/000") == blob.etag
    assert store.open_result("op1/missing") is None


def test_rewriting_a_result_overwrites_and_deleting_an_operation_clears_its_prefix(
    store: BlobStore,
) -> None:
    store.write_blob("op2/result.json", b"{}", "application/json")
    first = store.result_etag("op2/result.json")
    store.write_blob("op2/result.json", b'{"v": 2}', "application/json")
    assert store.result_etag("op2/result.json") != first
    store.write_blob("op22/result.json", b"{}", "application/json")
    assert store.delete_operation_blobs("op2") == 1
    assert store.open_result("op2/result.json") is None
    assert store.open_result("op22/result.json") is not None


def test_records_are_created_once_and_replaced_only_at_their_etag(store: BlobStore) -> None:
    assert store.create_record("x/a.json", {"v": 1})
    assert not store.create_record("x/a.json", {"v": 2})
    record = store.read_record("x/a.json")
    assert record is not None and record.body == {"v": 1}
    assert store.replace_record("x/a.json", {"v": 3}, record.etag)
    assert not store.replace_record("x/a.json", {"v": 4}, record.etag)
    assert store.list_records("x/") == ["x/a.json"]
    store.delete_record("x/a.json")
    store.delete_record("x/a.json")
    assert store.read_record("x/a.json") is None


def _claim(
    keys: IdempotencyStore, key: str, body: dict[str, int], now: datetime = NOW
) -> IdempotencyClaim:
    return keys.claim(
        key,
        fingerprint=str(sorted(body.items())),
        kind="report",
        operation_id=uuid.uuid4().hex,
        payload={"input": body},
        now=now,
    )


def test_racing_claims_of_one_key_bind_one_operation(store: BlobStore) -> None:
    keys = IdempotencyStore(store, timedelta(hours=1))
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: _claim(keys, "k1", {"rows": 1}), range(8)))
    assert sum(1 for c in claims if c.is_new) == 1
    assert len({c.record.operation_id for c in claims}) == 1


def test_a_reused_key_with_another_body_conflicts_until_it_expires(store: BlobStore) -> None:
    keys = IdempotencyStore(store, timedelta(minutes=5))
    first = _claim(keys, "k2", {"rows": 1})
    with pytest.raises(IdempotencyConflictError):
        _claim(keys, "k2", {"rows": 2})
    later = _claim(keys, "k2", {"rows": 2}, NOW + timedelta(minutes=6))
    assert later.is_new
    assert later.record.operation_id != first.record.operation_id
    assert keys.delete_expired(NOW + timedelta(minutes=20)) == 1
