"""Fixtures of the client compatibility suite: two app hosts (one for success, failure and
cancel; one with a 1-second TTL for expiry), a peer that answers 404, and the client
families, each skipped only when its program is missing from the machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.app.conftest import AppHost, eventually, run_app_host, run_peer
from tests.compat.azure_core_lro import (
    RecordingPolicy,
    continuation_token,
    make_client,
    start_operation,
)
from tests.compat.families import ClientFamily, StoredOperation
from tests.compat.process_clients import CliClient, CurlClient, NodeClient
from tests.compat.python_clients import (
    AzureCoreClient,
    DurableStatusClient,
    OpsclientAsync,
    OpsclientSync,
)
from tests.support.azurite import Azurite

FAMILIES = [
    "axios-location",
    "axios-operation-location",
    "fetch-location",
    "curl",
    "azure-core-plain",
    "azure-core-generated",
    "durable-status",
    "opsclient-sync",
    "opsclient-async",
    "opsclient-cli",
]
# curl-operation.sh uses --fail-with-body (7.76) and the %header{} write-out (7.84).
CURL_MINIMUM = (7, 84)


# A report's JSON is about 1 KB, the manifest of an ingest of 16 URLs about 4 KB: with
# this threshold the first comes inline from the app, the second by a 302 to storage.
RESULT_REDIRECT_BYTES = 2048


# Module scope (the suite is one module): the hosts stop when the suite ends instead of
# ticking their timers through the rest of a `make test` session.
@pytest.fixture(scope="module")
def compat_host(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[AppHost]:
    """The app for success, failure and cancel (Retry-After: 1)."""
    with run_app_host(
        tmp_path_factory.mktemp("compat"),
        azurite,
        OPS_RESULT_REDIRECT_BYTES=str(RESULT_REDIRECT_BYTES),
    ) as host:
        yield host


@pytest.fixture(scope="module")
def missing_file_url() -> Iterator[str]:
    """A URL a local peer answers 404 for: an `ingest` of it fails (404 is not retried)."""
    with run_peer([404]) as peer:
        yield f"{peer.url}/missing.csv"


@pytest.fixture(scope="module")
def file_server() -> Iterator[str]:
    """A local peer serving a small file at every path."""
    with run_peer([200], payload=b"id,amount\n1,10\n2,20\n", content_type="text/csv") as peer:
        yield peer.url


@pytest.fixture(scope="module")
def expired_operation(
    tmp_path_factory: pytest.TempPathFactory, azurite: Azurite
) -> Iterator[StoredOperation]:
    """A report that succeeded and then expired, on a host that stays up to answer 410.

    It is started through azure-core so that the stored operation has a real LROPoller
    continuation token beside the URLs the other clients keep."""
    with run_app_host(
        tmp_path_factory.mktemp("compat-expiring"),
        azurite,
        OPS_OPERATION_TTL_SECONDS="1",
        OPS_PURGE_SCHEDULE="*/1 * * * * *",
    ) as host:
        with make_client(host.url, "plain", RecordingPolicy()) as client:
            initial = start_operation(client, "report", {"rows": 10, "partitions": 1})
            token = continuation_token(client, initial)
        accepted = initial.http_response
        body = accepted.json()
        stored = StoredOperation(
            id=body["id"],
            monitor_url=accepted.headers["Location"],
            status_url=accepted.headers["Operation-Location"],
            status_query_get_uri=body["statusQueryGetUri"],
            azure_core_token=token,
        )
        # The tombstone (410) comes first, the purge of the history (404 on the Durable
        # Functions status URL) right after it.
        eventually(lambda: host.http.get(stored.monitor_url).status_code == 410, timeout=30)
        eventually(
            lambda: host.http.get(stored.status_query_get_uri).status_code == 404, timeout=30
        )
        yield stored


def _curl_version(curl: str) -> tuple[int, int]:
    first_line = subprocess.run(
        [curl, "--version"], capture_output=True, text=True, check=True
    ).stdout.split("\n", 1)[0]
    found = re.match(r"curl (\d+)\.(\d+)", first_line)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


@pytest.fixture(params=FAMILIES)
def family(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ClientFamily:
    """One client family; skipped (with the reason) when its program is not installed."""
    name: str = request.param
    if name.startswith(("axios", "fetch")):
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed: the JavaScript clients need Node.js 20+")
        library, follow = name.split("-", 1)
        return NodeClient(node, library, follow)  # type: ignore[arg-type]
    if name == "curl":
        curl = shutil.which("curl")
        if curl is None:
            pytest.skip("curl is not installed")
        if _curl_version(curl) < CURL_MINIMUM:
            pytest.skip(f"curl older than {CURL_MINIMUM}: no --fail-with-body or %header{{}}")
        return CurlClient()
    if name.startswith("azure-core-"):
        return AzureCoreClient(name.removeprefix("azure-core-"))  # type: ignore[arg-type]
    others: dict[str, ClientFamily] = {
        "durable-status": DurableStatusClient(),
        "opsclient-sync": OpsclientSync(),
        "opsclient-async": OpsclientAsync(),
        "opsclient-cli": CliClient(),
    }
    return others[name]
