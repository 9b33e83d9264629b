"""The end of an operation, announced: the hook every operation orchestrator wears.

`@announces_end` wraps an operation's orchestrator generator. When the operation asked for
a webhook (its input envelope carries `"webhook": true`, set by the start request), the
orchestrator's last step, on return and on an exception alike, is one short activity that
moves the operation's webhook outbox entry to `webhooks-due/`; then the orchestrator
returns its output or re-raises its failure unchanged. The entry is moved before the
operation is recorded as ended, so a host killed at any point still finds it after a
restart; the hand-over timer (operations/webhook_delivery.py) picks it up within a second.

Why an activity and not a direct start of the delivery: a Python orchestrator can neither
start another instance nor raise an event to one, durablehost drops actions scheduled in
an orchestrator's completing episode, and durablehost gives activities no durable client.
Moving a blob is what an orchestrator's last step can do on its own.

Operations without a callbackUrl skip all of this: no activity, no extra episode. The
announcement never fails the operation: if the blob move fails (storage down), the slow
outbox sweep finds the ended operation instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any

import azure.durable_functions as df

__all__ = ["ANNOUNCE_ACTIVITY", "WEBHOOK_FLAG", "announces_end", "wants_webhook", "webhook_flag"]

# The envelope member saying the operation has a callbackUrl (the URL itself stays in the
# outbox entry: the envelope is stored in history and shown to anyone with the input).
WEBHOOK_FLAG = "webhook"
ANNOUNCE_ACTIVITY = "announce_operation_end"

Orchestrator = Callable[[df.DurableOrchestrationContext], Generator[Any, Any, Any]]


def webhook_flag(callback_url: str | None) -> dict[str, bool]:
    """What the start request adds to the input envelope of an operation with a webhook."""
    return {WEBHOOK_FLAG: True} if callback_url else {}


def wants_webhook(envelope: Any) -> bool:
    """True when the operation's input envelope says it has a callbackUrl."""
    return isinstance(envelope, dict) and envelope.get(WEBHOOK_FLAG) is True


def announces_end(orchestrator: Orchestrator) -> Orchestrator:
    """Wrap an operation orchestrator so that its end is announced to the webhook outbox."""

    @functools.wraps(orchestrator)
    def announcing(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        if not wants_webhook(context.get_input()):
            return (yield from orchestrator(context))
        try:
            output = yield from orchestrator(context)
        except Exception:
            # Only Exception: GeneratorExit (the SDK dropping a suspended generator) must
            # pass through untouched, and nothing may be yielded while it does.
            yield from _announce(context)
            raise
        yield from _announce(context)
        return output

    return announcing


def _announce(context: df.DurableOrchestrationContext) -> Generator[Any, Any, None]:
    try:
        yield context.call_activity(ANNOUNCE_ACTIVITY, {"operationId": context.instance_id})
    except Exception:
        # The webhook must not fail the operation; the outbox sweep delivers it later.
        return
