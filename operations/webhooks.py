"""Webhooks: a signed POST of the final status to the `callbackUrl` of a start request.

Delivery goes through a durable outbox, never through the operation itself, so a dead
receiver can neither block nor fail an operation. The start request writes the outbox
entry (`webhooks/<id>.json`, a `WebhookEntry`) before the operation starts; the
operation's last step marks it due; a timer hands it to a delivery orchestration once the
status monitor reports the end. operations/webhook_delivery.py has the stages, this module
the pieces without I/O (entry, signature, backoff) and the POST itself.

Delivery is at least once: receivers deduplicate on `X-Ops-Delivery` (the operation id).

Signature: `X-Ops-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`
with the secret OPS_WEBHOOK_SECRET; receivers recompute it over the raw body and reject
old timestamps (replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from operations.monitor import iso_utc
from operations.outbound import outbound_request

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "WebhookEntry",
    "backoff_delay",
    "post_webhook",
    "sign",
    "signature_header",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Ops-Signature"
DELIVERY_HEADER = "X-Ops-Delivery"
EVENT_HEADER = "X-Ops-Event"
EVENT_NAME = "operation.ended"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>." + body` under the secret."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Ops-Signature value: `t=<timestamp>,v1=<hex>`."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int = 300
) -> bool:
    """What a receiver does: parse the header, check the age, compare in constant time."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(fields.get("v1", ""), sign(secret, timestamp, body))


def backoff_delay(
    attempt: int, *, base_seconds: float, cap_seconds: float, rand: Callable[[], float]
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): doubling from
    base, capped, with jitter between half and all of it so receivers are not stampeded."""
    delay = min(cap_seconds, base_seconds * (2 ** max(attempt - 1, 0)))
    return delay * (0.5 + rand() / 2)


@dataclass(frozen=True, slots=True)
class WebhookEntry:
    """One pending delivery in the outbox."""

    operation_id: str
    callback_url: str
    api_base: str
    api_query: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str = ""

    def is_due(self, now: datetime) -> bool:
        """True when the timer should try it now."""
        return now >= self.next_attempt_at

    def leased(self, now: datetime, lease: timedelta) -> WebhookEntry:
        """The entry as a delivering tick writes it: nobody else tries until the lease ends."""
        return replace(self, next_attempt_at=now + lease)

    def failed(self, now: datetime, delay_seconds: float, error: str) -> WebhookEntry:
        """The entry after a failed attempt."""
        return replace(
            self,
            attempts=self.attempts + 1,
            next_attempt_at=now + timedelta(seconds=delay_seconds),
            last_error=error[:500],
        )

    def to_json(self) -> dict[str, object]:
        """The stored form."""
        return {
            "operationId": self.operation_id,
            "callbackUrl": self.callback_url,
            "apiBase": self.api_base,
            "apiQuery": self.api_query,
            "attempts": self.attempts,
            "nextAttemptAt": self.next_attempt_at.isoformat(),
            "createdAt": iso_utc(self.created_at),
            "lastError": self.last_error,
        }

    @classmethod
    def from_json(cls, body: dict[str, object]) -> WebhookEntry:
        """Read the stored form back."""
        return cls(
            operation_id=str(body["operationId"]),
            callback_url=str(body["callbackUrl"]),
            api_base=str(body.get("apiBase") or ""),
            api_query=str(body.get("apiQuery") or ""),
            attempts=int(str(body.get("attempts") or 0)),
            next_attempt_at=_parse_utc(str(body["nextAttemptAt"])),
            created_at=_parse_utc(str(body["createdAt"])),
            last_error=str(body.get("lastError") or ""),
        )


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def post_webhook(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST once through the outbound policy, following no redirect (a 3xx is a failed
    attempt); the HTTP status, or OutboundRefused / OutboundUnreachable."""
    with outbound_request(
        "POST", url, body=body, headers=headers, timeout=timeout, max_redirects=0
    ) as response:
        return response.status
