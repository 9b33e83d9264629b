"""Fixtures for the opsclient tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import stamina

from tests.opsclient.arm_api import RunningArmAPI, serve_arm_api
from tests.opsclient.scripted import Harness
from tests.support.azurite import Azurite
from tests.support.hostproc import run_host_process

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "opsclient-e2e-secret"


@pytest.fixture(autouse=True)
def no_retry_backoff() -> Iterator[None]:
    """Retries happen as configured (attempts capped by the policy) but never sleep."""
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


@pytest.fixture(params=["sync", "async"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """The same scripted exchange driven through OperationsClient and AsyncOperationsClient."""
    return Harness(request.param)


@pytest.fixture(params=["sync", "async"])
def flavor(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs twice: once with the sync client, once with the async."""
    return str(request.param)


@pytest.fixture
def api() -> Iterator[RunningArmAPI]:
    """The ARM-style API on a free port (modules testing another server define their own)."""
    with serve_arm_api() as running:
        yield running


@dataclass(frozen=True)
class RunningApp:
    """The Function App on durablehost (real process) with real Azurite behind it."""

    url: str


@pytest.fixture(scope="module")
def running_app(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[RunningApp]:
    """`python -m durablehost start --app <repo>` on a free port, for the e2e tests."""
    tag = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        # Own containers, so nothing from the app's own tests is seen here.
        "OPS_RESULTS_CONTAINER": f"opsclient-results-{tag}",
        "OPS_STATE_CONTAINER": f"opsclient-state-{tag}",
        "OPS_RETRY_AFTER_SECONDS": "1",
        "OPS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "OPS_WEBHOOK_SCHEDULE": "*/1 * * * * *",
        "OPS_OUTBOUND_ALLOW": "127.0.0.0/8,localhost,::1",  # the peers tests aim at are local
    }
    hub = tmp_path_factory.mktemp("opsclient-e2e") / "hub.sqlite3"
    with run_host_process(REPO, hub=hub, env=env) as host:
        yield RunningApp(host.url)
