"""The management API under `--enforce-keys`, as the Functions host guards the extension's
webhook: a real host process, its keys file, over real HTTP.

Only the `durabletask_extension` system key or the master key opens
/runtime/webhooks/durabletask/; the URLs the durable client hands out carry the system
key as `code=`; the host's own durable client needs no key, in-process or over HTTP to its
loopback `rpcBaseUrl` (what operations/instance_pages.py does with aiohttp).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.durable_functions as df
import httpx
import pytest

from durablehost.front.keys import DURABLE_EXTENSION_KEY_NAME, load_or_create_keys
from operations.instance_pages import read_instance_page
from tests.support.hostproc import HostProcess, run_host_process

MGMT_APP = Path(__file__).parent / "apps" / "mgmt_basic"
HOOK = "/runtime/webhooks/durabletask"
MASTER = "test-master-" + "m" * 30
HOST_KEY = "test-host-" + "h" * 30
FUNCTION_KEY = "test-function-" + "f" * 30
SYSTEM_KEY = "test-system-" + "s" * 30

# Appended to the sample app: the binding as a starter sees it (rpcBaseUrl, managementUrls).
BINDING_PROBE = """

@myApp.route(route="binding")
@myApp.durable_client_input(client_name="client")
async def binding(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    bindings = client._orchestration_bindings
    return func.HttpResponse(
        json.dumps({"rpcBaseUrl": bindings.rpc_base_url,
                    "managementUrls": bindings.management_urls}),
        mimetype="application/json",
    )
"""


def _app_copy(target: Path, keys: dict[str, Any] | None) -> Path:
    shutil.copytree(MGMT_APP, target, ignore=shutil.ignore_patterns("__pycache__", ".durablehost"))
    source = (target / "function_app.py").read_text()
    (target / "function_app.py").write_text("import json\n" + source + BINDING_PROBE)
    if keys is not None:
        (target / ".durablehost").mkdir()
        (target / ".durablehost" / "keys.json").write_text(json.dumps(keys))
    return target


@pytest.fixture(scope="module")
def keyed_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    keys = {
        "masterKey": MASTER,
        "hostKeys": {"default": HOST_KEY},
        "functionKeys": {"http_start": {"default": FUNCTION_KEY}},
        "systemKeys": {DURABLE_EXTENSION_KEY_NAME: SYSTEM_KEY},
    }
    app = _app_copy(tmp_path_factory.mktemp("keyed") / "app", keys)
    with run_host_process(app, args=["--enforce-keys"]) as host:
        yield host


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["message"] == body["detail"]
    return body


def _wait_completed(http: httpx.Client, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = http.get(status_url).json()
        if body["runtimeStatus"] == "Completed":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


# Every endpoint, with no key: (method, path relative to the webhook).
ENDPOINTS = [
    ("GET", "/instances/"),
    ("GET", "/instances/some-id"),
    ("POST", "/orchestrators/hello_orchestrator"),
    ("POST", "/orchestrators/hello_orchestrator/chosen-id"),
    ("POST", "/instances/some-id/raiseEvent/Approval"),
    ("POST", "/instances/some-id/terminate"),
    ("POST", "/instances/some-id/suspend"),
    ("POST", "/instances/some-id/rewind"),
    ("POST", "/instances/some-id/restart"),
    ("DELETE", "/instances/some-id"),
    ("DELETE", "/instances/?createdTimeFrom=2000-01-01T00:00:00Z"),
    # Unknown paths and wrong methods say nothing before the key either.
    ("GET", "/no-such-endpoint"),
    ("PUT", "/instances/"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_refuses_a_caller_without_the_system_key(
    keyed_host: HostProcess, method: str, path: str
) -> None:
    url = keyed_host.url + HOOK + path
    with httpx.Client(timeout=30) as http:
        for key in (None, HOST_KEY, FUNCTION_KEY, "wrong"):
            params = {"code": key} if key else {}
            response = http.request(method, url, params=params, json={"a": 1})
            body = _assert_problem(response, 401)
            assert "durabletask_extension" in body["detail"]
        # Header values that are not UTF-8 are just another wrong key.
        raw = http.request(method, url, headers={b"x-functions-key": b"\xff\xfe"})
        _assert_problem(raw, 401)


def test_the_system_key_and_the_master_key_open_it(keyed_host: HostProcess) -> None:
    listing = keyed_host.url + HOOK + "/instances/"
    with httpx.Client(timeout=30) as http:
        assert http.get(listing, params={"code": SYSTEM_KEY}).status_code == 200
        assert http.get(listing, headers={"x-functions-key": SYSTEM_KEY}).status_code == 200
        assert http.get(listing, params={"code": MASTER}).status_code == 200


def test_urls_handed_out_carry_the_system_key(keyed_host: HostProcess) -> None:
    with httpx.Client(timeout=30) as http:
        # Through the API itself: the check-status 202.
        started = http.post(
            keyed_host.url + HOOK + "/orchestrators/hello_orchestrator",
            params={"code": SYSTEM_KEY},
            json={"cities": ["Oslo"]},
        )
        assert started.status_code == 202, started.text
        payload = started.json()
        for name, url in payload.items():
            if name != "id":
                assert parse_qs(urlsplit(url).query)["code"] == [SYSTEM_KEY], (name, url)
        assert started.headers["Location"] == payload["statusQueryGetUri"]
        assert _wait_completed(http, payload["statusQueryGetUri"])["output"] == ["Hello Oslo!"]

        # Through a starter's durable client (in-process, no key of its own):
        # create_check_status_response builds its URLs from the binding.
        from_starter = http.post(
            keyed_host.url + "/api/orchestrators/hello_orchestrator",
            params={"code": FUNCTION_KEY},
            json={"cities": ["Rome"]},
        )
        assert from_starter.status_code == 202, from_starter.text
        status_url = from_starter.json()["statusQueryGetUri"]
        assert parse_qs(urlsplit(status_url).query)["code"] == [SYSTEM_KEY]
        assert _wait_completed(http, status_url)["output"] == ["Hello Rome!"]
        # The same URL without its key is refused.
        _assert_problem(http.get(status_url.split("?")[0]), 401)

        binding = http.get(keyed_host.url + "/api/binding").json()
        assert binding["managementUrls"]["statusQueryGetUri"].endswith(f"&code={SYSTEM_KEY}")


def test_the_durable_clients_rpc_base_url_needs_no_key(keyed_host: HostProcess) -> None:
    with httpx.Client(timeout=30) as http:
        binding = http.get(keyed_host.url + "/api/binding").json()
        rpc = binding["rpcBaseUrl"]
        # The extension's local RPC endpoint: loopback only, its own port, no key.
        assert rpc.startswith("http://127.0.0.1:") and rpc.endswith("/durabletask/")
        assert urlsplit(rpc).port != urlsplit(keyed_host.url).port
        started = http.post(rpc + "orchestrators/hello_orchestrator", json={"cities": ["Lima"]})
        assert started.status_code == 202, started.text
        # Its 202 names the public API (with the key), not the loopback listener.
        status_url = started.json()["statusQueryGetUri"]
        assert status_url.startswith(keyed_host.url + HOOK)
        assert f"code={SYSTEM_KEY}" in status_url
        assert http.get(rpc + "instances/").status_code == 200

    # What operations/instance_pages.py does: aiohttp, {rpcBaseUrl}instances/, no key.
    client = df.DurableOrchestrationClient(
        json.dumps(
            {"taskHubName": "h", "creationUrls": {}, "managementUrls": {}, "rpcBaseUrl": rpc}
        )
    )
    page = asyncio.run(read_instance_page(client, top=50))
    assert any(item.instance_id == started.json()["id"] for item in page.instances)


# --- the keys file ------------------------------------------------------------------------


def test_a_new_keys_file_has_a_system_key(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path / "state")
    saved = json.loads((tmp_path / "state" / "keys.json").read_text())
    assert set(saved) == {"masterKey", "hostKeys", "functionKeys", "systemKeys"}
    assert saved["systemKeys"][DURABLE_EXTENSION_KEY_NAME] == keys.durable_extension_key
    assert len(keys.durable_extension_key) >= 40
    assert keys.durable_extension_key not in (keys.master_key, keys.default_key)
    assert (tmp_path / "state" / "keys.json").stat().st_mode & 0o777 == 0o600


def test_an_older_keys_file_gains_a_stable_system_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    older = {"masterKey": MASTER, "hostKeys": {"default": HOST_KEY}, "functionKeys": {}}
    (state / "keys.json").write_text(json.dumps(older))
    first = load_or_create_keys(state)
    saved = json.loads((state / "keys.json").read_text())
    assert saved == {
        **older,
        "systemKeys": {DURABLE_EXTENSION_KEY_NAME: first.durable_extension_key},
    }
    # Derived from the master key: the same on every start, even from a file that could
    # not be written back, and whichever of two hosts upgrading it at once wrote last.
    (state / "keys.json").write_text(json.dumps(older))
    assert load_or_create_keys(state).durable_extension_key == first.durable_extension_key


def test_system_keys_open_only_their_webhook(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)
    system = keys.durable_extension_key
    assert keys.allows_system(system, DURABLE_EXTENSION_KEY_NAME)
    assert keys.allows_system(keys.master_key, DURABLE_EXTENSION_KEY_NAME)
    assert not keys.allows_system(keys.default_key, DURABLE_EXTENSION_KEY_NAME)
    assert not keys.allows_system(system, "another_extension")
    assert not keys.allows_system("\udcff", DURABLE_EXTENSION_KEY_NAME)
    # A system key is no function key.
    assert not keys.allows(system, "http_start", "function")
