"""The model layer: the typed records every other layer speaks.

History events (`history`) and instance status records, queries and the `TaskHubClient`
protocol (`instances`): plain data, no I/O. The bottom layer: it may import only
durablehost.errors, and every layer above (wire, store, engine, front, triggers, the host)
may import it. Its public names are re-exported here, so `durablehost.model.TaskHubClient`
names the protocol a test host's `client` implements.
"""

from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    InstancePage,
    InstanceQuery,
    InstanceStatus,
    RuntimeStatus,
    TaskHubClient,
)

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "EventType",
    "HistoryEvent",
    "InstancePage",
    "InstanceQuery",
    "InstanceStatus",
    "RuntimeStatus",
    "TaskHubClient",
]
