"""End to end: the app from its deployment files alone, with function keys enforced (as
in Azure, where every route is AuthLevel.FUNCTION)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import REPO, WEBHOOK_SECRET, AppHost, eventually, json_of
from tests.support.azurite import Azurite
from tests.support.hostproc import run_host_process

pytestmark = pytest.mark.e2e

# What a deployment package holds (see .funcignore): the app and nothing of the repo's tools.
APP_FILES = ("function_app.py", "host.json", "requirements.txt")
APP_PACKAGES = ("operations", "orchestrators", "activities")
HOST_KEY = "test-host-key-" + "x" * 30


def _deployment_copy(target: Path) -> Path:
    target.mkdir()
    for name in APP_FILES:
        shutil.copy(REPO / name, target / name)
    for package in APP_PACKAGES:
        shutil.copytree(
            REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    keys = {"masterKey": "test-master-" + "y" * 30, "hostKeys": {"default": HOST_KEY}}
    (target / ".durablehost").mkdir()
    (target / ".durablehost" / "keys.json").write_text(json.dumps(keys))
    return target


def test_keys_are_required_and_carried_into_the_operation_links(
    tmp_path: Path, azurite: Azurite
) -> None:
    app_dir = _deployment_copy(tmp_path / "app")
    tag = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "OPS_RESULTS_CONTAINER": f"results-{tag}",
        "OPS_STATE_CONTAINER": f"state-{tag}",
        "OPS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    with (
        run_host_process(
            app_dir, hub=tmp_path / "hub.sqlite3", env=env, args=["--enforce-keys"]
        ) as process,
        httpx.Client(timeout=30) as http,
    ):
        host = AppHost(url=process.url, http=http, settings=env, process=process)
        refused = http.post(f"{host.api}/report", json={"rows": 10})
        assert refused.status_code == 401

        started = http.post(f"{host.api}/report", params={"code": HOST_KEY}, json={"rows": 10})
        assert started.status_code == 202
        body = json_of(started)
        assert body["operationUri"].endswith(f"/{body['id']}?code={HOST_KEY}")
        assert body["resultUri"].endswith(f"/{body['id']}/result?code={HOST_KEY}")
        assert body["statusUri"].endswith(f"/{body['id']}/status?code={HOST_KEY}")
        assert started.headers["Location"] == body["operationUri"]
        assert started.headers["Operation-Location"] == body["statusUri"]

        assert host.http.get(body["operationUri"].split("?")[0]).status_code == 401

        def ended() -> dict[str, object] | None:
            # The key is already in the URL's query (httpx's params= would replace it).
            status = json_of(http.get(body["operationUri"] + "&redirect=false"))
            return status if status["status"] in ("Succeeded", "Failed", "Canceled") else None

        final = eventually(ended, timeout=30)
        assert final["resultUri"] == body["resultUri"]
        assert http.get(final["resultUri"]).json()["rows"] == 10
        assert http.get(body["statusUri"]).json()["status"] == "Succeeded"
        # The output is stored in the history: the key never goes into it.
        built_in = json_of(http.get(body["statusQueryGetUri"]))
        assert built_in["output"]["resultUri"] == body["resultUri"].split("?")[0]

        by_header = http.get(host.api, headers={"x-functions-key": HOST_KEY})
        assert by_header.status_code == 200
        assert body["id"] in [item["id"] for item in by_header.json()["value"]]
