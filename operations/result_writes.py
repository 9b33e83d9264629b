"""Writing an operation's results through Blob storage outages.

Two layers of retry, each for what it is good at:

- The storage SDK retries a failed call a few times within a second or three
  (`OPS_STORAGE_RETRIES`, operations/blobstore.py), so a blip never reaches anyone and an
  HTTP request during an outage is answered 503 + Retry-After within seconds.
- The activities that write results are called with `DurableRetryOptions` (first retry
  after `OPS_RESULT_WRITE_RETRY_SECONDS`, doubling, at most 8 times that apart, up to
  `OPS_RESULT_WRITE_ATTEMPTS` attempts: by default about 80 s of waiting). The waits are
  durable timers, so a host restart during an outage loses nothing.

The Python SDK's RetryOptions cannot be told which errors to retry, so the activities
sort them: a transient storage failure (no connection, 408, 429, 5xx) is raised as a
`TransientError` and retried; a permanent one (a refused request, a container that cannot
be created, no storage configured) is returned as `{"writeRefused": <message>}`, which
`write_result` turns into an `OperationFailure` at once instead of burning every attempt.
Every write derives its blob name from the operation id, so an attempt that repeats a
half-done write overwrites it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from operations.errors import OperationFailure, StorageConfigurationError, TransientError
from operations.monitor import failure_message
from operations.settings import get_float, get_int

__all__ = [
    "RAISE_ON_STORAGE_OUTAGE",
    "REFUSED",
    "STORAGE_UNAVAILABLE",
    "DurableRetryOptions",
    "is_transient_storage_error",
    "refused_write",
    "result_write_retry",
    "write_result",
]

# The member of an activity's answer saying storage refused the write for good.
REFUSED = "writeRefused"
# For activities that also do other retried work (ingest's copy): the status of an answer
# that met a storage outage, and the task member asking such an activity to raise instead,
# when the orchestrator calls it again with `result_write_retry()`.
STORAGE_UNAVAILABLE = "storage-unavailable"
RAISE_ON_STORAGE_OUTAGE = "raiseOnStorageOutage"
# The longest wait between attempts, as a multiple of the first one (2 s -> 16 s).
_MAX_INTERVAL_FACTOR = 8
_BACKOFF_COEFFICIENT = 2.0


class DurableRetryOptions(df.RetryOptions):
    """RetryOptions with the backoff the SDK 1.7.0 class cannot express.

    The Durable Functions extension reads `backoffCoefficient` and
    `maxRetryIntervalInMilliseconds` from an out-of-process action's retryOptions (its
    RetryOptionsConverter; the JavaScript SDK sends them), and so does durablehost; the
    Python SDK only leaves them out of its `to_json`.
    """

    def __init__(
        self,
        first_retry_interval_in_milliseconds: int,
        max_number_of_attempts: int,
        *,
        backoff_coefficient: float,
        max_retry_interval_in_milliseconds: int,
    ) -> None:
        super().__init__(first_retry_interval_in_milliseconds, max_number_of_attempts)
        self.backoff_coefficient = backoff_coefficient
        self.max_retry_interval_in_milliseconds = max_retry_interval_in_milliseconds

    def to_json(self) -> dict[str, str | int]:
        """The action's retryOptions, with the backoff members."""
        body: dict[str, Any] = dict(super().to_json())
        body["backoffCoefficient"] = self.backoff_coefficient
        body["maxRetryIntervalInMilliseconds"] = self.max_retry_interval_in_milliseconds
        return body


def result_write_retry() -> DurableRetryOptions:
    """The retry of a result-writing activity, from the app settings.

    Read on every replay: change the settings only between deployments, not while
    operations are writing (a replay must see the attempts count its history was made with).
    """
    first_ms = max(1, round(get_float("OPS_RESULT_WRITE_RETRY_SECONDS") * 1000))
    return DurableRetryOptions(
        first_ms,
        max(1, get_int("OPS_RESULT_WRITE_ATTEMPTS")),
        backoff_coefficient=_BACKOFF_COEFFICIENT,
        max_retry_interval_in_milliseconds=first_ms * _MAX_INTERVAL_FACTOR,
    )


def is_transient_storage_error(error: AzureError) -> bool:
    """Worth another attempt: no connection, a broken one, throttling or a server error."""
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return True
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        return error.status_code in (408, 429) or error.status_code >= 500
    return False


def _describe(error: AzureError) -> str:
    # A person's reason, without the SDK's connection object reprs and request ids.
    if isinstance(error, ServiceRequestError):
        return "could not connect"
    if isinstance(error, ServiceResponseError):
        return "the connection broke off"
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        code = getattr(error, "error_code", None)
        return f"HTTP {error.status_code}" + (f" {code}" if code else "")
    return type(error).__name__


def refused_write(error: AzureError | StorageConfigurationError, what: str) -> dict[str, str]:
    """An activity's answer for a storage failure while writing `what`.

    Raises TransientError (the orchestrator's RetryOptions retries it) when the failure
    may pass; returns `{"writeRefused": reason}` when another attempt would fail the same.
    """
    if isinstance(error, StorageConfigurationError):
        return {REFUSED: f"Blob storage is not configured: {error}"}
    if is_transient_storage_error(error):
        raise TransientError(
            f"Blob storage was unavailable while writing {what} ({_describe(error)})"
        ) from None
    return {REFUSED: f"Blob storage refused to write {what} ({_describe(error)})"}


def write_result(
    context: df.DurableOrchestrationContext, activity: str, task: dict[str, Any]
) -> Generator[Any, Any, Any]:
    """Call a result-writing activity with `result_write_retry()`; its answer.

    Use with `yield from` in an orchestrator. Raises OperationFailure, with a message a
    client can act on, when storage refused the write or stayed down through every attempt.
    """
    retry = result_write_retry()
    started = context.current_utc_datetime
    try:
        answer = yield context.call_activity_with_retry(activity, retry, task)
    except Exception as error:
        # Replayed timestamps, so the message is the same on every replay.
        seconds = (context.current_utc_datetime - started).total_seconds()
        raise OperationFailure(
            f"writing the result gave up after {retry.max_number_of_attempts} attempts in "
            f"{seconds:.0f} s: {failure_message(str(error))}"
        ) from error
    if isinstance(answer, dict) and REFUSED in answer:
        raise OperationFailure(f"writing the result failed: {answer[REFUSED]}")
    return answer
