"""The whole host in-process (durablehost.testing.run_host): HTTP functions with a durable
client, the management API on the same port, a timer that starts an orchestration."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from durablehost.model.instances import RuntimeStatus
from durablehost.testing import run_host

APPS = Path(__file__).parent / "apps"


@pytest.fixture
def durable_app(tmp_path: Path) -> Path:
    """A copy of the durable_basic app with its local.settings.json (git-ignored)."""
    app_dir = tmp_path / "app"
    shutil.copytree(APPS / "durable_basic", app_dir)
    (app_dir / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "HUB_NAME": "InProcessHub",
                    "TICK_SCHEDULE": "0 0 0 1 1 *",
                    "TICK_INSTANCE_ID": "tick-instance",
                },
            }
        )
    )
    return app_dir


async def test_durable_client_flow_over_http(durable_app: Path, tmp_path: Path) -> None:
    async with run_host(durable_app, hub=tmp_path / "hub.sqlite3") as host:
        assert os.environ["HUB_NAME"] == "InProcessHub"
        async with httpx.AsyncClient(base_url=host.url, timeout=30) as http:
            response = await http.post(
                "/api/orchestrators/hello_sequence",
                headers={"X-Forwarded-Host": "ops.example.com", "X-Forwarded-Proto": "https"},
            )
            assert response.status_code == 202
            payload = response.json()
            instance_id = payload["id"]
            # URLs handed out carry the caller's (proxy's) origin.
            assert response.headers["Location"].startswith(
                f"https://ops.example.com/runtime/webhooks/durabletask/instances/{instance_id}"
            )
            assert "taskHub=InProcessHub" in payload["statusQueryGetUri"]

            status = await host.client.wait_for_completion(instance_id, 30)
            assert status is not None and status.runtime_status == RuntimeStatus.COMPLETED
            assert json.loads(status.output or "null") == [
                "Hello Tokyo!",
                "Hello Seattle!",
                "Hello London!",
            ]
            # The same status through the management API on the host's own address.
            local_status = payload["statusQueryGetUri"].replace("https://ops.example.com", "")
            answer = await http.get(local_status)
            assert answer.status_code == 200
            assert answer.json()["runtimeStatus"] == "Completed"

            # An HTTP function reading status with the SDK client (GET through rpcBaseUrl).
            answer = await http.get(f"/api/status/{instance_id}")
            assert answer.json()["runtimeStatus"] == "Completed"

            answer = await http.post("/api/wait/hello_sequence")
            assert answer.status_code == 200
            assert answer.json() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

        # run_on_startup timer with a durable client started this one.
        ticked = await host.client.wait_for_completion("tick-instance", 30)
        assert ticked is not None and ticked.runtime_status == RuntimeStatus.COMPLETED
        assert host.function_url("http_status").endswith("/api/status/{instanceId}")
    # Settings from local.settings.json are taken back out of the environment.
    assert "HUB_NAME" not in os.environ


async def test_second_host_on_the_same_hub_sees_earlier_instances(
    durable_app: Path, tmp_path: Path
) -> None:
    hub = tmp_path / "shared.sqlite3"
    async with run_host(durable_app, hub=hub) as host:
        instance_id = await host.client.start_orchestration("hello_sequence", None)
        await host.client.wait_for_completion(instance_id, 30)
    async with run_host(durable_app, hub=hub) as host:
        status = await host.client.get_status(instance_id)
        assert status is not None and status.runtime_status == RuntimeStatus.COMPLETED


async def test_default_hub_lives_in_the_app_state_folder(durable_app: Path) -> None:
    from durablehost.host import DurableHost, HostOptions

    host = DurableHost(HostOptions(app_dir=durable_app, port=0))
    try:
        await host.start()
        assert host.hub_location == durable_app / ".durablehost" / "InProcessHub.sqlite3"
        assert "Functions:" in host.banner()
        assert f"http_start: [POST] {host.url}/api/orchestrators/{{functionName}}" in host.banner()
    finally:
        await host.stop()
        for name in host.added_environment:
            os.environ.pop(name, None)
    assert (durable_app / ".durablehost" / "InProcessHub.sqlite3").exists()
