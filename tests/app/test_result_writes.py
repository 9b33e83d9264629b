"""Unit tests of operations/result_writes.py and the storage SDK's short retry policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.durable_functions.models.actions.CallActivityWithRetryAction import (
    CallActivityWithRetryAction,
)

from durablehost.engine.executor import retry_delay
from operations.blobstore import _retry_policy
from operations.errors import StorageConfigurationError, TransientError
from operations.result_writes import (
    REFUSED,
    DurableRetryOptions,
    is_transient_storage_error,
    refused_write,
    result_write_retry,
)


def http_error(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"HTTP {status}")
    error.status_code = status
    return error


def test_default_retry_waits_2_4_8_16_s_and_rides_out_a_minute() -> None:
    retry = result_write_retry()
    action = CallActivityWithRetryAction("report_write", retry, {}).to_json()

    # What the SDK sends is what the extension's RetryOptionsConverter and durablehost read.
    assert action["retryOptions"] == {
        "firstRetryIntervalInMilliseconds": 2000,
        "maxNumberOfAttempts": 8,
        "backoffCoefficient": 2.0,
        "maxRetryIntervalInMilliseconds": 16000,
    }
    waits = [retry_delay(retry.to_json(), attempt) for attempt in range(1, 8)]
    assert waits == [timedelta(seconds=s) for s in (2, 4, 8, 16, 16, 16, 16)]
    assert sum(waits, timedelta()) > timedelta(seconds=60)


def test_retry_settings_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_RESULT_WRITE_RETRY_SECONDS", "0.25")
    monkeypatch.setenv("OPS_RESULT_WRITE_ATTEMPTS", "3")

    retry = result_write_retry()

    assert retry.first_retry_interval_in_milliseconds == 250
    assert retry.max_number_of_attempts == 3
    assert retry.max_retry_interval_in_milliseconds == 2000


def test_durable_retry_options_are_still_sdk_retry_options() -> None:
    retry = DurableRetryOptions(
        1000, 2, backoff_coefficient=1.5, max_retry_interval_in_milliseconds=3000
    )
    with pytest.raises(ValueError):
        DurableRetryOptions(0, 2, backoff_coefficient=2, max_retry_interval_in_milliseconds=1)
    assert retry.to_json()["maxNumberOfAttempts"] == 2


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ServiceRequestError("connection refused"), True),
        (ServiceResponseError("connection reset"), True),
        (http_error(500), True),
        (http_error(503), True),
        (http_error(429), True),
        (http_error(408), True),
        (http_error(400), False),
        (http_error(403), False),
        (ResourceNotFoundError("no container"), False),
        (ClientAuthenticationError("no token"), False),
    ],
)
def test_only_outages_are_transient(error: HttpResponseError, transient: bool) -> None:
    assert is_transient_storage_error(error) is transient


def test_a_transient_failure_raises_to_be_retried_with_a_plain_reason() -> None:
    with pytest.raises(TransientError) as raised:
        refused_write(ServiceRequestError("<urllib3 object at 0x1>: refused"), "a/result.json")

    assert str(raised.value) == (
        "Blob storage was unavailable while writing a/result.json (could not connect)"
    )


def test_a_refusal_is_answered_not_raised() -> None:
    error = http_error(400)
    # The storage SDK adds error_code to the azure-core error it raises.
    error.error_code = "InvalidResourceName"  # type: ignore[attr-defined]

    assert refused_write(error, "a/result.json") == {
        REFUSED: "Blob storage refused to write a/result.json (HTTP 400 InvalidResourceName)"
    }
    assert refused_write(StorageConfigurationError("set it"), "x") == {
        REFUSED: "Blob storage is not configured: set it"
    }


def test_the_sdk_retries_within_seconds() -> None:
    policy = _retry_policy()
    waits = [policy.get_backoff_time({"count": count}) for count in (1, 2, 3)]

    for wait, nominal in zip(waits, (0.5, 1.0, 2.0), strict=True):
        assert 0.75 * nominal <= wait <= 1.25 * nominal
    assert policy.total_retries == 3
