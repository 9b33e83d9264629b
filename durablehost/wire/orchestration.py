"""The JSON the SDK's orchestrator handle reads and writes.

Host -> SDK: the orchestration context (`encode_context`) with history events in the
SDK's PascalCase shape. SDK -> host: the actions the orchestrator emitted
(`decode_action`, from each action's JSON) and the `$OutOfProcData$:` marker the SDK puts
in the message of the exception it raises for a user error. Everything else in
durablehost works on the typed `HistoryEvent` and `ActionRecord`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from durablehost.model.history import EventType, HistoryEvent

__all__ = [
    "OUT_OF_PROC_MARKER",
    "ActionRecord",
    "ActionType",
    "decode_action",
    "encode_context",
    "encode_event",
    "event_payload",
    "format_timestamp",
    "parse_timestamp",
]

OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"

# Replay schema the extension advertises: upperSchemaVersion V2 (=1) and, for newer
# SDKs, upperSchemaVersionNew V3 (=2 in the enum, sent as 3 and clamped by the SDK).
UPPER_SCHEMA_VERSION = 1
UPPER_SCHEMA_VERSION_NEW = 3


class ActionType:
    """Action type numbers as the SDK emits them."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One action decoded from the SDK's JSON; `input` stays JSON text."""

    action_type: int
    function_name: str | None = None
    input: str | None = None
    instance_id: str | None = None
    version: str | None = None
    fire_at: datetime | None = None
    is_canceled: bool = False
    event_name: str | None = None
    retry_options: dict[str, Any] | None = None
    children: tuple[ActionRecord, ...] = field(default_factory=tuple)


# Recently formatted instants and their text: the events of an episode share one `now`
# but alternate with the activity results' own instants, and every stored event and
# instance row formats its timestamps. Cleared when full, so it stays small.
_formatted: dict[datetime, str] = {}
_FORMATTED_LIMIT = 4096


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, microsecond precision (the SDK parses it with dateutil)."""
    text = _formatted.get(moment)
    if text is None:
        if len(_formatted) >= _FORMATTED_LIMIT:
            _formatted.clear()
        text = _formatted[moment] = _format(moment)
    return text


def _format(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    # isoformat is several times faster than strftime (this runs for every stored event);
    # it leaves out a zero microsecond and writes the offset as +00:00.
    if moment.year < 1000:  # strftime does not pad such years; keep its text
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = moment.isoformat()
    return text[:19] + ".000000Z" if moment.microsecond == 0 else text[:26] + "Z"


def parse_timestamp(text: str) -> datetime:
    """Parse the ISO text `format_timestamp` writes (and tolerate +00:00 forms)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_event(event: HistoryEvent) -> dict[str, Any]:
    """One history event in the SDK's shape."""
    data: dict[str, Any] = {
        "EventType": int(event.event_type),
        "EventId": event.event_id,
        "IsPlayed": event.is_played,
        "Timestamp": format_timestamp(event.timestamp),
    }
    data.update(event_payload(event))
    return data


def event_payload(event: HistoryEvent) -> dict[str, Any]:
    """The type-specific keys of `encode_event` (all but EventType, EventId, IsPlayed and
    Timestamp), for callers that build the SDK's event without the timestamp text."""
    data: dict[str, Any] = {}
    kind = event.event_type
    if event.name is not None:
        data["Name"] = event.name
    if event.input is not None or kind in (EventType.EVENT_RAISED, EventType.EXECUTION_STARTED):
        data["Input"] = event.input
    if kind is EventType.EXECUTION_STARTED:
        data["Version"] = event.version or ""
        if event.parent_instance_id:
            data["ParentInstance"] = {
                "OrchestrationInstance": {"InstanceId": event.parent_instance_id}
            }
    if event.result is not None or kind in (
        EventType.TASK_COMPLETED,
        EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
    ):
        data["Result"] = event.result
    if event.task_scheduled_id is not None:
        data["TaskScheduledId"] = event.task_scheduled_id
    if event.timer_id is not None:
        data["TimerId"] = event.timer_id
    if event.fire_at is not None:
        data["FireAt"] = format_timestamp(event.fire_at)
    if event.reason is not None:
        data["Reason"] = event.reason
    if event.details is not None:
        data["Details"] = event.details
    if event.instance_id is not None:
        data["InstanceId"] = event.instance_id
    return data


def encode_context(
    *,
    instance_id: str,
    history: list[HistoryEvent],
    input_json: str | None,
    parent_instance_id: str | None,
    is_replaying: bool,
) -> dict[str, Any]:
    """The orchestration context object for the SDK (json.dumps it for the handle)."""
    return {
        "history": [encode_event(event) for event in history],
        "input": input_json,
        "instanceId": instance_id,
        "isReplaying": is_replaying,
        "parentInstanceId": parent_instance_id,
        "upperSchemaVersion": UPPER_SCHEMA_VERSION,
        "upperSchemaVersionNew": UPPER_SCHEMA_VERSION_NEW,
    }


def decode_action(action: dict[str, Any]) -> ActionRecord:
    """One action from its JSON dict (an SDK Action's `to_json()`)."""
    fire_at = action.get("fireAt")
    return ActionRecord(
        action_type=int(action["actionType"]),
        function_name=action.get("functionName"),
        input=_json_text(action.get("input")),
        instance_id=action.get("instanceId"),
        version=action.get("version"),
        fire_at=parse_timestamp(fire_at) if isinstance(fire_at, str) else fire_at,
        is_canceled=bool(action.get("isCanceled", False)),
        event_name=action.get("externalEventName"),
        retry_options=action.get("retryOptions"),
        children=tuple(decode_action(child) for child in action.get("compoundActions") or ()),
    )


def _json_text(value: Any) -> str | None:
    # The SDK pre-serialises inputs to JSON text; anything else is encoded here once.
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)
