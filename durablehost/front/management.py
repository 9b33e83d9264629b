"""The Durable Functions HTTP management API, served under /runtime/webhooks/durabletask/.

The same endpoints, status codes and headers as the extension's HttpApiHandler, which the
SDK's DurableOrchestrationClient calls through the binding's rpcBaseUrl and which the
status URLs handed to callers point at:

    POST   orchestrators/{name}[/{id}]          start (202 check-status; ?timeout= waits)
    GET    instances/{id}                       status (202 while active, 200 when done)
    GET    instances/                           list (filters, x-ms-continuation-token)
    DELETE instances/{id}                       purge one
    DELETE instances/                           purge many (createdTimeFrom required)
    POST   instances/{id}/raiseEvent/{event}    raise an event
    POST   instances/{id}/terminate|suspend|resume|rewind|restart

Bad input answers 400 (413 for a body over MAX_PAYLOAD_BYTES) with an RFC 9457
`application/problem+json` body saying what to change; so does every error of this API,
including its 401, 404 and 405. Where this host deliberately differs from the extension it
is noted at the spot. Keys, size limits and id rules live in management_guards.

The handlers read a request through `ManagementRequest`, which aiohttp's `web.Request` and
client_transport's `InProcessRequest` both satisfy: `InProcessManagement` answers the
durable client's calls made inside the host's process with the same router, handlers and
problem middleware as over HTTP, without a socket.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from aiohttp import web
from multidict import MultiMapping

from durablehost.errors import (
    DurableHostError,
    HubUnavailableError,
    InstanceAlreadyExistsError,
    InstanceFinishedError,
    InstanceNotFoundError,
    InvalidInputError,
    InvalidInstanceStateError,
    UnknownFunctionError,
)
from durablehost.front.availability import note_hub_refusal
from durablehost.front.keys import FunctionKeys
from durablehost.front.list_paging import DEFAULT_PAGE_SIZE, TruncationWarnings, caller_of
from durablehost.front.management_guards import (
    MAX_PAYLOAD_BYTES,
    PayloadTooLargeError,
    check_continuation_token,
    check_new_instance_id,
    key_middleware,
    problem_response,
    read_bounded,
)
from durablehost.model.instances import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    InstanceQuery,
    InstanceStatus,
    RuntimeStatus,
    TaskHubClient,
)
from durablehost.wire.client import (
    DEFAULT_CONNECTION,
    WEBHOOK_PATH,
    QueryParameters,
    check_status_payload,
    decode_client_payload,
    json_value,
    list_json,
    public_base_url,
    purge_result_json,
    status_json,
)

if TYPE_CHECKING:
    from durablehost.front.client_transport import InProcessRequest

__all__ = [
    "CONTINUATION_HEADER",
    "InProcessManagement",
    "ManagementRequest",
    "add_management_routes",
    "management_app",
]

log = logging.getLogger(__name__)

CONTINUATION_HEADER = "x-ms-continuation-token"
# What the extension asks pollers to wait, in seconds: status 202s and check-status 202s.
STATUS_RETRY_AFTER = "5"
CHECK_STATUS_RETRY_AFTER = "10"
# What in-process calls are held to unless told otherwise: the API's own body limit.
DEFAULT_MAX_BODY_BYTES = MAX_PAYLOAD_BYTES


class ManagementRequest(Protocol):
    """What the handlers read of a request; aiohttp's `web.Request` fits."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def raw_path(self) -> str: ...

    @property
    def query(self) -> MultiMapping[str]: ...

    @property
    def match_info(self) -> Mapping[str, str]: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content_type(self) -> str: ...

    @property
    def scheme(self) -> str: ...

    @property
    def host(self) -> str: ...

    async def read(self) -> bytes:
        """The whole body."""
        ...


_Request = TypeVar("_Request", bound=ManagementRequest)


class InProcessManagement:
    """The management API of one mounted sub-application, called without HTTP."""

    def __init__(self, api: web.Application, max_body_bytes: int) -> None:
        self._api = api
        # The parent app's client_max_size: in-process bodies are held to it as well.
        self.max_body_bytes = max_body_bytes

    async def call(self, request: InProcessRequest) -> tuple[int, bytes]:
        """Status and body of what the API answers to `request` over HTTP."""
        # The sub-app's own router (its routes carry the mount prefix): the same 404s and
        # 405s as over HTTP. It reads only `method` and `rel_url` of the request.
        match = await self._api.router.resolve(cast(web.Request, request))
        request.match_info = match
        # Every handler of this app takes a ManagementRequest.
        handler = cast("Callable[[InProcessRequest], Awaitable[web.StreamResponse]]", match.handler)
        response = await _problem_middleware(request, handler)
        body = response.body if isinstance(response, web.Response) else None
        return response.status, body if isinstance(body, bytes) else b""


def add_management_routes(
    app: web.Application,
    hub: TaskHubClient,
    *,
    hub_name: str,
    connection: str = DEFAULT_CONNECTION,
    required_query: Mapping[str, str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    keys: FunctionKeys | None = None,
    prefix: str = WEBHOOK_PATH + "/",
    public_url: str | None = None,
) -> InProcessManagement:
    """Mount the management API on `app` under `prefix` (/runtime/webhooks/durabletask/).

    `hub_name`, `connection` and `required_query` (e.g. {"code": key}) go into the URLs
    handed out, on `public_url` (default: the address the caller used). With `keys`, HTTP
    callers need the extension's system key or the master key. Bodies over
    `max_body_bytes` answer 413. Mount it before any catch-all route of the app; errors
    inside the API leave as problem+json. Returns the same API for in-process calls,
    which skip the key check and the parent middlewares.
    """
    api = management_app(
        hub,
        hub_name=hub_name,
        connection=connection,
        required_query=required_query,
        keys=keys,
        max_body_bytes=max_body_bytes,
        public_url=public_url,
    )
    app.add_subapp(prefix, api)
    return InProcessManagement(api, max_body_bytes)


def management_app(
    hub: TaskHubClient,
    *,
    hub_name: str,
    connection: str = DEFAULT_CONNECTION,
    required_query: Mapping[str, str] | None = None,
    keys: FunctionKeys | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    public_url: str | None = None,
) -> web.Application:
    """The management API as its own aiohttp application (paths relative to the webhook)."""
    api = _ManagementApi(
        hub, hub_name, connection, dict(required_query or {}), max_body_bytes, public_url
    )
    # The key check runs outside the problem middleware, so it also guards 404s and 405s.
    middlewares = [key_middleware(keys)] if keys is not None else []
    sub = web.Application(middlewares=[*middlewares, _problem_middleware])
    sub.add_routes(
        [
            web.post("/orchestrators/{functionName}", api.start),
            web.post("/orchestrators/{functionName}/", api.start),
            web.post("/orchestrators/{functionName}/{instanceId}", api.start),
            web.get("/instances", api.list_instances),
            web.get("/instances/", api.list_instances),
            web.delete("/instances", api.purge_instances),
            web.delete("/instances/", api.purge_instances),
            web.get("/instances/{instanceId}", api.get_instance),
            web.delete("/instances/{instanceId}", api.purge_instance),
            web.post("/instances/{instanceId}/{operation}", api.operate),
            web.post("/instances/{instanceId}/{operation}/{eventName}", api.raise_event),
            web.route("*", "/entities", _entities_unsupported),
            web.route("*", "/entities/{tail:.*}", _entities_unsupported),
        ]
    )
    return sub


async def _entities_unsupported(request: ManagementRequest) -> web.Response:
    return problem_response(
        501,
        "Durable entities are not supported by durablehost (see docs/durablehost.md); "
        "the entities/ endpoints answer 501 here.",
    )


# --- errors -------------------------------------------------------------------------------


_ERROR_STATUS: tuple[tuple[type[DurableHostError], int], ...] = (
    (PayloadTooLargeError, 413),
    (InvalidInputError, 400),
    (UnknownFunctionError, 400),
    (InstanceNotFoundError, 404),
    (InstanceAlreadyExistsError, 409),
    (InstanceFinishedError, 410),
    (InvalidInstanceStateError, 409),
)


def _status_for(error: DurableHostError) -> int:
    for kind, status in _ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return 500


@web.middleware
async def _problem_middleware(
    request: _Request, handler: Callable[[_Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except HubUnavailableError as error:
        # Nothing was stored and the hub may take writes again soon: a retryable answer.
        log.warning("management request %s %s refused: %s", request.method, request.path, error)
        note_hub_refusal(error.retry_after)  # the HTTP front answers its function 503
        return problem_response(503, str(error), headers={"Retry-After": str(error.retry_after)})
    except DurableHostError as error:
        status = _status_for(error)
        if status >= 500:
            log.exception("management request %s %s failed", request.method, request.path)
        return problem_response(status, str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return problem_response(
            error.status, _router_detail(request, error), headers=_allow_header(error)
        )
    except Exception:
        log.exception("management request %s %s failed", request.method, request.path)
        return problem_response(
            500, "The management API hit an unexpected error; the host log has the traceback."
        )


def _allow_header(error: web.HTTPException) -> dict[str, str]:
    allow = error.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def _router_detail(request: ManagementRequest, error: web.HTTPException) -> str:
    if error.status == 405:
        allowed = error.headers.get("Allow", "")
        return f"{request.method} is not supported on {request.path}; use {allowed}."
    if error.status == 404:
        return (
            f"No management endpoint at {request.path}. Endpoints under {WEBHOOK_PATH}/: "
            "orchestrators/{name}[/{id}], instances/, instances/{id}, "
            "instances/{id}/raiseEvent/{event}, "
            "instances/{id}/terminate|suspend|resume|rewind|restart."
        )
    return error.reason


# --- the handlers -------------------------------------------------------------------------


class _ManagementApi:
    """The request handlers, bound to one task hub."""

    def __init__(
        self,
        hub: TaskHubClient,
        hub_name: str,
        connection: str,
        required_query: dict[str, str],
        max_body_bytes: int,
        public_url: str | None,
    ) -> None:
        self._hub = hub
        self._hub_name = hub_name
        self._connection = connection
        self._required_query = required_query
        self._max_body_bytes = max_body_bytes
        self._public_url = public_url
        self._truncation = TruncationWarnings(hub)

    # -- shared pieces

    def _query(self, request: ManagementRequest) -> QueryParameters:
        query = QueryParameters(request.query)
        # The extension would open another task hub; this host serves exactly one, so a
        # different name is a caller mistake worth saying out loud rather than a 404.
        task_hub = query.text("taskHub")
        if task_hub and task_hub.strip().lower() != self._hub_name.lower():
            raise InvalidInputError(
                f"taskHub={task_hub!r}, but this host serves the task hub "
                f"{self._hub_name!r} only; drop the parameter or use that name"
            )
        return query

    def _check_status(self, request: ManagementRequest, instance_id: str) -> web.Response:
        query = QueryParameters(request.query)
        payload = check_status_payload(
            self._public_url or public_base_url(request),
            instance_id,
            hub_name=self._hub_name,
            connection=query.text("connection") or self._connection,
            required_query=self._required_query,
        )
        return web.json_response(
            payload,
            status=202,
            headers={
                "Location": payload["statusQueryGetUri"],
                "Retry-After": CHECK_STATUS_RETRY_AFTER,
            },
        )

    async def _existing(self, instance_id: str) -> InstanceStatus:
        status = await self._hub.get_status(instance_id, show_input=False)
        if status is None:
            raise InstanceNotFoundError(instance_id)
        return status

    async def _wait_or_check_status(
        self, request: ManagementRequest, query: QueryParameters, instance_id: str
    ) -> web.Response:
        # The extension waits only when both are given; timeout alone is enough here,
        # since the engine's wait needs no polling interval.
        timeout = query.seconds("timeout")
        query.seconds("pollingInterval")
        if timeout is None:
            return self._check_status(request, instance_id)
        status = await self._hub.wait_for_completion(instance_id, timeout)
        if status is None or status.runtime_status in ACTIVE_STATUSES:
            return self._check_status(request, instance_id)
        if status.runtime_status is RuntimeStatus.COMPLETED:
            return web.json_response(json_value(status.output))
        full = await self._hub.get_status(instance_id)
        return web.json_response(status_json(full or status))

    async def _body_text(self, request: ManagementRequest) -> str:
        body = await read_bounded(request, self._max_body_bytes)
        # JSON is UTF-8 (RFC 8259) whatever charset the Content-Type claims; a BOM is
        # tolerated as .NET tolerates it.
        try:
            return body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"the request body is not UTF-8 text ({exc}); send JSON encoded as UTF-8"
            ) from None

    # -- endpoints

    async def start(self, request: ManagementRequest) -> web.Response:
        """POST orchestrators/{functionName}[/{instanceId}]: start an instance."""
        name = request.match_info["functionName"]
        instance_id = request.match_info.get("instanceId") or None
        # The extension reads the body whatever its content type; so do we (curl -d
        # sends form-urlencoded by default and should still work).
        try:
            query = self._query(request)
            if instance_id is not None:
                check_new_instance_id(instance_id)
            input_json = decode_client_payload(await self._body_text(request))
            # An id in use by a Pending/Running/Suspended instance is refused (409); a
            # finished one is replaced: the extension's default overridable states.
            new_id = await self._hub.start_orchestration(name, input_json, instance_id)
        except PayloadTooLargeError:
            raise
        except (InvalidInputError, UnknownFunctionError) as error:
            # The SDK's start_new reads ExceptionMessage from any 400 (a KeyError without).
            return problem_response(400, str(error), ExceptionMessage=str(error))
        except InstanceAlreadyExistsError as error:
            return problem_response(409, str(error), ExceptionMessage=str(error))
        return await self._wait_or_check_status(request, query, new_id)

    async def get_instance(self, request: ManagementRequest) -> web.Response:
        """GET instances/{instanceId}: one instance's status."""
        query = self._query(request)
        instance_id = request.match_info["instanceId"]
        show_input = query.flag("showInput", True)
        show_history = query.flag("showHistory", False)
        show_history_output = query.flag("showHistoryOutput", False)
        fail_as_500 = query.flag("returnInternalServerErrorOnFailure", False)
        status = await self._hub.get_status(
            instance_id,
            show_input=show_input,
            show_history=show_history,
            show_history_output=show_history_output,
        )
        if status is None:
            raise InstanceNotFoundError(instance_id)
        body = status_json(status, show_input=show_input, show_history_output=show_history_output)
        if status.runtime_status in ACTIVE_STATUSES:
            location = public_base_url(request) + request.raw_path
            return web.json_response(
                body,
                status=202,
                headers={"Location": location, "Retry-After": STATUS_RETRY_AFTER},
            )
        failed = status.runtime_status is RuntimeStatus.FAILED
        return web.json_response(body, status=500 if failed and fail_as_500 else 200)

    async def list_instances(self, request: ManagementRequest) -> web.Response:
        """GET instances/: instances matching the filters, a page at a time."""
        query = self._query(request)
        show_input = query.flag("showInput", True)
        token = request.headers.get(CONTINUATION_HEADER) or None
        if token is not None:
            check_continuation_token(token)
        top = query.positive_int("top")
        condition = InstanceQuery(
            created_from=query.moment("createdTimeFrom"),
            created_to=query.moment("createdTimeTo"),
            statuses=query.statuses("runtimeStatus"),
            instance_id_prefix=query.text("instanceIdPrefix") or None,
            # The extension's OrchestrationStatusQueryCondition.PageSize default: a list
            # without `top` is its first page, here as on Azure.
            top=top or DEFAULT_PAGE_SIZE,
            continuation_token=token,
            show_input=show_input,
        )
        page = await self._hub.list_instances(condition)
        headers = {}
        if page.continuation_token:
            headers[CONTINUATION_HEADER] = page.continuation_token
            if top is None and token is None:
                # The SDK's get_status_all/get_status_by send neither and drop the header.
                await self._truncation.note(caller_of(request), condition, page)
        return web.json_response(list_json(page, show_input=show_input), headers=headers)

    async def purge_instance(self, request: ManagementRequest) -> web.Response:
        """DELETE instances/{instanceId}: delete one finished instance."""
        self._query(request)
        instance_id = request.match_info["instanceId"]
        status = await self._existing(instance_id)
        if status.runtime_status not in TERMINAL_STATUSES:
            return problem_response(
                412,
                f"Only orchestrations in a terminal state can be purged, but instance "
                f"{instance_id!r} is {status.runtime_status}; terminate it first.",
            )
        deleted = await self._hub.purge(instance_id)
        if deleted == 0:
            raise InstanceNotFoundError(instance_id)
        return web.json_response(purge_result_json(deleted))

    async def purge_instances(self, request: ManagementRequest) -> web.Response:
        """DELETE instances/: delete every finished instance matching the filters."""
        query = self._query(request)
        created_from = query.moment("createdTimeFrom")
        if created_from is None:
            raise InvalidInputError(
                "Please provide value for 'createdTimeFrom' parameter, e.g. "
                "createdTimeFrom=2024-01-01T00:00:00Z (createdTimeTo defaults to now)."
            )
        condition = InstanceQuery(
            created_from=created_from,
            created_to=query.moment("createdTimeTo") or datetime.now(UTC),
            statuses=query.statuses("runtimeStatus"),
        )
        deleted = await self._hub.purge_many(condition)
        if deleted == 0:
            return problem_response(404, "No finished instances matched the filters.")
        return web.json_response(purge_result_json(deleted))

    async def raise_event(self, request: ManagementRequest) -> web.Response:
        """POST instances/{instanceId}/raiseEvent/{eventName}: deliver an event."""
        if request.match_info["operation"].lower() != "raiseevent":
            raise web.HTTPNotFound()
        self._query(request)
        instance_id = request.match_info["instanceId"]
        event_name = request.match_info["eventName"]
        status = await self._existing(instance_id)
        if status.runtime_status in TERMINAL_STATUSES:
            raise InstanceFinishedError(
                instance_id,
                f"Instance {instance_id!r} is {status.runtime_status} and takes no more events.",
            )
        if request.content_type.lower() != "application/json":
            raise InvalidInputError(
                "Only application/json request content is supported: send the event data "
                "as JSON with Content-Type: application/json"
            )
        data = decode_client_payload(await self._body_text(request))
        await self._hub.raise_event(instance_id, event_name, data)
        return web.Response(status=202)

    async def operate(self, request: ManagementRequest) -> web.Response:
        """POST instances/{instanceId}/{operation}: terminate, suspend, resume, rewind, restart."""
        operation = request.match_info["operation"].lower()
        handler = self._operations.get(operation)
        if handler is None:
            if operation == "raiseevent":
                raise InvalidInputError(
                    "raiseEvent needs an event name: POST instances/{id}/raiseEvent/{eventName}"
                )
            raise web.HTTPNotFound()
        return await handler(self, request)

    async def _terminate(self, request: ManagementRequest) -> web.Response:
        status, reason = await self._active_instance(request)
        await self._hub.terminate(status.instance_id, reason)
        return web.Response(status=202)

    async def _suspend(self, request: ManagementRequest) -> web.Response:
        status, reason = await self._active_instance(request)
        # Suspending a suspended instance changes nothing; the extension answers 202.
        if status.runtime_status is not RuntimeStatus.SUSPENDED:
            await self._hub.suspend(status.instance_id, reason)
        return web.Response(status=202)

    async def _resume(self, request: ManagementRequest) -> web.Response:
        status, reason = await self._active_instance(request)
        if status.runtime_status is RuntimeStatus.SUSPENDED:
            await self._hub.resume(status.instance_id, reason)
        return web.Response(status=202)

    async def _active_instance(
        self, request: ManagementRequest
    ) -> tuple[InstanceStatus, str | None]:
        """The instance named in the path, which must exist and not have finished."""
        reason = self._query(request).text("reason")
        instance_id = request.match_info["instanceId"]
        status = await self._existing(instance_id)
        if status.runtime_status in TERMINAL_STATUSES:
            raise InstanceFinishedError(
                instance_id,
                f"Instance {instance_id!r} has already finished ({status.runtime_status}).",
            )
        return status, reason

    async def _rewind(self, request: ManagementRequest) -> web.Response:
        query = self._query(request)
        instance_id = request.match_info["instanceId"]
        status = await self._existing(instance_id)
        if status.runtime_status is not RuntimeStatus.FAILED:
            # 400 as the protocol notes say (the extension's newest versions answer 412).
            return problem_response(
                400,
                f"Instance {instance_id!r} is {status.runtime_status}, but only instances in "
                "the Failed state can be rewound.",
            )
        try:
            await self._hub.rewind(instance_id, query.text("reason"))
        except InvalidInstanceStateError as error:
            return problem_response(400, str(error))
        return web.Response(status=202)

    async def _restart(self, request: ManagementRequest) -> web.Response:
        query = self._query(request)
        instance_id = request.match_info["instanceId"]
        new_instance_id = query.flag("restartWithNewInstanceId", True)
        try:
            restarted = await self._hub.restart(instance_id, new_instance_id=new_instance_id)
        except InstanceAlreadyExistsError as error:
            return problem_response(
                409,
                f"{error} Restart with restartWithNewInstanceId=true, or wait until the "
                "instance finishes.",
            )
        return await self._wait_or_check_status(request, query, restarted)

    _operations: dict[
        str, Callable[[_ManagementApi, ManagementRequest], Awaitable[web.Response]]
    ] = {
        "terminate": _terminate,
        "suspend": _suspend,
        "resume": _resume,
        "rewind": _rewind,
        "restart": _restart,
    }
