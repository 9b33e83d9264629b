"""Fixtures for the opsclient tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stamina

from tests.opsclient.scripted import Harness


@pytest.fixture(autouse=True)
def no_retry_backoff() -> Iterator[None]:
    """Retries happen as configured (attempts capped by the policy) but never sleep."""
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


@pytest.fixture(params=["sync", "async"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """The same scripted exchange driven through OperationsClient and AsyncOperationsClient."""
    return Harness(request.param)
