"""One exit code per kind of outcome, whichever status dialect reported it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from opsclient import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    HTTPStatusError,
    OperationCanceled,
    OperationFailed,
    OperationGone,
    OperationNotFound,
    OperationTimeout,
    OpsClientError,
    ProtocolError,
)
from opsclient.cli import (
    EXIT_AUTH,
    EXIT_BAD_INPUT,
    EXIT_CANCELED,
    EXIT_FAILED,
    EXIT_GONE,
    EXIT_NOT_FOUND,
    EXIT_REQUEST,
    EXIT_TIMEOUT,
    exit_code,
    main,
)
from opsclient.dialects import interpret_status, outcome_error
from tests.opsclient.fake_api import RunningFakeAPI, serve_fake_api

URL = "http://api.test/api/operations/abc"


def outcome_of(response: httpx.Response) -> OpsClientError:
    """What a wait raises on this final status answer, in whatever dialect it speaks."""
    try:
        status = interpret_status(response, URL)
    except OpsClientError as error:
        return error
    error = outcome_error(status)
    assert error is not None
    return error


FAILED_ANSWERS = [
    httpx.Response(200, json={"instanceId": "abc", "runtimeStatus": "Failed", "output": "boom"}),
    httpx.Response(500, json={"instanceId": "abc", "runtimeStatus": "Failed", "output": "boom"}),
    httpx.Response(200, json={"id": "abc", "status": "Failed", "error": {"message": "boom"}}),
    httpx.Response(
        422,
        json={
            "type": "urn:durable-ops:problem:operation-failed",
            "title": "Operation failed",
            "status": 422,
            "detail": "boom",
            "operationStatus": "Failed",
        },
    ),
]
CANCELED_ANSWERS = [
    httpx.Response(200, json={"instanceId": "abc", "runtimeStatus": "Terminated"}),
    httpx.Response(200, json={"id": "abc", "status": "Canceled"}),
    httpx.Response(
        409,
        json={
            "type": "urn:durable-ops:problem:operation-canceled",
            "title": "Operation canceled",
            "status": 409,
            "operationStatus": "Canceled",
        },
    ),
]


@pytest.mark.parametrize("answer", FAILED_ANSWERS)
def test_failed_in_every_dialect_exits_1(answer: httpx.Response) -> None:
    assert exit_code(outcome_of(answer)) == EXIT_FAILED


@pytest.mark.parametrize("answer", CANCELED_ANSWERS)
def test_canceled_in_every_dialect_exits_5(answer: httpx.Response) -> None:
    assert exit_code(outcome_of(answer)) == EXIT_CANCELED


def _http(error_type: type[HTTPStatusError], code: int, method: str = "GET") -> HTTPStatusError:
    return error_type("x", status_code=code, method=method, url=URL)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OperationFailed("x"), EXIT_FAILED),
        (OperationCanceled("x"), EXIT_CANCELED),
        (OperationTimeout("x"), EXIT_TIMEOUT),
        (_http(OperationNotFound, 404), EXIT_NOT_FOUND),
        (_http(OperationNotFound, 404, "POST"), EXIT_BAD_INPUT),  # an unknown kind
        (_http(OperationGone, 410), EXIT_GONE),
        (_http(AuthenticationFailed, 401), EXIT_AUTH),
        (_http(AuthenticationFailed, 403), EXIT_AUTH),
        (_http(HTTPStatusError, 400, "POST"), EXIT_BAD_INPUT),
        (_http(HTTPStatusError, 500), EXIT_REQUEST),
        (ConnectionFailed("x"), EXIT_REQUEST),
        (ProtocolError("x"), EXIT_REQUEST),
        (ConfigurationError("x"), EXIT_BAD_INPUT),
    ],
)
def test_exit_code_table(error: OpsClientError, code: int) -> None:
    assert exit_code(error) == code


@pytest.fixture
def api() -> Iterator[RunningFakeAPI]:
    with serve_fake_api() as running:
        yield running


def test_waiting_on_an_unknown_operation_exits_6(api: RunningFakeAPI) -> None:
    result = CliRunner().invoke(main, ["wait", "nosuch", "--base-url", api.url, "--no-timeout"])
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "Traceback" not in result.output


def test_the_default_timeout_is_shown_in_the_help() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert "3600" in result.output and "--no-timeout" in result.output
