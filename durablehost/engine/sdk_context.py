"""The SDK's orchestration context and history events, built without its parsing.

The SDK's handle builds a `DurableOrchestrationContext` from the context JSON the host
sends, and its constructor parses every history timestamp with dateutil (~100 us each:
on every replay, for every event). The host already holds those events as objects, so
it builds the SDK's objects directly, with the same attributes the constructors would
set; tests/durablehost/test_history_events.py compares both ways attribute by attribute.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from azure.durable_functions.models.DurableOrchestrationContext import (
    DurableOrchestrationContext,
)
from azure.durable_functions.models.FunctionContext import FunctionContext
from azure.durable_functions.models.history.HistoryEvent import HistoryEvent as SdkHistoryEvent

from durablehost.model.history import EventType, HistoryEvent
from durablehost.wire.orchestration import encode_context, event_payload

__all__ = ["HOST_ONLY_EVENTS", "new_sdk_context", "sdk_event"]

# Suspend/resume are the host's business; the SDK does not expect them in its history.
HOST_ONLY_EVENTS = frozenset({EventType.EXECUTION_SUSPENDED, EventType.EXECUTION_RESUMED})


def sdk_event(event: HistoryEvent) -> SdkHistoryEvent:
    """The SDK's HistoryEvent for one of ours, without re-parsing the timestamp (the
    payload keys come from `event_payload`, the one source of the wire shape)."""
    sdk = SdkHistoryEvent.__new__(SdkHistoryEvent)
    sdk._event_type = int(event.event_type)
    sdk._event_id = event.event_id
    sdk._is_played = event.is_played
    # Our timestamps are aware UTC datetimes. The SDK's dateutil parse would give an
    # equal instant with another tzinfo; str() of both ends in +00:00, so
    # current_utc_datetime and new_guid come out the same.
    sdk._timestamp = event.timestamp
    sdk._is_processed = False
    sdk.Name = sdk.InstanceId = sdk.TaskScheduledId = sdk.Reason = sdk.Details = None
    sdk.Input = None
    for key, value in event_payload(event).items():
        setattr(sdk, key, value)
    return sdk


def _template_context() -> DurableOrchestrationContext:
    """A context built once by the SDK's own constructor (one dateutil parse in all),
    with the schema versions the host advertises; new contexts are copies of it."""
    context_json = encode_context(
        instance_id="", history=[], input_json=None, parent_instance_id=None, is_replaying=False
    )
    context_json["history"] = [
        {
            "EventType": int(EventType.ORCHESTRATOR_STARTED),
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2000-01-01T00:00:00Z",
        }
    ]
    return DurableOrchestrationContext(**context_json)


_TEMPLATE = _template_context()


def new_sdk_context(
    orchestrator: Callable[..., Any],
    *,
    instance_id: str,
    input_json: str | None,
    parent_instance_id: str | None,
    history: Sequence[HistoryEvent],
) -> DurableOrchestrationContext:
    """A DurableOrchestrationContext over `history`, equal to what the SDK's handle
    builds from the context JSON (see the module docstring for why it is not built so)."""
    events = [sdk_event(e) for e in history if e.event_type not in HOST_ONLY_EVENTS]
    started = next(e for e in events if e.event_type == EventType.ORCHESTRATOR_STARTED)
    context = copy.copy(_TEMPLATE)
    # Every container the constructor made is the template's: give the copy empty ones
    # of the same kind (copy-then-clear keeps a defaultdict's factory), so no state is
    # ever shared between two orchestrations, whatever containers the SDK adds.
    for name, value in vars(context).items():
        if isinstance(value, list | dict | set):
            fresh = copy.copy(value)
            fresh.clear()
            setattr(context, name, fresh)
    context._histories = events
    context._instance_id = instance_id
    context._parent_instance_id = parent_instance_id
    context._input = input_json
    context._function_context = FunctionContext()
    context.decision_started_event = started
    context._current_utc_datetime = started.timestamp
    context._version = context._extract_version_from_history(events)
    context._input_expected_type = getattr(orchestrator, "_df_input_type", None)
    return context
