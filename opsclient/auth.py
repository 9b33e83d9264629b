"""Bearer-token bookkeeping shared by both clients."""

from __future__ import annotations

from opsclient.errors import ConfigurationError

__all__ = ["TokenSlot"]


class TokenSlot:
    """The current bearer token and how many times it was fetched.

    A request remembers the generation it was sent with; after a 401 the token is refreshed
    only if nobody refreshed it since, so many concurrent 401s cause one refresh. The
    clients hold the lock around it (a thread lock or an asyncio lock).
    """

    def __init__(self) -> None:
        self.token: str | None = None
        self.generation = 0

    def store(self, token: str) -> None:
        """Keep a freshly fetched token."""
        if not isinstance(token, str) or not token:
            raise ConfigurationError("token_provider must return a non-empty string")
        self.token = token
        self.generation += 1
