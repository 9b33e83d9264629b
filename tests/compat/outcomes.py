"""What a client family reports back to the compatibility tests: how the operation ended
for it, and every HTTP answer it saw on the way (its own record, taken inside the client:
an axios interceptor, a fetch wrapper, curl's write-out, an azure-core policy, an httpx
transport or event hook).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RUNNING_WORDS",
    "Ending",
    "Exchange",
    "Outcome",
    "body_status_of",
    "exchanges_after_the_end",
    "non_terminal_answers",
]

# Status words of an operation (or a Durable Functions instance) that is still going.
RUNNING_WORDS = frozenset({"NotStarted", "Running", "Pending", "ContinuedAsNew", "Suspended"})
# ... and of one that has ended, whichever way.
ENDED_WORDS = frozenset({"Succeeded", "Failed", "Canceled", "Completed", "Terminated"})


class Ending(enum.StrEnum):
    """How the client said the operation ended."""

    SUCCEEDED = "succeeded"  # it handed back the result
    FAILED = "failed"  # it raised/printed the operation's failure
    CANCELED = "canceled"  # it said the operation was canceled
    ERROR = "error"  # it stopped on an HTTP error answer (status_code says which)
    UNCLEAR = "unclear"  # anything else: always a test failure


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP answer a client saw."""

    method: str
    url: str
    status: int
    retry_after: str | None
    location: str | None
    # `status` (operations API) or `runtimeStatus` (Durable Functions) of a JSON body
    body_status: str | None
    # the client followed redirects to get this answer (curl -L): the monitor's 303
    redirected: bool = False

    @property
    def is_non_terminal(self) -> bool:
        """An answer that says "not yet, poll again"; the contract puts Retry-After on it."""
        return self.status == 202 or (self.status == 200 and self.body_status in RUNNING_WORDS)

    @property
    def reveals_the_end(self) -> bool:
        """An answer from which the client can tell that the operation has ended."""
        return (
            self.redirected
            or self.status in (302, 303)
            or self.status >= 400
            or self.body_status in ENDED_WORDS
        )


@dataclass(slots=True)
class Outcome:
    """How one client run ended."""

    ending: Ending
    result: Any = None
    message: str = ""
    status_code: int | None = None
    exchanges: list[Exchange] = field(default_factory=list)

    def describe(self) -> str:
        """For assertion messages: the ending, the message and the exchanges, one a line."""
        lines = [f"{self.ending} {self.status_code or ''} {self.message[:500]!r}"]
        lines += [
            f"  {x.method} {x.url} -> {x.status} retry-after={x.retry_after} "
            f"location={x.location} status={x.body_status}{' (redirected)' if x.redirected else ''}"
            for x in self.exchanges
        ]
        return "\n".join(lines)


def body_status_of(content: bytes | str | None) -> str | None:
    """`status` or `runtimeStatus` of a JSON object body, if it has a string one."""
    if not content:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for key in ("status", "runtimeStatus"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return None


def non_terminal_answers(exchanges: Sequence[Exchange]) -> list[Exchange]:
    """The answers that told the client to keep polling."""
    return [x for x in exchanges if x.is_non_terminal]


def exchanges_after_the_end(exchanges: Sequence[Exchange]) -> list[Exchange]:
    """What the client still asked after the first answer that showed the operation ended."""
    for index, exchange in enumerate(exchanges):
        if exchange.reveals_the_end:
            return list(exchanges[index + 1 :])
    return []
