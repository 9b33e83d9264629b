"""The dashboard: a browser page, served by the host, to see and steer every instance.

    GET /runtime/dashboard/                    the page (static HTML + CSS + JS modules)
    GET /runtime/dashboard/assets/{file}       its files, from durablehost/front/dashboard_files/
    GET /runtime/dashboard/api/summary         instances per runtime status (same filters)
    GET /runtime/dashboard/api/instances       a listing that can filter by orchestrator name
    GET /runtime/dashboard/api/instances/{id}/relations   its parent orchestration
    GET /runtime/dashboard/api/functions       every function: trigger, methods, route, URL

The page does everything else through the management API (list, status with history,
raise event, terminate, suspend, resume, rewind, restart, purge, start); these endpoints
only add what that API lacks, read-only. `/runtime/` is reserved by the Functions host
(no app route may start with it), so nothing here can shadow an app's HTTP function.

With `--enforce-keys` the page and the api/ endpoints need the key the management API
takes (passed as `code` or `x-functions-key`); the banner prints the page's URL with it and
the page sends it on every call. The static files are the same for everybody and hold no
data, so they are served without one (a module script cannot carry the page's query).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from aiohttp import web

from durablehost.app.loader import FunctionIndex
from durablehost.errors import InvalidInputError
from durablehost.front.http_front import HttpFront, problem_response
from durablehost.front.keys import FunctionKeys
from durablehost.model.instances import InstancePage, InstanceQuery
from durablehost.wire.client import QueryParameters, list_json, public_base_url

__all__ = [
    "DASHBOARD_PATH",
    "DashboardFunction",
    "InstanceOverview",
    "add_dashboard_routes",
    "dashboard_functions",
    "dashboard_url",
]

DASHBOARD_PATH = "/runtime/dashboard"
_FILES = Path(__file__).with_name("dashboard_files")
_CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
_CONTINUATION_HEADER = "x-ms-continuation-token"
# Pages of the listing: smaller than the management API's default page (100).
_DEFAULT_TOP = 50
_MAX_TOP = 1000

KeyCheck = Callable[[str | None], bool]
# The system key of the Durable Task extension's webhooks, which the management API takes.
_EXTENSION_KEY_NAME = "durabletask_extension"


class InstanceOverview(Protocol):
    """The read-only queries the dashboard adds (durablehost.store.overview implements
    them); called on a worker thread."""

    def status_counts(self, query: InstanceQuery, name: str | None = None) -> dict[str, int]:
        """Instances per runtime status under the query's filters (statuses ignored)."""
        ...

    def list_instances(self, query: InstanceQuery, name: str | None = None) -> InstancePage:
        """A page of instances, newest first, optionally of one orchestrator."""
        ...

    def parent_of(self, instance_id: str) -> str | None:
        """The parent orchestration's id of a sub-orchestration."""
        ...


@dataclass(frozen=True, slots=True)
class DashboardFunction:
    """One function of the app as the Functions page lists it."""

    name: str
    trigger: str
    methods: str | None = None  # HTTP only: "GET,POST", or "*" for every method
    route: str | None = None  # HTTP only: the path with the route prefix
    auth_level: str | None = None

    def to_json(self, base_url: str) -> dict[str, str | None]:
        """The JSON the page reads; `url` is absolute for HTTP functions."""
        return {
            "name": self.name,
            "trigger": self.trigger,
            "methods": self.methods,
            "route": self.route,
            "url": base_url + self.route if self.route is not None else None,
            "authLevel": self.auth_level,
        }


def dashboard_functions(
    index: FunctionIndex, http_front: HttpFront | None
) -> list[DashboardFunction]:
    """Every function of the app: the served HTTP routes first, then the rest by kind."""
    rows: list[DashboardFunction] = []
    if http_front is not None:
        for route in http_front.routes:
            rows.append(
                DashboardFunction(
                    name=route.info.function_name,
                    trigger=route.info.trigger_type,
                    methods=",".join(sorted(route.methods)) if route.methods else "*",
                    route=route.url_path(http_front.route_prefix),
                    auth_level=route.auth_level,
                )
            )
    served = {row.name for row in rows}
    others = [
        *index.http,
        *index.timers,
        *index.orchestrators.values(),
        *index.activities.values(),
        *index.entities.values(),
        *index.unsupported,
    ]
    for info in others:
        if info.function_name not in served:
            rows.append(DashboardFunction(name=info.name, trigger=info.trigger_type))
    return rows


def dashboard_url(base_url: str, keys: FunctionKeys | None = None) -> str:
    """The page's URL as the banner prints it: with keys enforced it carries the key
    the management API takes, which the page then sends with every call."""
    url = f"{base_url}{DASHBOARD_PATH}/"
    return f"{url}?code={quote(_management_key(keys), safe='')}" if keys is not None else url


def _management_key(keys: FunctionKeys) -> str:
    # The key the management API hands out (its `durabletask_extension` system key) where
    # the keys carry one, else the master key: both open the management API.
    system_keys = getattr(keys, "system_keys", None) or {}
    return str(system_keys.get(_EXTENSION_KEY_NAME) or keys.master_key)


def _key_check(keys: FunctionKeys | None) -> KeyCheck | None:
    """Whether a presented key opens the dashboard: the keys that open the management API."""
    if keys is None:
        return None
    allows_system = getattr(keys, "allows_system", None)
    if allows_system is not None:
        return lambda presented: bool(allows_system(presented, _EXTENSION_KEY_NAME))
    # Keys without system keys: the master key (admin level) alone.
    return lambda presented: keys.allows(presented, _EXTENSION_KEY_NAME, "admin")


def add_dashboard_routes(
    app: web.Application,
    *,
    overview: InstanceOverview,
    functions: Sequence[DashboardFunction],
    keys: FunctionKeys | None = None,
) -> None:
    """Register the dashboard's routes on `app` (before any catch-all route).

    With `keys` (--enforce-keys) the page and its api/ endpoints need a key that opens
    the management API; without, they are open, as the management API is then.
    """
    dashboard = _Dashboard(overview, tuple(functions), _key_check(keys))
    app.router.add_get(DASHBOARD_PATH, dashboard.to_page)
    app.router.add_get(DASHBOARD_PATH + "/", dashboard.page)
    app.router.add_get(DASHBOARD_PATH + "/assets/{file}", dashboard.asset)
    app.router.add_get(DASHBOARD_PATH + "/api/summary", dashboard.summary)
    app.router.add_get(DASHBOARD_PATH + "/api/instances", dashboard.instances)
    app.router.add_get(
        DASHBOARD_PATH + "/api/instances/{instanceId}/relations", dashboard.relations
    )
    app.router.add_get(DASHBOARD_PATH + "/api/functions", dashboard.functions)
    app.router.add_route("*", DASHBOARD_PATH + "/{tail:.*}", dashboard.not_found)


def _load_files() -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(_FILES.iterdir()):
        content_type = _CONTENT_TYPES.get(path.suffix)
        if content_type is not None:
            files[path.name] = (path.read_bytes(), content_type)
    return files


class _Dashboard:
    """The handlers, bound to one host's hub and functions."""

    def __init__(
        self,
        overview: InstanceOverview,
        functions: tuple[DashboardFunction, ...],
        authorize: KeyCheck | None,
    ) -> None:
        self._overview = overview
        self._functions = functions
        self._authorize = authorize
        # A few tens of KB, read once: the page is served from memory.
        self._files = _load_files()

    def _refusal(self, request: web.Request) -> web.Response | None:
        if self._authorize is None:
            return None
        presented = request.query.get("code") or request.headers.get("x-functions-key")
        if self._authorize(presented):
            return None
        return problem_response(
            401,
            "Unauthorized",
            "This host enforces keys: open the dashboard URL printed at start (it carries "
            "the key as ?code=), or pass the master key as `code` or x-functions-key",
        )

    async def to_page(self, request: web.Request) -> web.StreamResponse:
        """GET /runtime/dashboard: to the page's canonical URL, query kept."""
        raise web.HTTPPermanentRedirect(
            request.rel_url.with_path(DASHBOARD_PATH + "/").with_query(request.query)
        )

    async def page(self, request: web.Request) -> web.StreamResponse:
        """GET /runtime/dashboard/: the page."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        body, content_type = self._files["index.html"]
        # Never cached: it names the asset versions, and a key may come and go.
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    async def asset(self, request: web.Request) -> web.StreamResponse:
        """GET /runtime/dashboard/assets/{file}: one of the page's files."""
        found = self._files.get(request.match_info["file"])
        if found is None or request.match_info["file"] == "index.html":
            return problem_response(
                404, "Not Found", f"The dashboard has no file {request.match_info['file']!r}"
            )
        body, content_type = found
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """Anything else under /runtime/dashboard/."""
        return problem_response(
            404,
            "Not Found",
            f"The dashboard serves no {request.method} {request.path}; open {DASHBOARD_PATH}/",
        )

    async def _answer(
        self, request: web.Request, work: Callable[[QueryParameters], web.Response]
    ) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            query = QueryParameters(request.query)
            # The queries are SQLite reads: off the event loop, which serves the engine.
            return await asyncio.to_thread(work, query)
        except InvalidInputError as error:
            return problem_response(400, "Bad Request", str(error))

    async def summary(self, request: web.Request) -> web.Response:
        """GET api/summary: {"counts": {status: n}, "total": n} under the filters."""

        def work(query: QueryParameters) -> web.Response:
            counts = self._overview.status_counts(_instance_query(query), _name(query))
            return web.json_response({"counts": counts, "total": sum(counts.values())})

        return await self._answer(request, work)

    async def instances(self, request: web.Request) -> web.Response:
        """GET api/instances: the management API's listing plus a `name` filter."""
        token = request.headers.get(_CONTINUATION_HEADER) or None

        def work(query: QueryParameters) -> web.Response:
            condition = _instance_query(query, continuation_token=token)
            page = self._overview.list_instances(condition, _name(query))
            headers = {}
            if page.continuation_token:
                headers[_CONTINUATION_HEADER] = page.continuation_token
            body = list_json(page, show_input=condition.show_input)
            return web.json_response(body, headers=headers)

        return await self._answer(request, work)

    async def relations(self, request: web.Request) -> web.Response:
        """GET api/instances/{id}/relations: {"parentInstanceId": id or null}."""
        instance_id = request.match_info["instanceId"]

        def work(query: QueryParameters) -> web.Response:
            return web.json_response({"parentInstanceId": self._overview.parent_of(instance_id)})

        return await self._answer(request, work)

    async def functions(self, request: web.Request) -> web.Response:
        """GET api/functions: every function with its trigger, route and URL."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        base_url = public_base_url(request)
        body = [function.to_json(base_url) for function in self._functions]
        return web.Response(text=json.dumps(body), content_type="application/json")


def _name(query: QueryParameters) -> str | None:
    return (query.text("name") or "").strip() or None


def _instance_query(
    query: QueryParameters, *, continuation_token: str | None = None
) -> InstanceQuery:
    top = query.positive_int("top") or _DEFAULT_TOP
    if top > _MAX_TOP:
        raise InvalidInputError(f"top={top} is more than {_MAX_TOP}; page with a smaller top")
    return InstanceQuery(
        created_from=query.moment("createdTimeFrom"),
        created_to=query.moment("createdTimeTo"),
        statuses=query.statuses("runtimeStatus"),
        instance_id_prefix=query.text("instanceIdPrefix") or None,
        top=top,
        continuation_token=continuation_token,
        show_input=query.flag("showInput", False),
    )
