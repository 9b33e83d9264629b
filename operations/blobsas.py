"""Read-only SAS URLs of result blobs: the valet key a client downloads a large result with.

The signer follows how the app reaches storage:

- a connection string with an account key (locally, Azurite's `UseDevelopmentStorage=true`):
  `AccountKeySigner`, a service SAS signed with that key;
- a managed identity (Azure; the account allows no shared keys there): `UserDelegationSigner`,
  a user delegation SAS signed with a user delegation key that the identity requests
  (`Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action`, part of
  Storage Blob Data Owner). `UserDelegationKeyCache` keeps one key for about an hour, so one
  key request serves every result signed in that time.

Each SAS grants read (`sp=r`) of one blob (`sr=b`) until its expiry (`se`), HTTPS only
when storage is reached over HTTPS. It carries no credential of the API itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from azure.storage.blob import BlobClient, BlobSasPermissions, UserDelegationKey, generate_blob_sas

__all__ = [
    "AccountKeySigner",
    "BlobSasSigner",
    "UserDelegationKeyCache",
    "UserDelegationSigner",
    "read_url",
]

# Clocks of the app and of storage may disagree by a few minutes: keys start this much in
# the past and are replaced this long before a SAS signed with them could outlive them.
CLOCK_SKEW = timedelta(minutes=5)
# The service refuses user delegation keys valid for longer than seven days.
_LONGEST_KEY = timedelta(days=7)


class BlobSasSigner(Protocol):
    """Signs the SAS query string of one blob."""

    def sign(
        self,
        container: str,
        blob: str,
        *,
        now: datetime,
        expiry: datetime,
        https_only: bool,
        content_type: str | None,
    ) -> str:
        """The SAS query string (no leading `?`) that grants read of the blob until `expiry`."""
        ...


def read_url(
    blob: BlobClient,
    signer: BlobSasSigner,
    *,
    now: datetime,
    lifetime: timedelta,
    content_type: str | None = None,
) -> str:
    """The blob's URL on storage's own origin plus a read-only SAS valid for `lifetime`.

    `content_type` makes storage answer with that Content-Type (`rsct`) instead of the one
    stored with the blob; None keeps the stored one.
    """
    query = signer.sign(
        blob.container_name,
        blob.blob_name,
        now=now,
        expiry=now + lifetime,
        https_only=blob.scheme == "https",
        content_type=content_type,
    )
    return f"{blob.url}?{query}"


def _read_only_blob_sas(
    account_name: str,
    container: str,
    blob: str,
    *,
    expiry: datetime,
    https_only: bool,
    content_type: str | None,
    account_key: str | None = None,
    user_delegation_key: UserDelegationKey | None = None,
) -> str:
    """A read-only (`sp=r`) SAS of one blob, signed with whichever credential is given."""
    return generate_blob_sas(
        account_name,
        container,
        blob,
        account_key=account_key,
        user_delegation_key=user_delegation_key,
        permission=BlobSasPermissions(read=True),
        expiry=expiry,
        protocol="https" if https_only else None,
        content_type=content_type,
    )


@dataclass(frozen=True, slots=True)
class AccountKeySigner:
    """A service SAS signed with the storage account key (Azurite, key-based accounts)."""

    account_name: str
    account_key: str = field(repr=False)

    def sign(
        self,
        container: str,
        blob: str,
        *,
        now: datetime,
        expiry: datetime,
        https_only: bool,
        content_type: str | None,
    ) -> str:
        """The SAS query string, signed with the account key."""
        return _read_only_blob_sas(
            self.account_name,
            container,
            blob,
            expiry=expiry,
            https_only=https_only,
            content_type=content_type,
            account_key=self.account_key,
        )


class UserDelegationKeyCache:
    """One user delegation key at a time, requested again only when it would expire before
    a SAS signed with it (plus `CLOCK_SKEW`).

    `fetch(start, expiry)` requests a key from storage (`get_user_delegation_key`). Keys
    live `key_lifetime`, or four times the longest SAS asked for if that is longer, so
    one request serves many results.
    """

    def __init__(
        self,
        fetch: Callable[[datetime, datetime], UserDelegationKey],
        key_lifetime: timedelta = timedelta(hours=1),
    ) -> None:
        self._fetch = fetch
        self._key_lifetime = key_lifetime
        # Handlers sign on worker threads; one lock keeps them to one key request at a time.
        self._lock = threading.Lock()
        self._key: UserDelegationKey | None = None
        self._key_expiry: datetime | None = None

    def key_valid_until(self, now: datetime, sas_expiry: datetime) -> UserDelegationKey:
        """A key that is valid now and still valid `CLOCK_SKEW` after `sas_expiry`."""
        with self._lock:
            if (
                self._key is None
                or self._key_expiry is None
                or (self._key_expiry < sas_expiry + CLOCK_SKEW)
            ):
                lifetime = max(self._key_lifetime, 4 * (sas_expiry - now))
                expiry = now + min(lifetime, _LONGEST_KEY - CLOCK_SKEW)
                self._key = self._fetch(now - CLOCK_SKEW, expiry)
                self._key_expiry = expiry
            return self._key


@dataclass(frozen=True, slots=True)
class UserDelegationSigner:
    """A user delegation SAS signed with a cached key of the app's identity (Azure)."""

    account_name: str
    keys: UserDelegationKeyCache

    def sign(
        self,
        container: str,
        blob: str,
        *,
        now: datetime,
        expiry: datetime,
        https_only: bool,
        content_type: str | None,
    ) -> str:
        """The SAS query string, signed with the identity's user delegation key."""
        return _read_only_blob_sas(
            self.account_name,
            container,
            blob,
            expiry=expiry,
            https_only=https_only,
            content_type=content_type,
            user_delegation_key=self.keys.key_valid_until(now, expiry),
        )
