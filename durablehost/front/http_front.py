"""The HTTP front: HTTP-trigger routing and invocation on an aiohttp application.

Every path that no other route of the aiohttp app claims (the management API registers its
own) reaches one catch-all handler. It strips the route prefix, matches the function route
templates in precedence order, checks the method and (with `--enforce-keys`) the key,
builds a `func.HttpRequest`, invokes the function and turns what it returns into a
response. Errors leave as `application/problem+json`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from azure.functions.http import HttpRequest as WorkerHttpRequest
from multidict import CIMultiDict

from durablehost.app.invocation import FunctionInvoker, InvocationPlan, plan_invocation
from durablehost.app.loader import FunctionInfo
from durablehost.front.availability import (
    HostAvailability,
    hub_refusal_of,
    noting_hub_refusals,
    unavailable_response,
)
from durablehost.front.keys import FunctionKeys
from durablehost.front.routes import RouteTemplate, RouteTemplateError, parse_route
from durablehost.wire.client import PROBLEM_CONTENT_TYPE, problem_details, public_base_url

__all__ = [
    "HttpFront",
    "HttpFunctionRoute",
    "build_http_routes",
    "cors_middleware",
    "problem_response",
]

log = logging.getLogger(__name__)

# The Functions host accepts bodies up to 100 MB; aiohttp's default is 1 MB.
MAX_BODY_BYTES = 100 * 1024 * 1024
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection"})


def problem_response(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    """An RFC 9457 `application/problem+json` response."""
    body = json.dumps(problem_details(status, detail, title=title)).encode()
    return web.Response(
        status=status, body=body, content_type=PROBLEM_CONTENT_TYPE, headers=headers or None
    )


@dataclass(frozen=True, slots=True)
class HttpFunctionRoute:
    """One HTTP-triggered function and where it listens."""

    info: FunctionInfo
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method
    auth_level: str
    plan: InvocationPlan

    def url_path(self, route_prefix: str) -> str:
        """The path as `func start` prints it (template placeholders kept)."""
        parts = [part for part in (route_prefix, self.template.template) if part]
        return "/" + "/".join(parts)


def cors_middleware(origins: Sequence[str], *, credentials: bool = False) -> Middleware:
    """CORS as `func start` applies `Host.CORS` / `Host.CORSCredentials` of
    local.settings.json: to every route, preflights answered by the host itself."""
    allow_any = "*" in origins
    allowed = frozenset(origin.rstrip("/") for origin in origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not (allow_any or origin.rstrip("/") in allowed):
            return await handler(request)
        # With credentials the origin must be echoed: browsers reject "*" then.
        headers = {
            "Access-Control-Allow-Origin": origin if credentials or not allow_any else "*",
            "Vary": "Origin",
        }
        if credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        requested_method = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and requested_method:
            headers["Access-Control-Allow-Methods"] = requested_method
            requested_headers = request.headers.get("Access-Control-Request-Headers")
            if requested_headers:
                headers["Access-Control-Allow-Headers"] = requested_headers
            headers["Access-Control-Max-Age"] = "86400"
            return web.Response(status=204, headers=headers)
        try:
            response = await handler(request)
        except web.HTTPException as error:
            error.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    return cors


def _methods_of(trigger: Any) -> frozenset[str] | None:
    methods = getattr(trigger, "methods", None)
    if not methods:
        return None
    return frozenset(str(getattr(m, "value", m)).upper() for m in methods)


def _auth_level_of(trigger: Any) -> str:
    level = getattr(trigger, "auth_level", None)
    return str(getattr(level, "value", level) or "function").lower()


def build_http_routes(functions: Iterable[FunctionInfo]) -> list[HttpFunctionRoute]:
    """Compile every HTTP function's route, most specific first.

    Raises RouteTemplateError naming the function when a template is malformed.
    """
    routes: list[HttpFunctionRoute] = []
    for info in functions:
        raw = getattr(info.trigger, "route", None) or info.function_name
        try:
            template = parse_route(str(raw))
        except RouteTemplateError as exc:
            raise RouteTemplateError(f"function {info.function_name}: {exc}") from None
        routes.append(
            HttpFunctionRoute(
                info=info,
                template=template,
                methods=_methods_of(info.trigger),
                auth_level=_auth_level_of(info.trigger),
                plan=plan_invocation(info),
            )
        )
    # Stable sort: among equally specific templates the declaration order decides.
    routes.sort(key=lambda route: route.template.precedence)
    return routes


def _http_request(
    request: web.Request, body: bytes, origin: str, route_params: dict[str, str]
) -> func.HttpRequest:
    # The worker's own request class (what its httpTrigger converter builds): it keeps the
    # body type, so get_json() behaves as on Azure.
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    params: dict[str, str] = {}
    for name, value in request.query.items():
        # ASP.NET joins repeated query values with commas (StringValues.ToString()).
        params[name] = f"{params[name]},{value}" if name in params else value
    return WorkerHttpRequest(
        method=request.method,
        url=origin + str(request.rel_url),
        headers=headers,
        params=params,
        route_params=route_params,
        body_type="bytes",
        body=body,
    )


def _to_response(value: Any, function_name: str) -> web.Response:
    """Turn what a function returned (or set on its output binding) into a response."""
    if value is None:
        # The documented default of Functions 2.x+: 204 No Content with an empty body.
        return web.Response(status=204)
    if isinstance(value, func.HttpResponse):
        status = int(value.status_code)
        if not 100 <= status <= 599:
            raise ValueError(f"{function_name} returned HTTP status {status}")
        headers: CIMultiDict[str] = CIMultiDict()
        for name, header_value in value.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                headers.add(name, str(header_value))
        if "content-type" not in headers:
            mimetype = value.mimetype
            headers["Content-Type"] = (
                f"{mimetype}; charset={value.charset}" if mimetype.startswith("text/") else mimetype
            )
        body = value.get_body() or b""
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        return web.Response(status=status, body=body, headers=headers)
    if isinstance(value, str):
        return web.Response(text=value, content_type="text/plain", charset="utf-8")
    if isinstance(value, bytes | bytearray):
        return web.Response(body=bytes(value), content_type="application/octet-stream")
    # dict, list and other JSON values, as the worker's JSON fallback would serialise them.
    return web.Response(text=json.dumps(value), content_type="application/json")


class HttpFront:
    """Routes requests to HTTP-triggered functions and invokes them."""

    def __init__(
        self,
        routes: Sequence[HttpFunctionRoute],
        *,
        route_prefix: str,
        invoker: FunctionInvoker,
        keys: FunctionKeys | None = None,
        availability: HostAvailability | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self._availability = availability
        self.route_prefix = route_prefix.strip("/")
        self._prefix_path = f"/{self.route_prefix}" if self.route_prefix else ""
        self._invoker = invoker
        self._keys = keys

    def install(self, app: web.Application) -> None:
        """Add the catch-all route; other routes of `app` (management API) keep priority."""
        # [\s\S], not `.`: a decoded path may hold a newline (`%0A`), which `.` does not
        # match; aiohttp would then answer its own text/plain 404 instead of our problem.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)

    def function_urls(self, base_url: str) -> list[tuple[HttpFunctionRoute, str]]:
        """Each HTTP function with the URL `func start` would print for it."""
        return [(route, base_url + route.url_path(self.route_prefix)) for route in self.routes]

    def _relative_path(self, path: str) -> str | None:
        if not self._prefix_path:
            return path.strip("/")
        prefix = self._prefix_path
        if path.lower() == prefix.lower() or path.lower() == prefix.lower() + "/":
            return ""
        if path[: len(prefix) + 1].lower() == prefix.lower() + "/":
            return path[len(prefix) + 1 :].rstrip("/")
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The catch-all handler for every path the app has no other route for."""
        relative = self._relative_path(request.path)
        allowed: set[str] = set()
        if relative is not None:
            method = request.method
            for route in self.routes:
                params = route.template.match(relative)
                if params is None:
                    continue
                if route.methods is None or method in route.methods:
                    return await self._invoke(request, route, params)
                allowed |= route.methods
        allowed |= await self._other_routes_allow(request)
        if allowed:
            return problem_response(
                405,
                "Method Not Allowed",
                f"{request.method} is not allowed on {request.path}; "
                f"use {', '.join(sorted(allowed))}",
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        return problem_response(404, "Not Found", f"No function or endpoint serves {request.path}")

    async def _other_routes_allow(self, request: web.Request) -> set[str]:
        # Only on the error path: the catch-all also swallows wrong-method requests to
        # other routes (the management API), which deserve a 405 with their Allow list.
        allowed: set[str] = set()
        for resource in request.app.router.resources():
            if any(route.handler == self.handle for route in resource):
                continue
            _, methods = await resource.resolve(request)
            allowed |= methods
        return allowed

    def _authorized(self, request: web.Request, route: HttpFunctionRoute) -> bool:
        if self._keys is None:
            return True
        presented = request.query.get("code") or request.headers.get("x-functions-key")
        return self._keys.allows(presented, route.info.function_name, route.auth_level)

    def _failed(
        self, name: str, error: Exception, refusals: list[int], started: float
    ) -> web.Response:
        """The answer when a function raised: 503 when the task hub refused it or the
        host cannot go on (the client should come back), else 500."""
        elapsed = (time.perf_counter() - started) * 1000
        refusal = hub_refusal_of(error, refusals)
        retry_after = refusal.retry_after if refusal is not None else None
        reason = (refusal.reason if refusal else None) or "the task hub cannot take writes now"
        if self._availability is not None and self._availability.refusal is not None:
            # Stopping, or the hub writer died: whatever failed, it is not for the
            # client to report as a bug.
            reason = self._availability.refusal
            retry_after = retry_after or self._availability.retry_after
        if retry_after is None:
            log.exception("Executed 'Functions.%s' (Failed, Duration=%.0fms)", name, elapsed)
            return problem_response(
                500,
                "Function failed",
                f"{name} raised an exception; the host log has the traceback",
            )
        log.warning(
            "Executed 'Functions.%s' (Refused, Duration=%.0fms): %s; answered 503",
            name,
            elapsed,
            reason,
        )
        return unavailable_response(f"{name} could not complete: {reason}", retry_after)

    async def _invoke(
        self, request: web.Request, route: HttpFunctionRoute, params: dict[str, str]
    ) -> web.StreamResponse:
        name = route.info.function_name
        if not self._authorized(request, route):
            return problem_response(
                401,
                "Unauthorized",
                f"{name} has auth level '{route.auth_level}': pass a key as the `code` query "
                "parameter or the x-functions-key header (keys are in .durablehost/keys.json)",
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return problem_response(
                413,
                "Payload Too Large",
                f"request bodies are limited to {MAX_BODY_BYTES // (1024 * 1024)} MB",
            )
        origin = public_base_url(request)
        http_request = _http_request(request, body, origin, params)
        started = time.perf_counter()
        with noting_hub_refusals() as refusals:
            try:
                result = await self._invoker.invoke(
                    route.plan,
                    http_request,
                    origin=origin,
                    trace_parent=request.headers.get("traceparent", ""),
                    trace_state=request.headers.get("tracestate", ""),
                )
                output = route.plan.http_output
                value = result.return_value
                if output not in (None, "$return") and result.outputs[output].was_set:
                    value = result.outputs[output].get()
                response = _to_response(value, name)
            except Exception as error:
                return self._failed(name, error, refusals, started)
        # DEBUG, not INFO: a log line costs about a third of a trivial invocation.
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms) -> %d",
                name,
                result.invocation_id,
                (time.perf_counter() - started) * 1000,
                response.status,
            )
        return response
