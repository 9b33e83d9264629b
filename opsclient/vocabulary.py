"""One vocabulary of status words, whatever the server calls its states.

Servers name the same few states many ways: Durable Functions `runtimeStatus` (Pending,
Running, Completed...), the Microsoft REST API guidelines and azure-core (NotStarted,
Running, Succeeded, Failed, Canceled), ARM (`status` or `properties.provisioningState`:
Succeeded/Failed/Canceled are terminal, anything else, "Accepted", "Updating" or a
provider's own word, is still running), and hand-written APIs ("pending", "In progress",
"done", "error", "cancelled"...). Words are compared normalised: case, spaces, hyphens and
underscores do not matter ("In progress" = "in_progress" = "IN-PROGRESS" = "InProgress").

A word that is not here is not a verdict: the caller treats it as still running (see
`opsclient.dialects`), so pending is never mistaken for done.
"""

from __future__ import annotations

import re
from typing import Final

from opsclient.model import RunState

__all__ = ["STATUS_WORDS", "normalise_word", "state_for_word"]

_SEPARATORS: Final = re.compile(r"[\s_\-]+")

_PENDING: Final = (
    "notstarted",  # REST API guidelines, azure-core
    "pending",  # Durable runtimeStatus, seed-style APIs
    "queued",
    "enqueued",
    "scheduled",
    "submitted",
    "waiting",
    "new",
    "created",
    "accepted",  # ARM: the request is accepted, the work not begun
)
_RUNNING: Final = (
    "running",
    "inprogress",  # "In progress" (Microsoft's Asynchronous Request-Reply sample), in_progress
    "processing",
    "started",
    "active",
    "executing",
    "working",
    "continuedasnew",  # Durable: the orchestration restarted itself, it is not done
    "suspended",  # Durable: paused, resumable
    "paused",
    "resuming",
    "retrying",
    "preparing",
    "initializing",
    "validating",
    "finalizing",
    # ARM provisioning states of a resource on its way somewhere.
    "updating",
    "creating",
    "deleting",
    "provisioning",
    "deprovisioning",
    "migrating",
    "scaling",
    "starting",
    "stopping",
    "restarting",
    "upgrading",
    "moving",
    # Cancellation asked for but not reached: the operation may still finish either way.
    "canceling",
    "cancelling",
)
_SUCCEEDED: Final = (
    "succeeded",  # REST API guidelines, ARM
    "completed",  # Durable runtimeStatus
    "complete",
    "success",
    "successful",
    "done",
    "finished",
)
_FAILED: Final = (
    "failed",
    "failure",
    "error",
    "errored",
    "faulted",
    "timedout",
    "expired",
    "rejected",
)
_CANCELED: Final = (
    "canceled",
    "cancelled",
    "terminated",  # Durable: terminated by a caller
    "aborted",
    "revoked",
    "stopped",
)

STATUS_WORDS: Final[dict[str, RunState]] = {
    **dict.fromkeys(_PENDING, RunState.PENDING),
    **dict.fromkeys(_RUNNING, RunState.RUNNING),
    **dict.fromkeys(_SUCCEEDED, RunState.SUCCEEDED),
    **dict.fromkeys(_FAILED, RunState.FAILED),
    **dict.fromkeys(_CANCELED, RunState.CANCELED),
}
"""Every known status word, normalised, and the state it means."""


def normalise_word(word: str) -> str:
    """`word` lower-cased without spaces, hyphens or underscores: "In progress" -> "inprogress"."""
    return _SEPARATORS.sub("", word).lower()


def state_for_word(word: object) -> RunState | None:
    """The state a status word means, or None when it is not a known status word.

    Only text is a word: an integer `status` (problem+json's HTTP code) is never one.
    """
    if not isinstance(word, str):
        return None
    return STATUS_WORDS.get(normalise_word(word))
