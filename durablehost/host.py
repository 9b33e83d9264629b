"""The host: config, the app, the task hub, the engine and the HTTP server, started together.

    host = DurableHost(HostOptions(app_dir=Path("."), port=7071))
    await host.start()      # reads settings, imports the app, opens the hub, serves
    print(host.banner())    # every HTTP function's URL, like `func start`
    ...
    await host.stop()       # stops timers, the server, then the engine

One aiohttp application on one port serves the HTTP triggers (durablehost.front.http_front) and
the Durable Functions management API (durablehost.front.management) under
/runtime/webhooks/durabletask/, which is also the durable client's `rpcBaseUrl`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from durablehost.app.config import (
    HostConfig,
    LocalSettings,
    apply_settings,
    is_disabled,
    load_host_config,
    load_local_settings,
    resolve_app_setting,
)
from durablehost.app.invocation import FunctionInvoker
from durablehost.app.loader import FunctionIndex, load_app
from durablehost.errors import AppLoadError, ConfigError
from durablehost.front.availability import HostAvailability
from durablehost.front.client_transport import register_management, unregister_management
from durablehost.front.connections import (
    ConnectionLimits,
    GuardedTCPSite,
    ProblemRequestHandler,
    body_deadline_middleware,
)
from durablehost.front.dashboard import add_dashboard_routes, dashboard_functions, dashboard_url
from durablehost.front.http_front import (
    MAX_BODY_BYTES,
    HttpFront,
    build_http_routes,
    cors_middleware,
)
from durablehost.front.keys import FunctionKeys, load_or_create_keys
from durablehost.front.local_rpc import LocalRpcEndpoint
from durablehost.front.routes import RouteTemplateError
from durablehost.model.instances import TaskHubClient
from durablehost.store.sqlite import HubReadOnlyError
from durablehost.triggers.storage import StorageTriggers
from durablehost.triggers.timer import TimerService
from durablehost.wire.client import DEFAULT_CONNECTION, WEBHOOK_PATH, client_binding_json

if TYPE_CHECKING:
    from durablehost.engine.engine import DurableEngine
    from durablehost.store import SqliteTaskHubStore
    from durablehost.store.overview import HubOverview
    from durablehost.store.writer import ProcessWriter

__all__ = ["STATE_DIR_NAME", "DurableHost", "HostOptions", "default_hub_path"]

log = logging.getLogger(__name__)

# Per-app local state (task hub, keys, timer status); git-ignored.
STATE_DIR_NAME = ".durablehost"
# How long requests in progress get to finish when the host stops (long polls such as
# wait_for_completion must not hold a shutdown for a minute); those left answer 503.
_SHUTDOWN_GRACE_SECONDS = 5.0
# What aiohttp then gives the connections still open (the drain above has answered them).
_CONNECTIONS_CLOSE_SECONDS = 2.0


def default_hub_path(app_dir: Path, hub_name: str) -> Path:
    """Where the task hub lives when --hub is not given."""
    return app_dir / STATE_DIR_NAME / f"{hub_name}.sqlite3"


def _worker_threads() -> int:
    # The Python worker's own knob; its default matches ThreadPoolExecutor's.
    configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return min(32, (os.cpu_count() or 1) + 4)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@dataclass(slots=True)
class HostOptions:
    """What `durablehost start` takes on its command line."""

    app_dir: Path = field(default_factory=lambda: Path("."))
    host: str = "127.0.0.1"
    port: int | None = None  # None: local.settings.json Host.LocalHttpPort, else 7071
    hub: str | Path | None = None  # None: <app>/.durablehost/<hubName>.sqlite3
    enforce_keys: bool = False
    access_log: bool = False
    # Commit episodes in a writer process of their own (durablehost.store.writer): the
    # CLI's default; in-process test hosts commit inline.
    writer_process: bool = False
    # Header and body timeouts, the connection cap (durablehost.front.connections).
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    # Worker processes running the activities (durablehost.workers): None reads
    # FUNCTIONS_WORKER_PROCESS_COUNT (the CLI's default); 0 runs them in this process.
    workers: int | None = 0
    dashboard: bool = True  # the browser dashboard under /runtime/dashboard/


class DurableHost:
    """Runs one Function App: HTTP triggers, timers, management API and durable engine."""

    def __init__(self, options: HostOptions) -> None:
        self.options = options
        self.app_dir = Path(options.app_dir).resolve()
        self.config: HostConfig | None = None
        self.settings: LocalSettings | None = None
        self.index: FunctionIndex | None = None
        self.keys: FunctionKeys | None = None
        self.front: HttpFront | None = None
        self.hub_location: str | Path | None = None
        self.added_environment: list[str] = []
        self.port: int | None = None
        self._engine: DurableEngine | None = None
        self._store: SqliteTaskHubStore | None = None
        self._runner: web.AppRunner | None = None
        self._timers: TimerService | None = None
        self._storage: StorageTriggers | None = None  # queue and blob triggers, bindings
        self._executor: ThreadPoolExecutor | None = None
        self._in_process_url: str | None = None
        self._local_rpc: LocalRpcEndpoint | None = None
        self._writer: ProcessWriter | None = None
        # Answers 503 once the host stops or its writer died; tracks requests in progress.
        self._availability = HostAvailability()
        self._overview: HubOverview | None = None
        # Set when the host cannot go on (its hub writer died): `durablehost start`
        # then stops and exits non-zero, and the next start recovers from the hub.
        self.failed = asyncio.Event()
        self.failure: str | None = None
        self._client_bindings: dict[tuple[str, str, str], str] = {}

    # -- what callers read ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://host:port` of the running server."""
        if self.port is None:
            raise RuntimeError("the host is not started")
        return f"http://{_url_host(self.options.host)}:{self.port}"

    @property
    def rpc_base_url(self) -> str:
        """The durable client binding's `rpcBaseUrl`: the management API on its keyless
        loopback listener (front/local_rpc.py), as the extension's local RPC endpoint."""
        if self._local_rpc is not None:
            return self._local_rpc.url
        return f"{self.url}{WEBHOOK_PATH}/"

    @property
    def management_query(self) -> dict[str, str]:
        """What every management URL handed out carries: `code=<durabletask_extension
        system key>` with keys enforced, as the binding's requiredQueryStringParameters."""
        return {"code": self.keys.durable_extension_key} if self.keys is not None else {}

    @property
    def client(self) -> TaskHubClient:
        """The engine, as a TaskHubClient (start, status, events, purge...)."""
        if self._engine is None:
            raise RuntimeError("the host is not started")
        return self._engine

    def function_urls(self) -> list[tuple[str, str, str]]:
        """(function name, methods, URL) for every HTTP function."""
        if self.front is None:
            return []
        rows = []
        for route, url in self.front.function_urls(self.url):
            methods = ",".join(sorted(route.methods)) if route.methods else "*"
            rows.append((route.info.function_name, methods, url))
        return rows

    def banner(self) -> str:
        """The start-up text: functions and their URLs, like `func start` prints them."""
        assert self.index is not None and self.config is not None
        lines = ["", "Functions:", ""]
        for name, methods, url in self.function_urls():
            lines.append(f"        {name}: [{methods}] {url}")
        lines.append("")
        others = [
            *((info.function_name, "timerTrigger") for info in self.index.timers),
            *(self._storage.describe() if self._storage is not None else ()),
            *(
                (info.function_name, "orchestrationTrigger")
                for info in self.index.orchestrators.values()
            ),
            *((info.function_name, "activityTrigger") for info in self.index.activities.values()),
            *((info.function_name, "entityTrigger") for info in self.index.entities.values()),
        ]
        lines.extend(f"        {name}: {kind}" for name, kind in others)
        if others:
            lines.append("")
        lines.append(f"Task hub '{self.config.hub_name}' in {self.hub_location}")
        lines.append(f"Management API: {self.url}{WEBHOOK_PATH}/")
        if self.options.dashboard:
            lines.append(f"Dashboard: {dashboard_url(self.url, self.keys)}")
        if self.keys is not None:
            lines.append(
                f"Function keys enforced (from {self.keys.source}): "
                f"default key {self.keys.default_key}"
            )
        return "\n".join(lines)

    # -- lifecycle --------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Everything before any I/O that must be cleaned up: settings, config, the app."""
        if not self.app_dir.is_dir():
            raise AppLoadError(f"app folder {self.app_dir} does not exist")
        self.settings = load_local_settings(self.app_dir)
        # Settings first: the app reads them at import time and host.json may refer to them.
        self.added_environment = apply_settings(self.settings)
        self.config = load_host_config(self.app_dir)
        try:
            self.index = load_app(self.app_dir)
        except AppLoadError as error:
            if self.config.has_comments and isinstance(error.__cause__, ValueError):
                raise ConfigError(
                    f"{self.config.source} has comments, which the Durable Functions SDK cannot "
                    "read (it parses ./host.json with json.loads when imported): remove them"
                ) from error
            raise
        if self.index.entities:
            names = ", ".join(sorted(info.function_name for info in self.index.entities.values()))
            log.warning(
                "durable entities are not supported by durablehost; the entity functions %s "
                "will not run, and an orchestration that calls or signals one fails there",
                names,
            )
        if self.options.hub is not None:
            self.hub_location = self.options.hub
        else:
            self.hub_location = default_hub_path(self.app_dir, self.config.hub_name)
        if isinstance(self.hub_location, Path) or "://" not in str(self.hub_location):
            Path(self.hub_location).parent.mkdir(parents=True, exist_ok=True)
        if self.options.enforce_keys:
            self.keys = load_or_create_keys(self.app_dir / STATE_DIR_NAME)
        self._warn_about_other_hubs()

    def _client_binding(self, origin: str, binding: Any) -> str:
        assert self.config is not None
        connection = getattr(binding, "connection_name", None) or DEFAULT_CONNECTION
        # The same text for every call from one origin: built once (a JSON encoding of
        # a dozen URLs per starter call otherwise). Bounded, as origins come from callers.
        rpc_base_url = self.rpc_base_url
        key = (origin, connection, rpc_base_url)
        cached = self._client_bindings.get(key)
        if cached is None:
            if len(self._client_bindings) >= 256:
                self._client_bindings.clear()
            # The SDK's own calls go to the loopback address even when callers came
            # through a proxy; the URLs it hands out carry the caller's origin.
            cached = self._client_bindings[key] = client_binding_json(
                origin,
                self.config.hub_name,
                connection,
                self.management_query,
                rpc_base_url=rpc_base_url,
            )
        return cached

    def _warn_about_other_hubs(self) -> None:
        assert self.index is not None and self.config is not None
        for info in [*self.index.http, *self.index.timers]:
            binding = info.binding_of_type("durableClient")
            task_hub = getattr(binding, "task_hub", None)
            if task_hub and resolve_app_setting(task_hub) != self.config.hub_name:
                log.warning(
                    "%s's durable client names task hub %r; durablehost serves one hub, %r",
                    info.function_name,
                    task_hub,
                    self.config.hub_name,
                )

    def _timer_status_file(self) -> Path | None:
        location = str(self.hub_location)
        if "://" in location:
            return self.app_dir / STATE_DIR_NAME / "timers.json"
        return Path(location).with_name(Path(location).name + ".timers.json")

    async def start(self) -> None:
        """Load everything and start serving; raises AppLoadError/ConfigError/OSError."""
        self._prepare()
        # Imported after the app: they pull in the Durable SDK, which reads ./host.json at
        # import time, so config errors must be reported (cleanly) first.
        from durablehost.engine.engine import DurableEngine
        from durablehost.front.management import add_management_routes
        from durablehost.store import open_store
        from durablehost.store.overview import HubOverview
        from durablehost.store.writer import ProcessWriter
        from durablehost.workers import activity_pool

        assert self.index is not None and self.config is not None
        http_functions = [info for info in self.index.http if not is_disabled(info.function_name)]
        try:
            routes = build_http_routes(http_functions)
        except RouteTemplateError as exc:
            raise AppLoadError(str(exc)) from None
        self._storage = StorageTriggers(self.config.extensions, app_name=self.app_dir.name)
        self._executor = ThreadPoolExecutor(_worker_threads(), thread_name_prefix="function")
        invoker = FunctionInvoker(
            self._executor,
            function_directory=str(self.app_dir),
            client_binding=self._client_binding,
            bindings=self._storage.bindings,
        )
        self.front = HttpFront(
            routes,
            route_prefix=self.config.route_prefix,
            invoker=invoker,
            keys=self.keys,
            availability=self._availability,
        )
        try:
            self._timers = TimerService(
                [info for info in self.index.timers if not is_disabled(info.function_name)],
                invoker,
                origin=lambda: self.url,
                status_file=self._timer_status_file(),
            )
            self._storage.attach(
                invoker,
                self.index,
                queues=[info for info in self.index.queues if not is_disabled(info.function_name)],
                blobs=[info for info in self.index.blobs if not is_disabled(info.function_name)],
                origin=lambda: self.url,
            )
            assert self.hub_location is not None
            # The writer's pipe is watched with loop.add_reader, which Windows' default
            # event loop lacks: there the host commits inline.
            writes_here = not self.options.writer_process or sys.platform == "win32"
            self._store = _open_hub(
                functools.partial(open_store, checkpoints=writes_here), self.hub_location
            )
            if not writes_here:
                self._writer = ProcessWriter(self._store, on_failure=self._writer_failed)
        except BaseException:
            await self.stop()
            raise
        try:
            self._engine = DurableEngine(
                self.index,
                self._store,
                hub_name=self.config.hub_name,
                max_concurrent_activities=self.config.max_concurrent_activities,
                max_concurrent_orchestrations=self.config.max_concurrent_orchestrations,
                writer=self._writer,
                activity_runner=activity_pool(
                    self.app_dir, self.options.workers, self.config.max_concurrent_activities
                ),
            )
            assert self.settings is not None
            limits = self.options.limits
            middlewares = [
                self._availability.middleware(),
                body_deadline_middleware(limits.body_timeout),
            ]
            if self.settings.cors_origins:
                middlewares.append(
                    cors_middleware(
                        self.settings.cors_origins, credentials=self.settings.cors_credentials
                    )
                )
            app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
            add_management_routes(
                app,
                self._engine,
                hub_name=self.config.hub_name,
                required_query=self.management_query,
                keys=self.keys,
            )
            if self.options.dashboard:
                self._overview = HubOverview(self.hub_location)
                add_dashboard_routes(
                    app,
                    overview=self._overview,
                    functions=dashboard_functions(self.index, self.front),
                    keys=self.keys,
                )
            self.front.install(app)
            await self._engine.start()
            await self._serve(app)
            self._local_rpc = LocalRpcEndpoint(
                self._engine,
                hub_name=self.config.hub_name,
                public_url=self.url,
                required_query=self.management_query,
                access_log=logging.getLogger("aiohttp.access") if self.options.access_log else None,
            )
            await self._local_rpc.start()
            # Durable client calls on this loop skip the loopback HTTP round trip; the rest
            # still go over HTTP (client_transport).
            self._in_process_url = self.rpc_base_url
            register_management(self._in_process_url, self._local_rpc.management)
            await self._timers.start()
            await self._storage.start()
        except BaseException:
            await self.stop()
            raise

    def _writer_failed(self, reason: str) -> None:
        self.failure = reason
        self._availability.refuse(f"the host is stopping: {reason}")
        self.failed.set()

    async def _serve(self, app: web.Application) -> None:
        port = self.options.port
        if port is None:
            assert self.settings is not None
            port = self.settings.local_http_port or 7071
        limits = self.options.limits
        # What aiohttp's server hands every connection handler it makes (and ours).
        handler_options: dict[str, Any] = {
            "access_log": logging.getLogger("aiohttp.access") if self.options.access_log else None,
            # aiohttp closes a connection still waiting for a complete request head when
            # this runs out (from its start or the previous response): the header timeout.
            "keepalive_timeout": limits.header_timeout,
        }
        runner = web.AppRunner(
            app,
            shutdown_timeout=_CONNECTIONS_CLOSE_SECONDS,
            handle_signals=False,
            **handler_options,
        )
        await runner.setup()
        self._runner = runner
        site: web.TCPSite | GuardedTCPSite
        if sys.platform == "win32":
            # Windows' default event loop cannot watch a listening socket (add_reader):
            # aiohttp's own site, without the connection cap.
            site = web.TCPSite(runner, self.options.host, port, backlog=limits.backlog)
        else:
            server = runner.server
            assert server is not None
            loop = asyncio.get_running_loop()
            site = GuardedTCPSite(
                runner,
                self.options.host,
                port,
                limits=limits,
                handler_factory=lambda: ProblemRequestHandler(server, loop=loop, **handler_options),
                open_connections=lambda: len(server.connections),
            )
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.options.host}:{port}: {exc.strerror or exc}; "
                "pick another --port"
            ) from None
        self.port = site.port

    async def stop(self) -> None:
        """Stop timers, the server, then the engine; safe to call more than once.

        New requests are answered 503 from the start; the listening sockets close; the
        requests in progress get _SHUTDOWN_GRACE_SECONDS to finish (the rest answer 503).
        Only then do durable clients lose the management API (in-process and local RPC)
        and the engine stop, so a starter in progress still reaches a running engine.
        """
        self._availability.refuse("the host is stopping")
        if self._timers is not None:
            await self._timers.stop()
        if self._storage is not None:
            await self._storage.stop()
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()
            await self._availability.drain(_SHUTDOWN_GRACE_SECONDS)
            await self._runner.cleanup()
            self._runner = None
        if self._in_process_url is not None:
            unregister_management(self._in_process_url)
            self._in_process_url = None
        if self._local_rpc is not None:
            await self._local_rpc.stop()
            self._local_rpc = None
        if self._engine is not None:
            try:
                await self._engine.stop()
            finally:
                self._engine = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._overview is not None:
            self._overview.close()
            self._overview = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._executor is not None:
            # Threads still inside user code finish on their own; nobody waits for them.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        await _close_sdk_session()


def _open_hub(
    open_store: Callable[[str | Path], SqliteTaskHubStore], location: str | Path
) -> SqliteTaskHubStore:
    try:
        store = open_store(location)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"cannot open the task hub {location}: {exc}; pass another --hub or delete the file"
        ) from exc
    try:
        # Refuse to serve a hub that cannot take a write (a read-only file or mount):
        # every start would fail later.
        store.check_writable()
    except HubReadOnlyError as exc:
        store.close()
        raise ConfigError(
            f"{exc}; make it writable or pass another --hub (a host needs to write its hub)"
        ) from exc
    return store


async def _close_sdk_session() -> None:
    """Drop the SDK's module-wide aiohttp session: it belongs to this host's event loop,
    and a host started later (in-process tests) runs on another loop."""
    try:
        from azure.durable_functions.models.utils import http_utils
    except ImportError:
        return
    session = getattr(http_utils, "_client_session", None)
    if session is not None and not session.closed:
        await session.close()
    http_utils._client_session = None
    # Its lock binds to the first loop that waits on it, so it goes too.
    http_utils._session_lock = asyncio.Lock()
