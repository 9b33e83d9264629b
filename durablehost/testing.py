"""Run an app on durablehost inside a test, on a free port, and talk to it over real HTTP.

    from durablehost.testing import run_host

    async def test_chaining(tmp_path):
        async with run_host("path/to/app", hub=tmp_path / "hub.sqlite3") as host:
            async with httpx.AsyncClient(base_url=host.url) as http:
                response = await http.post("/api/orchestrators/hello_sequence")
            status = await host.client.wait_for_completion(response.json()["id"], 30)
            assert status.runtime_status == "Completed"

`run_host` starts the whole host (settings, app, task hub, engine, HTTP server, timers) in
the running event loop and stops it on exit. `host.url` is `http://127.0.0.1:<port>`;
`host.client` is the engine as a `TaskHubClient`. Environment variables that the app's
local.settings.json added are removed again on exit, as are the ones passed in `env`.

One app per test process works best: the app's modules stay imported (as `function_app`
and whatever it imports) for the life of the process. For a real separate process, see
durablehost/process.py.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from durablehost.front.keys import FunctionKeys
from durablehost.host import DurableHost, HostOptions
from durablehost.model.instances import TaskHubClient

__all__ = ["RunningHost", "run_host"]


@dataclass(frozen=True, slots=True)
class RunningHost:
    """A host started by run_host."""

    host: DurableHost

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`, no trailing slash."""
        return self.host.url

    @property
    def client(self) -> TaskHubClient:
        """The engine: start, query, signal and purge instances without HTTP."""
        return self.host.client

    @property
    def port(self) -> int:
        assert self.host.port is not None
        return self.host.port

    @property
    def hub_location(self) -> str | Path:
        assert self.host.hub_location is not None
        return self.host.hub_location

    @property
    def keys(self) -> FunctionKeys | None:
        """The keys in force (with enforce_keys=True), else None."""
        return self.host.keys

    def function_url(self, function_name: str) -> str:
        """The URL of one HTTP function (route template placeholders left in)."""
        for name, _, url in self.host.function_urls():
            if name == function_name:
                return url
        raise KeyError(f"no HTTP function named {function_name!r}")


@asynccontextmanager
async def run_host(
    app_dir: str | Path,
    *,
    hub: str | Path | None = None,
    port: int = 0,
    enforce_keys: bool = False,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[RunningHost]:
    """Start the app in `app_dir` on `port` (0: a free one) and stop it when the block ends.

    `hub` defaults to a fresh task hub in a temporary folder, deleted afterwards; pass a
    path to keep it (e.g. to start a second host on the same hub and see work resume).
    `env` sets environment variables for the duration (before the app is imported).
    """
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    scratch = tempfile.TemporaryDirectory(prefix="durablehost-") if hub is None else None
    hub_location = hub if hub is not None else Path(scratch.name) / "hub.sqlite3"  # type: ignore[union-attr]
    host = DurableHost(
        HostOptions(app_dir=Path(app_dir), port=port, hub=hub_location, enforce_keys=enforce_keys)
    )
    try:
        await host.start()
        yield RunningHost(host)
    finally:
        try:
            await host.stop()
        finally:
            for name in host.added_environment:
                os.environ.pop(name, None)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            if scratch is not None:
                scratch.cleanup()
