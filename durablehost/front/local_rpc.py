"""The durable client's own endpoint: the management API on 127.0.0.1, without keys.

On Azure the Durable Task extension serves its management API twice: publicly under
/runtime/webhooks/durabletask/, behind the `durabletask_extension` system key, and on a
local RPC listener (`http://127.0.0.1:17071/durabletask/`, LocalHttpListener) that the
language workers reach through the binding's `rpcBaseUrl`, with no key at all. So do we:
the binding's `rpcBaseUrl` points at this listener, bound to the loopback interface only,
on a free port. The SDK's calls, the app's own reads of `{rpcBaseUrl}instances/` and any
worker process keep working under `--enforce-keys` without ever holding a key, and the
public API stays closed to callers without one, even on a host bound to 127.0.0.1.

Calls made on the host's own event loop skip even this socket (client_transport answers
them in-process with the same API).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from durablehost.front.management import InProcessManagement, add_management_routes
from durablehost.front.management_guards import MAX_PAYLOAD_BYTES
from durablehost.model.instances import TaskHubClient
from durablehost.wire.client import DEFAULT_CONNECTION

__all__ = ["LOCAL_RPC_PATH", "LocalRpcEndpoint"]

# The extension's local RPC path (its rpcBaseUrl is http://127.0.0.1:<port>/durabletask/).
LOCAL_RPC_PATH = "/durabletask/"
_LOOPBACK = "127.0.0.1"


class LocalRpcEndpoint:
    """The management API on a loopback-only listener of its own, for the durable client."""

    def __init__(
        self,
        hub: TaskHubClient,
        *,
        hub_name: str,
        public_url: str,
        connection: str = DEFAULT_CONNECTION,
        required_query: Mapping[str, str] | None = None,
        max_body_bytes: int = MAX_PAYLOAD_BYTES,
        access_log: logging.Logger | None = None,
    ) -> None:
        self._access_log = access_log
        self._app = web.Application(client_max_size=max_body_bytes)
        # URLs handed out from here (a 202's check-status links) name the public API with
        # its key, as the extension's do whichever listener answered.
        self.management: InProcessManagement = add_management_routes(
            self._app,
            hub,
            hub_name=hub_name,
            connection=connection,
            required_query=required_query,
            max_body_bytes=max_body_bytes,
            prefix=LOCAL_RPC_PATH,
            public_url=public_url,
        )
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The binding's `rpcBaseUrl`: `http://127.0.0.1:<port>/durabletask/`."""
        if self._port is None:
            raise RuntimeError("the local RPC endpoint is not started")
        return f"http://{_LOOPBACK}:{self._port}{LOCAL_RPC_PATH}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        runner = web.AppRunner(self._app, access_log=self._access_log, handle_signals=False)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, _LOOPBACK, 0)
        await site.start()
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening; safe to call more than once."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
