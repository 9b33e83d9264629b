"""Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-header) for starting operations.

The first request with a key claims it: a record `{fingerprint, kind, operationId, input,
expiresAt}` is created in Blob storage with If-None-Match: * (so two racing requests
cannot both win), and only then is the orchestration started under that operation id.
A later request with the same key and the same fingerprint (kind + canonical JSON body)
gets the same operation; a different fingerprint is a 422. A key is remembered for
OPS_IDEMPOTENCY_TTL_SECONDS after its first use; an expired record is replaced with an
ETag condition, and the expiry timer deletes old records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from operations.blobstore import BlobStore, idempotency_blob_name
from operations.errors import IdempotencyConflictError
from operations.monitor import iso_utc

__all__ = [
    "MAX_KEY_LENGTH",
    "IdempotencyClaim",
    "IdempotencyRecord",
    "IdempotencyStore",
    "check_key",
    "hash_key",
    "request_fingerprint",
]

MAX_KEY_LENGTH = 255


def check_key(key: str) -> str | None:
    """Why this header value is not a usable key, or None when it is."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters"
    if any(not (0x20 < ord(ch) < 0x7F) for ch in key):
        return "Idempotency-Key must be visible ASCII without spaces (e.g. a UUID)"
    return None


def hash_key(key: str) -> str:
    """The key as a blob-name-safe digest (keys are client text of any shape)."""
    return hashlib.sha256(key.encode()).hexdigest()


def request_fingerprint(kind: str, body: Any) -> str:
    """Same kind + same JSON (whatever the key order and whitespace) = same fingerprint."""
    canonical = json.dumps(
        {"kind": kind, "body": body}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What a key is bound to."""

    key_hash: str
    fingerprint: str
    kind: str
    operation_id: str
    input: dict[str, Any]
    created_at: datetime
    expires_at: datetime

    def is_expired(self, now: datetime) -> bool:
        """True once the key may be reused for a new operation."""
        return now >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "keyHash": self.key_hash,
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "operationId": self.operation_id,
            "input": self.input,
            "createdAt": iso_utc(self.created_at),
            "expiresAt": iso_utc(self.expires_at),
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> IdempotencyRecord:
        """Read the stored form back."""
        return cls(
            key_hash=str(body["keyHash"]),
            fingerprint=str(body["fingerprint"]),
            kind=str(body["kind"]),
            operation_id=str(body["operationId"]),
            input=dict(body.get("input") or {}),
            created_at=_parse_utc(body["createdAt"]),
            expires_at=_parse_utc(body["expiresAt"]),
        )


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """The record in force for a key, and whether this request created it."""

    record: IdempotencyRecord
    is_new: bool


class IdempotencyStore:
    """Claims keys in Blob storage."""

    def __init__(self, blobs: BlobStore, ttl: timedelta) -> None:
        self._blobs = blobs
        self._ttl = ttl

    def claim(
        self,
        key: str,
        *,
        fingerprint: str,
        kind: str,
        operation_id: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> IdempotencyClaim:
        """Bind the key to `operation_id` unless it is bound already.

        Raises IdempotencyConflictError if it is bound to a different request.
        """
        key_digest = hash_key(key)
        name = idempotency_blob_name(key_digest)
        fresh = IdempotencyRecord(
            key_hash=key_digest,
            fingerprint=fingerprint,
            kind=kind,
            operation_id=operation_id,
            input=payload,
            created_at=now,
            expires_at=now + self._ttl,
        )
        # A few rounds: a record can expire, vanish or be replaced between our calls.
        for _ in range(5):
            if self._blobs.create_record(name, fresh.to_json()):
                return IdempotencyClaim(fresh, is_new=True)
            stored = self._blobs.read_record(name)
            if stored is None:
                continue
            existing = IdempotencyRecord.from_json(stored.body)
            if existing.is_expired(now):
                if self._blobs.replace_record(name, fresh.to_json(), stored.etag):
                    return IdempotencyClaim(fresh, is_new=True)
                continue
            if existing.fingerprint != fingerprint:
                raise IdempotencyConflictError(
                    f"Idempotency-Key was first used at {iso_utc(existing.created_at)} for a "
                    f"different request (kind {existing.kind!r}, operation "
                    f"{existing.operation_id}); use a new key for a different request"
                )
            return IdempotencyClaim(existing, is_new=False)
        raise IdempotencyConflictError(
            "Idempotency-Key is being claimed by concurrent requests; retry in a moment"
        )

    def delete_expired(self, now: datetime) -> int:
        """Forget keys past their time; how many were deleted."""
        deleted = 0
        for name in self._blobs.list_records("idempotency/"):
            stored = self._blobs.read_record(name)
            if stored is None:
                continue
            if IdempotencyRecord.from_json(stored.body).is_expired(now):
                self._blobs.delete_record(name)
                deleted += 1
        return deleted
