"""Group commit of new instances: the starts that arrive together share one transaction.

Every start used to be a transaction of its own (BEGIN, the instance row, its
ExecutionStarted message, COMMIT), and a commit rewrites each page it touched: the
instances table, its two indexes and the messages table, for one row each. When 200
clients start instances at once, the starts that arrive in one pass of the event loop
are created together instead, in one transaction, by the engine's hub writer. A start
still returns only after its instance is committed, so nothing is acknowledged (and no
202 sent) before it is durable, and a terminate or status request sent after the 202
always finds the instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from durablehost.errors import InstanceAlreadyExistsError
from durablehost.store.base import InstanceRecord, Message

__all__ = ["StartBatch"]

log = logging.getLogger(__name__)

_Pending = tuple[InstanceRecord, Message, "asyncio.Future[None]"]
_Created = list[Message | InstanceAlreadyExistsError]


class StartBatch:
    """Creates instances in batches; `created` runs (on the loop, in order) for each
    instance right after the commit that stored it, before its starter resumes.
    `create_instances` is where the engine runs that commit (its HubWriter)."""

    def __init__(
        self,
        create_instances: Callable[[list[tuple[InstanceRecord, Message]]], Awaitable[_Created]],
        created: Callable[[InstanceRecord, Message], None],
    ) -> None:
        self._create_instances = create_instances
        self._created = created
        self._pending: list[_Pending] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def create(self, record: InstanceRecord, start: Message) -> None:
        """Store a new instance and its start message; returns once committed. Raises
        InstanceAlreadyExistsError when an active instance has the id."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._start_flush)
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((record, start, future))
        await future

    def _start_flush(self) -> None:
        pending, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._flush(pending))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, pending: list[_Pending]) -> None:
        try:
            outcomes = await self._create_instances([(r, m) for r, m, _ in pending])
        except Exception as exc:  # nothing of the batch was stored: every starter hears
            for _, _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for (record, _, future), outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, InstanceAlreadyExistsError):
                if not future.done():
                    future.set_exception(outcome)
                continue
            # Even when the starter gave up waiting (a cancelled request), the instance
            # is stored and must run.
            try:
                self._created(record, outcome)
            except Exception:
                log.exception("routing the start of %s failed", record.instance_id)
            if not future.done():
                future.set_result(None)
