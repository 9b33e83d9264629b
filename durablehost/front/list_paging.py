"""The instance list pages as the extension's does, and says so when a caller stops early.

`GET instances/` without `top` answers the extension's default page (its
OrchestrationStatusQueryCondition.PageSize, 100) and an `x-ms-continuation-token` header
while more remain. The SDK's `get_status_all` / `get_status_by` (azure-functions-durable
1.x) send no `top` and drop that header, so on Azure they return the first page only and
nothing tells the app. An app that saw every instance locally would truncate silently in
Azure; here it gets the same first page, and the host log a WARNING naming the truncation
and how many instances were left out, at most once per `interval` seconds per caller so a
polling app does not flood the log.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from aiohttp import web

from durablehost.model.instances import InstancePage, InstanceQuery, TaskHubClient

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "TRUNCATION_WARNING_INTERVAL",
    "TruncationWarnings",
    "caller_of",
]

log = logging.getLogger(__name__)

# The extension's OrchestrationStatusQueryCondition.PageSize default.
DEFAULT_PAGE_SIZE = 100
# Seconds between two truncation warnings for one caller.
TRUNCATION_WARNING_INTERVAL = 60.0
# Counting what was left out reads the rest of the listing; past this many it says
# "more than" instead of reading on (the count is for a person, not exact bookkeeping).
_COUNT_LIMIT = 100_000
_COUNT_PAGE = 1000
# Callers remembered at once; forgotten oldest first (a caller is an address).
_MAX_CALLERS = 1024


def caller_of(request: object) -> str:
    """Who sent a list request: the peer address over HTTP, or the host's own process."""
    if isinstance(request, web.BaseRequest):
        return request.remote or "an HTTP caller"
    # client_transport answers the app's durable client in-process: one caller.
    return "the app's durable client (in process)"


class TruncationWarnings:
    """Logs, at most once per `interval` per caller, that a list left instances out."""

    def __init__(
        self,
        hub: TaskHubClient,
        *,
        interval: float = TRUNCATION_WARNING_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hub = hub
        self._interval = interval
        self._clock = clock
        self._last_warned: dict[str, float] = {}

    async def note(self, caller: str, query: InstanceQuery, page: InstancePage) -> None:
        """`page` is the first page of `query` and more remain: warn unless warned lately."""
        now = self._clock()
        last = self._last_warned.get(caller)
        if last is not None and now - last < self._interval:
            return
        self._last_warned.pop(caller, None)
        self._last_warned[caller] = now
        while len(self._last_warned) > _MAX_CALLERS:
            del self._last_warned[next(iter(self._last_warned))]
        # Counted only when the warning is written, so polling costs one page per call.
        left_out, exact = await self._count_rest(query, page.continuation_token)
        shown = len(page.instances)
        total = f"{shown + left_out}" if exact else f"more than {shown + left_out}"
        log.warning(
            "get_status_all/get_status_by (a list of instances without top, from %s) "
            "returned the first %d of %s instances; %s%d left out. The SDK drops "
            "x-ms-continuation-token, as on Azure, where the same call returns this first "
            "page only: page with top and the header yourself (see "
            "operations/instance_pages.py).",
            caller,
            shown,
            total,
            "" if exact else "more than ",
            left_out,
        )

    async def _count_rest(self, query: InstanceQuery, token: str | None) -> tuple[int, bool]:
        counted = 0
        while token is not None:
            if counted >= _COUNT_LIMIT:
                return counted, False
            rest = await self._hub.list_instances(
                dataclasses.replace(
                    query, top=_COUNT_PAGE, continuation_token=token, show_input=False
                )
            )
            counted += len(rest.instances)
            token = rest.continuation_token
        return counted, True
