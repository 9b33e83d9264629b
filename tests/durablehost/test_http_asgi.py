"""Apps wrapped by azure.functions.AsgiFunctionApp run unmodified (catch-all route)."""

from __future__ import annotations

from pathlib import Path

import httpx

from durablehost.testing import run_host

APPS = Path(__file__).parent / "apps"


async def test_asgi_app_serves_every_path_and_method() -> None:
    async with (
        run_host(APPS / "asgi") as host,
        httpx.AsyncClient(base_url=host.url) as http,
    ):
        response = await http.get("/api/some/path", params={"x": "1"})
        assert (response.status_code, response.text) == (200, "GET /api/some/path ?x=1 b''")
        response = await http.post("/api/items", content=b"payload")
        assert response.text == "POST /api/items ? b'payload'"
