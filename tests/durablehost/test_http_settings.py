"""local.settings.json applied by the whole host: Values, CORS, disabled functions, port."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from durablehost.testing import run_host

APPS = Path(__file__).parent / "apps"


@pytest.fixture
def http_app(tmp_path: Path) -> Path:
    app_dir = tmp_path / "app"
    shutil.copytree(APPS / "http_basic", app_dir)
    (app_dir / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "GREETING_SOURCE": "local settings",
                    "ALREADY_SET": "from the file",
                    "AzureWebJobs.boom.Disabled": "true",
                },
                "Host": {"CORS": "https://app.example.com", "CORSCredentials": True},
            }
        )
    )
    return app_dir


async def test_values_do_not_override_the_environment(http_app: Path) -> None:
    async with (
        run_host(http_app, env={"ALREADY_SET": "from the environment"}) as host,
        httpx.AsyncClient(base_url=host.url) as http,
    ):
        assert (await http.get("/api/env/GREETING_SOURCE")).json() == {"value": "local settings"}
        assert (await http.get("/api/env/ALREADY_SET")).json() == {"value": "from the environment"}
    assert "GREETING_SOURCE" not in os.environ and "ALREADY_SET" not in os.environ


async def test_disabled_function_is_not_served(http_app: Path) -> None:
    async with run_host(http_app) as host, httpx.AsyncClient(base_url=host.url) as http:
        assert (await http.get("/api/boom")).status_code == 404
        assert (await http.get("/api/async-boom")).status_code == 500
        assert "boom" not in [name for name, _, _ in host.host.function_urls()]


async def test_cors_preflight_and_simple_request(http_app: Path) -> None:
    async with run_host(http_app) as host, httpx.AsyncClient(base_url=host.url) as http:
        preflight = await http.options(
            "/api/echo",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert preflight.headers["access-control-allow-methods"] == "POST"
        assert preflight.headers["access-control-allow-headers"] == "content-type"
        assert preflight.headers["access-control-allow-credentials"] == "true"

        simple = await http.get("/api/hello", headers={"Origin": "https://app.example.com"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
        missing = await http.get("/api/nope", headers={"Origin": "https://app.example.com"})
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == "https://app.example.com"

        other = await http.get("/api/hello", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
