"""Every app setting the Function App reads, in one table.

The infra test checks each of these is set by infra/ (Bicep app settings) or has a
default, so a setting added here without a deployment value fails CI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["SETTINGS", "Setting", "get_float", "get_int", "get_setting"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One app setting: its name, its default (None: required or optional-without-default),
    and what it is for."""

    name: str
    default: str | None
    description: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AzureWebJobsStorage",
        None,
        "Storage connection string (locally `UseDevelopmentStorage=true` for Azurite). "
        "In Azure the identity-based AzureWebJobsStorage__* settings are used instead.",
    ),
    Setting(
        "AzureWebJobsStorage__blobServiceUri",
        None,
        "Blob endpoint for identity-based storage access in Azure (DefaultAzureCredential).",
    ),
    Setting(
        "AzureWebJobsStorage__accountName",
        None,
        "Storage account name for identity-based access when no blobServiceUri is set "
        "(the endpoint is then https://<name>.blob.core.windows.net).",
    ),
    Setting(
        "AZURE_CLIENT_ID",
        None,
        "Client id of a user-assigned managed identity, read by DefaultAzureCredential; "
        "unset means the system-assigned identity.",
    ),
    Setting("OPS_RESULTS_CONTAINER", "operation-results", "Blob container for results."),
    Setting(
        "OPS_STATE_CONTAINER",
        "operation-state",
        "Blob container for the app's own records: idempotency keys, tombstones of expired "
        "operations and the webhook outbox.",
    ),
    Setting(
        "OPS_STORAGE_RETRIES",
        "3",
        "Retries of a failed Blob storage call inside the storage SDK (after about 0.5 s, "
        "1 s, 2 s, jittered) before it fails: a call to storage that is down fails within "
        "about 4 s. Longer outages are ridden out by OPS_RESULT_WRITE_* (durable retries).",
    ),
    Setting(
        "OPS_RESULT_WRITE_RETRY_SECONDS",
        "2",
        "First wait before an activity that writes an operation's result is retried after "
        "storage failed transiently; the wait doubles per attempt, up to 8 times this.",
    ),
    Setting(
        "OPS_RESULT_WRITE_ATTEMPTS",
        "8",
        "Attempts of a result-writing activity before the operation fails: with the default "
        "2 s that is about 80 s of waiting (2, 4, 8, 16, 16, 16, 16 s), enough for a "
        "60-second storage outage.",
    ),
    Setting(
        "OPS_MAX_REQUEST_BYTES",
        "65536",
        "Largest accepted start-request body, in bytes; bigger bodies answer 413.",
    ),
    Setting(
        "OPS_RESULT_REDIRECT_BYTES",
        "4194304",
        "Results larger than this many bytes (4 MiB) answer GET .../result with a 302 to a "
        "short-lived read-only SAS URL of the blob instead of passing through the app.",
    ),
    Setting(
        "OPS_RESULT_INLINE_MAX_BYTES",
        "67108864",
        "Largest result (64 MiB) the app sends itself, even when a client asks for it inline "
        "with ?redirect=false: the Python worker holds an HTTP body in memory.",
    ),
    Setting(
        "OPS_RESULT_LINK_SECONDS",
        "600",
        "Lifetime of a result's SAS URL, 60 to 3600 seconds: long enough to start the "
        "download (a started download finishes), short enough that a leaked URL soon dies.",
    ),
    Setting(
        "OPS_RETRY_AFTER_SECONDS",
        "2",
        "Retry-After sent with 202 and with the status of a running operation.",
    ),
    Setting(
        "OPS_IDEMPOTENCY_TTL_SECONDS",
        "86400",
        "How long an Idempotency-Key is remembered after its first use.",
    ),
    Setting(
        "OPS_OPERATION_TTL_SECONDS",
        "604800",
        "How long a finished operation (history and result blobs) is kept before expiry "
        "purges it and leaves a tombstone (status and result then answer 410).",
    ),
    Setting(
        "OPS_PURGE_SCHEDULE",
        "0 */5 * * * *",
        "NCRONTAB schedule (six fields, seconds first) of the expiry timer.",
    ),
    Setting(
        "OPS_WEBHOOK_SCHEDULE",
        "*/1 * * * * *",
        "NCRONTAB schedule of the timer that starts the delivery of the webhooks whose "
        "operation has ended (webhooks-due/): how late after the end a webhook may leave.",
    ),
    Setting(
        "OPS_WEBHOOK_SWEEP_SCHEDULE",
        "0 * * * * *",
        "NCRONTAB schedule of the outbox sweep, the safety net for ends that were not "
        "announced (an instance terminated through the Durable Functions API).",
    ),
    Setting(
        "OPS_WEBHOOK_SECRET",
        None,
        "HMAC-SHA256 key that signs webhook deliveries; unset disables callbackUrl.",
    ),
    Setting(
        "OPS_WEBHOOK_MAX_ATTEMPTS",
        "8",
        "Delivery attempts per webhook before it is given up (moved to webhooks-abandoned/).",
    ),
    Setting(
        "OPS_WEBHOOK_BACKOFF_SECONDS",
        "2",
        "First retry delay of a failed webhook delivery; doubles per attempt, jittered.",
    ),
    Setting(
        "OPS_WEBHOOK_TIMEOUT_SECONDS",
        "5",
        "Timeout of one webhook POST, so a dead receiver costs at most this per attempt.",
    ),
    Setting(
        "OPS_OUTBOUND_ALLOW",
        "",
        "Comma-separated host names and CIDR ranges that webhooks and ingest may reach "
        "although they are not public (loopback, private, link-local, ...), e.g. "
        "`127.0.0.0/8,::1,localhost` for local development; empty in production.",
    ),
)


def get_setting(name: str) -> str | None:
    """The setting's value from the environment, or its declared default."""
    for setting in SETTINGS:
        if setting.name == name:
            value = os.environ.get(name)
            return value if value else setting.default
    raise KeyError(f"{name} is not declared in operations.settings.SETTINGS")


def get_int(name: str) -> int:
    """An integer setting; a bad value fails loudly with the setting's name."""
    raw = get_setting(name)
    try:
        return int(raw or "")
    except ValueError:
        raise ValueError(f"app setting {name}={raw!r} is not an integer") from None


def get_float(name: str) -> float:
    """A number setting; a bad value fails loudly with the setting's name."""
    raw = get_setting(name)
    try:
        return float(raw or "")
    except ValueError:
        raise ValueError(f"app setting {name}={raw!r} is not a number") from None
