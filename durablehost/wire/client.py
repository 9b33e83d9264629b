"""The wire format between durablehost and its HTTP clients, as the extension speaks it.

Out: the durable client binding JSON, management URLs and the check-status payload,
status / showHistory / list JSON, purge results, RFC 9457 problems, and the host's public
address (`public_base_url`). In: request bodies (`decode_client_payload`) and query
parameters (`QueryParameters`), read by wire.client_input and re-exported here. Pure
functions, no I/O. Stored payloads are JSON text and
leave as JSON values, as the extension's ParseToJToken makes them (non-JSON stays a string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import InstancePage, InstanceStatus
from durablehost.wire.client_input import (
    MAX_JSON_DEPTH,
    MAX_QUERY_INT,
    MAX_QUERY_SECONDS,
    QueryParameters,
    decode_client_payload,
    parse_query_time,
)

__all__ = [
    "DEFAULT_CONNECTION",
    "INSTANCE_ID_PLACEHOLDER",
    "MAX_JSON_DEPTH",
    "MAX_QUERY_INT",
    "MAX_QUERY_SECONDS",
    "PROBLEM_CONTENT_TYPE",
    "WEBHOOK_PATH",
    "QueryParameters",
    "check_status_payload",
    "client_binding_json",
    "creation_urls",
    "decode_client_payload",
    "format_event_time",
    "format_status_time",
    "history_json",
    "json_value",
    "list_json",
    "management_urls",
    "parse_query_time",
    "problem_details",
    "public_base_url",
    "purge_result_json",
    "status_json",
]

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
# The extension's placeholder; the SDK replaces every occurrence with the real id.
INSTANCE_ID_PLACEHOLDER = "INSTANCEID"
# The extension's default connection name for the Azure Storage provider.
DEFAULT_CONNECTION = "Storage"
PROBLEM_CONTENT_TYPE = "application/problem+json"


# --- where the host is, as the caller sees it -------------------------------------------


class _RequestLike(Protocol):
    """What public_base_url reads from a request (aiohttp's web.Request fits)."""

    @property
    def scheme(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _first(value: str | None) -> str | None:
    # Proxies chain these headers as "client-facing, next hop, ..."; the first one is
    # what the original caller used.
    if not value:
        return None
    first = value.split(",")[0].strip().strip('"')
    return first or None


def _forwarded_pairs(value: str | None) -> dict[str, str]:
    """The first element of an RFC 7239 `Forwarded` header as lower-cased key -> value."""
    pairs: dict[str, str] = {}
    for part in (value or "").split(",")[0].split(";"):
        key, sep, val = part.partition("=")
        if sep:
            pairs[key.strip().lower()] = val.strip().strip('"')
    return pairs


def _has_port(host: str) -> bool:
    match = _HOST_RE.match(host)
    return match is not None and match.group(1) is not None


def public_base_url(request: _RequestLike) -> str:
    """`scheme://host[:port]` of the host as the caller reached it.

    Honours `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Port` (each on its
    own, unlike the real host, which needs both of the first two and an opt-in setting),
    then RFC 7239 `Forwarded`. Values that are not a plain host or scheme are ignored, so
    a forged header cannot put arbitrary text into the URLs handed out.
    """
    headers = request.headers
    forwarded = _forwarded_pairs(headers.get("Forwarded"))
    scheme = (request.scheme or "http").lower()
    host = request.host

    proto = _first(headers.get("X-Forwarded-Proto")) or forwarded.get("proto")
    if proto and proto.lower() in _DEFAULT_PORTS:
        scheme = proto.lower()

    forwarded_host = _first(headers.get("X-Forwarded-Host")) or forwarded.get("host")
    if forwarded_host and _HOST_RE.match(forwarded_host):
        host = forwarded_host
        port = _first(headers.get("X-Forwarded-Port"))
        if port and port.isdigit() and not _has_port(host):
            host = f"{host}:{port}"
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(f":{default_port}") and _has_port(host):
        host = host.rsplit(":", 1)[0]
    return f"{scheme}://{host}"


# --- URLs handed to callers ---------------------------------------------------------------


def _query_suffix(hub_name: str, connection: str, required_query: Mapping[str, str] | None) -> str:
    suffix = f"taskHub={quote(hub_name, safe='')}&connection={quote(connection, safe='')}"
    if required_query:
        suffix += "&" + urlencode(required_query)
    return suffix


def management_urls(
    base_url: str,
    instance_id: str,
    *,
    hub_name: str,
    connection: str = DEFAULT_CONNECTION,
    required_query: Mapping[str, str] | None = None,
    return_internal_server_error_on_failure: bool = False,
) -> dict[str, str]:
    """The management URLs of one instance, keyed as the extension keys them.

    `base_url` is `scheme://host[:port]` (see public_base_url). Includes `rewindPostUri`,
    as the client binding's `managementUrls` does.
    """
    webhook = base_url.rstrip("/") + WEBHOOK_PATH
    instance = f"{webhook}/instances/{quote(instance_id, safe='')}"
    suffix = _query_suffix(hub_name, connection, required_query)
    status_uri = f"{instance}?{suffix}"
    if return_internal_server_error_on_failure:
        status_uri += "&returnInternalServerErrorOnFailure=true"
    return {
        "id": instance_id,
        "statusQueryGetUri": status_uri,
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{suffix}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{suffix}",
        "rewindPostUri": f"{instance}/rewind?reason={{text}}&{suffix}",
        "purgeHistoryDeleteUri": f"{instance}?{suffix}",
        "restartPostUri": f"{instance}/restart?{suffix}",
        "suspendPostUri": f"{instance}/suspend?reason={{text}}&{suffix}",
        "resumePostUri": f"{instance}/resume?reason={{text}}&{suffix}",
    }


# The extension's check-status response leaves rewindPostUri out.
_CHECK_STATUS_KEYS = (
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
)


def check_status_payload(
    base_url: str,
    instance_id: str,
    *,
    hub_name: str,
    connection: str = DEFAULT_CONNECTION,
    required_query: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The body of a 202 check-status response (its `statusQueryGetUri` is the Location)."""
    urls = management_urls(
        base_url,
        instance_id,
        hub_name=hub_name,
        connection=connection,
        required_query=required_query,
    )
    return {key: urls[key] for key in _CHECK_STATUS_KEYS}


def creation_urls(base_url: str, required_query: Mapping[str, str] | None = None) -> dict[str, str]:
    """The binding's `creationUrls`: templates for starting an orchestration over HTTP."""
    prefix = base_url.rstrip("/") + WEBHOOK_PATH + "/orchestrators/{functionName}[/{instanceId}]"
    query = urlencode(required_query or {})
    wait = "timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}"
    return {
        "createNewInstancePostUri": f"{prefix}?{query}" if query else prefix,
        "createAndWaitOnNewInstancePostUri": f"{prefix}?{wait}" + (f"&{query}" if query else ""),
    }


def client_binding_json(
    base_url: str,
    hub_name: str,
    connection: str = DEFAULT_CONNECTION,
    required_query: dict[str, str] | None = None,
    *,
    rpc_base_url: str | None = None,
) -> str:
    """The durable client binding JSON passed to an HTTP function's durable client parameter.

    `base_url` (`scheme://host[:port]`, usually public_base_url of the triggering request)
    goes into the management URLs callers see. Every SDK client call is built from
    `rpcBaseUrl`, which defaults to `{base_url}/runtime/webhooks/durabletask/`; pass the
    host's own loopback address there when base_url is a proxy's address.
    """
    base = base_url.rstrip("/")
    webhook = base + WEBHOOK_PATH
    rpc = rpc_base_url if rpc_base_url is not None else webhook + "/"
    if not rpc.endswith("/"):
        # The SDK appends "instances/..." to it directly.
        rpc += "/"
    payload = {
        "taskHubName": hub_name,
        "connectionName": None,
        "creationUrls": creation_urls(base, required_query),
        "managementUrls": management_urls(
            base,
            INSTANCE_ID_PLACEHOLDER,
            hub_name=hub_name,
            connection=connection,
            required_query=required_query,
        ),
        "baseUrl": webhook,
        "requiredQueryStringParameters": urlencode(required_query or {}),
        "rpcBaseUrl": rpc,
    }
    return json.dumps(payload)


# --- payloads -----------------------------------------------------------------------------


def json_value(text: str | None) -> Any:
    """A stored JSON text as a JSON value; text that is not JSON stays a string.

    Like the extension's ParseToJToken: None -> None, blank -> "", and the raw string as
    the fallback (terminate reasons and failure messages are often plain text).
    """
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return text


# --- status, history and listings ---------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    # Naive times in the task hub are UTC by convention.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_status_time(moment: datetime) -> str:
    """A status timestamp as the extension prints it: to the second, with Z."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_event_time(moment: datetime) -> str:
    """A history timestamp as .NET round-trips it: seven fractional digits, with Z."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def status_json(
    status: InstanceStatus, *, show_input: bool = True, show_history_output: bool = False
) -> dict[str, Any]:
    """One instance's status JSON (`historyEvents` only when the status carries history)."""
    body: dict[str, Any] = {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": str(status.runtime_status),
        "input": json_value(status.input) if show_input else None,
        "customStatus": json_value(status.custom_status),
        "output": json_value(status.output),
        "createdTime": format_status_time(status.created_time),
        "lastUpdatedTime": format_status_time(status.last_updated_time),
    }
    if status.history is not None:
        body["historyEvents"] = history_json(
            status.history, show_input=show_input, show_history_output=show_history_output
        )
    return body


def list_json(page: InstancePage, *, show_input: bool = True) -> list[dict[str, Any]]:
    """The body of a listing: one status JSON per instance, without history."""
    return [
        status_json(
            instance if instance.history is None else _without_history(instance),
            show_input=show_input,
        )
        for instance in page.instances
    ]


def _without_history(status: InstanceStatus) -> InstanceStatus:
    return replace(status, history=None)


def purge_result_json(instances_deleted: int) -> dict[str, int]:
    """The body of a purge answer."""
    return {"instancesDeleted": instances_deleted}


# Scheduling events whose completion, once present, absorbs them (as the extension does).
_COMPLETIONS: dict[EventType, EventType] = {
    EventType.TASK_COMPLETED: EventType.TASK_SCHEDULED,
    EventType.TASK_FAILED: EventType.TASK_SCHEDULED,
    EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED: EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
    EventType.SUB_ORCHESTRATION_INSTANCE_FAILED: EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
}
_HIDDEN = frozenset(
    {EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED, EventType.HISTORY_STATE}
)


def history_json(
    events: Iterable[HistoryEvent], *, show_input: bool = True, show_history_output: bool = False
) -> list[dict[str, Any]]:
    """History in the extension's showHistory shape.

    EventType by name; no EventId/IsPlayed; OrchestratorStarted/Completed dropped; a
    TaskScheduled (SubOrchestrationInstanceCreated) folded into its completion, which
    gains FunctionName, ScheduledTime and Input; results only with showHistoryOutput
    (as JSON values); inputs (raw JSON text, as the extension shows them) only with
    showInput.
    """
    items: list[dict[str, Any] | None] = []
    scheduled: dict[tuple[EventType, int], tuple[int, HistoryEvent]] = {}
    for event in events:
        kind = event.event_type
        if kind in _HIDDEN:
            continue
        item: dict[str, Any] = {"EventType": kind.title}
        if kind is EventType.EXECUTION_STARTED:
            item["FunctionName"] = event.name
            _put_input(item, event.input, show_input)
        elif kind in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_INSTANCE_CREATED):
            item["Name"] = event.name
            if event.instance_id is not None:
                item["InstanceId"] = event.instance_id
            _put_input(item, event.input, show_input)
            scheduled[(kind, event.event_id)] = (len(items), event)
        elif kind in _COMPLETIONS:
            _describe_completion(item, event, scheduled, items, show_input, show_history_output)
        elif kind in (EventType.EXECUTION_COMPLETED, EventType.EXECUTION_FAILED):
            item["OrchestrationStatus"] = event.orchestration_status or (
                "Failed" if kind is EventType.EXECUTION_FAILED else "Completed"
            )
            if show_history_output:
                item["Result"] = json_value(event.result)
            _put_failure(item, event)
        elif kind is EventType.CONTINUE_AS_NEW:
            if show_history_output:
                item["Result"] = json_value(event.result)
        elif kind in (EventType.TIMER_CREATED, EventType.TIMER_FIRED):
            item["FireAt"] = format_event_time(event.fire_at) if event.fire_at else None
        elif kind in (EventType.EVENT_RAISED, EventType.EVENT_SENT):
            if event.instance_id is not None:
                item["InstanceId"] = event.instance_id
            item["Name"] = event.name
            _put_input(item, event.input, show_input)
        elif kind is EventType.EXECUTION_TERMINATED:
            _put_input(item, event.input, show_input)
        elif kind in (EventType.EXECUTION_SUSPENDED, EventType.EXECUTION_RESUMED):
            item["Reason"] = event.reason if event.reason is not None else event.input
        elif kind is EventType.GENERIC_EVENT:
            # The engine marks a rewind with one (name "rewind", the reason as input).
            item["Data"] = event.input if event.input is not None else event.name
        item["Timestamp"] = format_event_time(event.timestamp)
        items.append(item)
    return [item for item in items if item is not None]


def _put_input(item: dict[str, Any], text: str | None, show_input: bool) -> None:
    if show_input:
        item["Input"] = text


def _put_failure(item: dict[str, Any], event: HistoryEvent) -> None:
    if event.reason is not None:
        item["Reason"] = event.reason
    if event.details is not None:
        item["Details"] = event.details


def _describe_completion(
    item: dict[str, Any],
    event: HistoryEvent,
    scheduled: dict[tuple[EventType, int], tuple[int, HistoryEvent]],
    items: list[dict[str, Any] | None],
    show_input: bool,
    show_history_output: bool,
) -> None:
    kind = event.event_type
    succeeded = kind in (EventType.TASK_COMPLETED, EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED)
    if succeeded:
        if show_history_output:
            item["Result"] = json_value(event.result)
    else:
        _put_failure(item, event)
    key = (
        _COMPLETIONS[kind],
        event.task_scheduled_id if event.task_scheduled_id is not None else -1,
    )
    found = scheduled.pop(key, None)
    if found is not None:
        index, origin = found
        items[index] = None
        item["ScheduledTime"] = format_event_time(origin.timestamp)
        item["FunctionName"] = origin.name
        if origin.instance_id is not None:
            item["InstanceId"] = origin.instance_id
        _put_input(item, origin.input, show_input)


# --- errors -------------------------------------------------------------------------------


def problem_details(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    **extensions: Any,
) -> dict[str, Any]:
    """An RFC 9457 problem body; `extensions` become extra members. `message` repeats
    `detail` for clients that read errors the JavaScript way (`error.message`)."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or _status_phrase(status),
        "status": status,
        "detail": detail,
    }
    body.update(extensions)
    body["message"] = detail
    return body


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
