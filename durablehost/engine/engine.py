"""The durable orchestration engine: dispatch loops over a TaskHubStore.

One asyncio loop owns all state. Messages for instances live in the store (durable)
and in a per-instance in-memory queue (the work list); an instance is processed by
one episode at a time; each episode is one store transaction. Activities run
concurrently up to the host.json limit, each result committed together with the
deletion of its work item. After a restart, `start()` reloads every stored message
and work item and feeds them through the same paths, so nothing runs twice that
was committed, and nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from durablehost.app.loader import FunctionIndex
from durablehost.engine.activities import ActivityDispatcher, ActivityResult, ActivityRunner
from durablehost.engine.due_messages import DueMessages
from durablehost.engine.episodes import (
    SCHEDULING_EVENTS,
    EpisodePlan,
    HistoryView,
    execution_started,
    new_execution_id,
    plan_episode,
)
from durablehost.engine.executor import SessionExecutor, execute_episode
from durablehost.engine.rewind import plan_rewind
from durablehost.engine.start_batch import StartBatch
from durablehost.errors import (
    InstanceFinishedError,
    InstanceNotFoundError,
    InvalidInstanceStateError,
    UnknownFunctionError,
)
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import (
    TERMINAL_STATUSES,
    InstancePage,
    InstanceQuery,
    InstanceStatus,
    RuntimeStatus,
)
from durablehost.store.base import (
    ActivityWork,
    EpisodeCommit,
    InstanceRecord,
    Message,
    TaskHubStore,
)
from durablehost.store.writer import HubWriter, InlineWriter

__all__ = ["Clock", "DurableEngine", "system_clock"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Control events that end a suspension, releasing the messages held meanwhile.
_RELEASING_EVENTS = frozenset({EventType.EXECUTION_RESUMED, EventType.EXECUTION_TERMINATED})

# Seconds before an episode that raised inside the host is tried again.
_RETRY_DELAY = 1.0
# Most episodes committed in one transaction. Bounded so one batch holds the event loop
# (and so HTTP requests) for a few milliseconds at most.
_EPISODE_BATCH = 32


def system_clock() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


@dataclass(slots=True)
class _CachedInstance:
    record: InstanceRecord
    history: list[HistoryEvent]
    scheduled_ids: set[int] | None = None


# One planned episode: (instance id, the messages it consumes, its cache entry, the plan).
_Planned = tuple[str, list[Message], _CachedInstance, EpisodePlan]


class DurableEngine:
    """Runs orchestrations and activities of one app on one task hub.

    Implements `durablehost.model.instances.TaskHubClient`.
    """

    def __init__(
        self,
        index: FunctionIndex,
        store: TaskHubStore,
        *,
        hub_name: str = "TestHubName",
        max_concurrent_activities: int = 10,
        max_concurrent_orchestrations: int = 10,
        clock: Clock = system_clock,
        history_cache_size: int = 2048,
        extended_sessions: bool = True,
        writer: HubWriter | None = None,
        activity_runner: ActivityRunner | None = None,
    ) -> None:
        self.index = index
        self.store = store
        self.hub_name = hub_name
        self.max_concurrent_activities = max(1, max_concurrent_activities)
        self.max_concurrent_orchestrations = max(1, max_concurrent_orchestrations)
        self.clock = clock
        self._cache: OrderedDict[str, _CachedInstance] = OrderedDict()
        self._cache_size = history_cache_size
        self._inbox: dict[str, list[Message]] = {}
        self._held: dict[str, list[Message]] = {}
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._ready_signal = asyncio.Event()
        self._timers = DueMessages()
        self._timer_signal = asyncio.Event()
        self._activities = ActivityDispatcher(
            index,
            concurrency=self.max_concurrent_activities,
            clock=clock,
            deliver=self._route,
            runner=activity_runner,  # None: threads of this process
        )
        # Group commits go through the writer: inline, or a writer process that takes
        # SQLite's work off this loop (durablehost.store.writer). With a depth above 1
        # the next batch is planned while the last one is being committed.
        self._writer: HubWriter = writer if writer is not None else InlineWriter(store)
        self._commit_slots = asyncio.Semaphore(self._writer.depth)
        self._commits: set[asyncio.Task[None]] = set()
        # Instances that commits not yet done (re)create: planned once those are done.
        self._creating: set[str] = set()
        self._starts = StartBatch(self._writer.create_instances, self._created)
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        # Extended sessions keep live orchestrators between episodes; off, every
        # episode is a full replay (the SDK's own model). Both give identical results.
        self._sessions = SessionExecutor() if extended_sessions else None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Recover stored work and start the dispatch loops."""
        if self._started:
            return
        self._started = True
        for message in self.store.pending_messages():
            self._route(message)
        for work in self.store.pending_activities():
            self._activities.submit(work)
        loops = [self._orchestration_loop(), self._timer_loop()]
        self._tasks = [asyncio.create_task(coro) for coro in loops]
        self._activities.start()

    async def stop(self) -> None:
        """Stop the loops; committed state stays in the store for the next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        # Commits already handed to the writer finish (they are durable either way); what
        # they would have routed is read back from the store on the next start.
        await asyncio.gather(*self._commits, return_exceptions=True)
        self._activities.stop()
        self._started = False

    def recheck_timers(self) -> None:
        """Fire every timer that is due by the clock now. Timers are otherwise checked
        when their due time passes in real time: call this after moving a test clock
        forward to skip time instead of sleeping."""
        self._timer_signal.set()

    # -- routing -------------------------------------------------------------------

    def _route(self, message: Message) -> None:
        now = self.clock()
        if message.visible_at is not None and message.visible_at > now:
            self._timers.hold(message)
            self._timer_signal.set()
            return
        inbox = self._inbox.setdefault(message.instance_id, [])
        if message.event.event_type in _RELEASING_EVENTS:
            inbox.extend(self._held.pop(message.instance_id, []))
        inbox.append(message)
        self._mark_ready(message.instance_id)

    def _mark_ready(self, instance_id: str) -> None:
        if instance_id in self._queued or instance_id in self._busy:
            return
        self._queued.add(instance_id)
        self._ready.append(instance_id)
        self._ready_signal.set()

    async def _timer_loop(self) -> None:
        while True:
            self._timer_signal.clear()
            now = self.clock()
            for message in self._timers.pop_due(now):
                self._route(message)
            delay = self._timers.seconds_until_next(now)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives together with the signal, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._timer_signal.wait()

    # -- orchestrations ------------------------------------------------------------

    async def _orchestration_loop(self) -> None:
        while True:
            if not self._ready:
                self._ready_signal.clear()
                await self._ready_signal.wait()
                continue
            # Waiting for a free commit slot lets more instances get ready meanwhile:
            # under load the batches grow instead of the commits queueing up.
            await self._commit_slots.acquire()
            batch: list[tuple[str, list[Message]]] = []
            while self._ready and len(batch) < _EPISODE_BATCH:
                instance_id = self._ready.popleft()
                self._queued.discard(instance_id)
                messages = self._inbox.pop(instance_id, [])
                if messages:
                    self._busy.add(instance_id)
                    batch.append((instance_id, messages))
            planned = self._plan_batch(batch)
            if not planned:
                self._commit_slots.release()
            elif self._writer.depth == 1:
                await self._commit_batch(planned)
            else:
                # Plan the next batch while this one is being committed.
                task = asyncio.create_task(self._commit_batch(planned))
                self._commits.add(task)
                task.add_done_callback(self._commits.discard)
            # Let HTTP handlers and activity completions in between batches.
            await asyncio.sleep(0)

    def _plan_batch(self, batch: list[tuple[str, list[Message]]]) -> list[_Planned]:
        """Plan the episodes of several ready instances, to be committed together (group
        commit: one transaction instead of one per instance). An instance that is not
        planned (purged, failed, or (re)created by a commit not yet done) is no longer
        busy when this returns."""
        planned: list[_Planned] = []
        created: set[str] = set()
        for instance_id, messages in batch:
            if instance_id in created or instance_id in self._creating:
                # A commit of this batch or one in flight (re)creates this instance: it
                # is planned from the new state once that commit is done (which marks it
                # ready again).
                self._inbox.setdefault(instance_id, [])[:0] = messages
                self._busy.discard(instance_id)
                continue
            try:
                cached = self._load(instance_id)
                if cached is None:
                    # Purged: whatever still arrives for it (a child's completion
                    # notice, a late timer) is deleted for good.
                    self.store.delete_instance(instance_id)
                    self._held.pop(instance_id, None)
                    self._release(instance_id)
                    continue
                plan = self._plan(cached, messages)
                self._refuse_active_children(plan.commit)
                planned.append((instance_id, messages, cached, plan))
                created.update(child.instance_id for child in plan.commit.new_instances)
            except Exception:
                self._retry_later(instance_id, messages)
        return planned

    async def _commit_batch(self, planned: list[_Planned]) -> None:
        """Commit planned episodes through the hub writer, then route what they caused:
        nothing is routed or acknowledged before the commit."""
        created = {c.instance_id for p in planned for c in p[3].commit.new_instances}
        self._creating |= created
        retried: set[str] = set()
        try:
            try:
                new_messages, new_work = await self._commit([p[3].commit for p in planned], planned)
            except Exception:
                for instance_id, messages, _, _ in planned:
                    self._retry_later(instance_id, messages)
                    retried.add(instance_id)
                return
            self._after_batch(planned, new_messages, new_work)
        finally:
            self._creating -= created
            self._commit_slots.release()
            for instance_id, *_ in planned:
                if instance_id not in retried:  # _retry_later marks those ready later
                    self._release(instance_id)
            for instance_id in created:
                if self._inbox.get(instance_id):
                    self._mark_ready(instance_id)

    def _after_batch(
        self, planned: list[_Planned], new_messages: list[Message], new_work: list[ActivityWork]
    ) -> None:
        for _, _, _, plan in planned:
            if any(isinstance(message, ActivityResult) for message in plan.held):
                self._store_held_results(plan)
        for instance_id, _, cached, plan in planned:
            self._after_commit(instance_id, cached, plan)
            for child in plan.commit.new_instances:
                self._remember(child.instance_id, _CachedInstance(child, [], set()))
                self._forget_session(child.instance_id)
        for message in new_messages:
            self._route(message)
        for work in new_work:
            self._activities.submit(work)

    def _release(self, instance_id: str) -> None:
        """The instance's episode is over: what arrived meanwhile makes it ready again."""
        self._busy.discard(instance_id)
        if self._inbox.get(instance_id):
            self._mark_ready(instance_id)

    async def _commit(
        self, commits: list[EpisodeCommit], planned: list[_Planned]
    ) -> tuple[list[Message], list[ActivityWork]]:
        # The results these episodes consumed (not those held by a suspended instance).
        completed = []
        for _, messages, _, plan in planned:
            held = {id(message) for message in plan.held}
            completed += [
                message.work_id
                for message in messages
                if isinstance(message, ActivityResult) and id(message) not in held
            ]
        return await self._writer.commit_episodes_with_results(commits, completed)

    def _store_held_results(self, plan: EpisodePlan) -> None:
        """A suspended instance holds its messages: store the activity results among
        them now (each with its work item's deletion), as they would be otherwise."""
        results = [m for m in plan.held if isinstance(m, ActivityResult)]
        stored = self.store.complete_activities(
            [
                (r.work_id, Message(r.instance_id, r.event, execution_id=r.execution_id))
                for r in results
            ]
        )
        replacement = {id(result): message for result, message in zip(results, stored, strict=True)}
        kept: list[Message] = []
        for message in plan.held:
            if not isinstance(message, ActivityResult):
                kept.append(message)
            elif (stored_message := replacement[id(message)]) is not None:
                kept.append(stored_message)  # None: its work item was gone (purged)
        plan.held = kept

    def _retry_later(self, instance_id: str, messages: list[Message]) -> None:
        # A host bug or a store error: keep the messages (they are still in the store)
        # and try again a little later instead of spinning.
        log.exception("episode of %s failed; retrying in %.0fs", instance_id, _RETRY_DELAY)
        self._inbox.setdefault(instance_id, [])[:0] = messages
        self._cache.pop(instance_id, None)
        self._forget_session(instance_id)
        self._busy.discard(instance_id)
        asyncio.get_running_loop().call_later(_RETRY_DELAY, self._mark_ready, instance_id)

    def _plan(self, cached: _CachedInstance, messages: list[Message]) -> EpisodePlan:
        return plan_episode(
            record=cached.record,
            history=cached.history,
            messages=messages,
            now=self.clock(),
            orchestrators=self.index.orchestrators,
            activities=self.index.activities,
            executor=self._sessions if self._sessions is not None else execute_episode,
            scheduled_ids=cached.scheduled_ids,
        )

    def _after_commit(self, instance_id: str, cached: _CachedInstance, plan: EpisodePlan) -> None:
        record = plan.commit.instance
        if plan.finished or plan.commit.replace_history:
            self._forget_session(instance_id)
        if plan.finished:
            self._cache.pop(instance_id, None)
        else:
            scheduled = cached.scheduled_ids
            if scheduled is None or plan.commit.replace_history:
                scheduled = None  # rebuilt by the planner from the history next time
            else:
                scheduled.update(plan.new_scheduled_ids)
            planned = plan.history
            if isinstance(planned, HistoryView) and planned.head is cached.history:
                # The cache owns that list: append the episode in place (no O(N) copy).
                cached.history.extend(planned.tail)
                history = cached.history
            else:
                history = list(planned)
            self._remember(instance_id, _CachedInstance(record, history, scheduled))
        if plan.held:
            # Suspended: the held messages wait until a resume or terminate arrives
            # (putting them back in the inbox would re-plan the instance in a loop).
            self._held.setdefault(instance_id, [])[:0] = plan.held
        if plan.commit.canceled_timer_ids:
            self._timers.forget_timers(instance_id, set(plan.commit.canceled_timer_ids))
        if record.status in TERMINAL_STATUSES:
            self._wake_waiters(instance_id)

    def _refuse_active_children(self, commit: EpisodeCommit) -> None:
        """A sub-orchestration may not take over the id of an instance that is still
        active (DTFx refuses the same): its task fails instead of replacing it."""
        for child in list(commit.new_instances):
            if child.instance_id in self._creating:
                state = "being created"  # by a commit not yet done
            else:
                existing = self.store.get_instance(child.instance_id)
                if existing is None or existing.status in TERMINAL_STATUSES:
                    continue
                state = existing.status.value
            commit.new_instances.remove(child)
            commit.messages = [m for m in commit.messages if m.instance_id != child.instance_id]
            failed = HistoryEvent(
                EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                self.clock(),
                task_scheduled_id=child.parent_task_id,
                reason=(
                    f"An instance with ID '{child.instance_id}' already exists and is "
                    f"{state}; a sub-orchestration cannot reuse its ID."
                ),
                details="",
            )
            commit.messages.append(
                Message(commit.instance.instance_id, failed, execution_id=child.parent_execution_id)
            )

    def _load(self, instance_id: str) -> _CachedInstance | None:
        cached = self._cache.get(instance_id)
        if cached is not None:
            self._cache.move_to_end(instance_id)
            return cached
        record = self.store.get_instance(instance_id)
        if record is None:
            return None
        history = self.store.get_history(instance_id)
        scheduled = {e.event_id for e in history if e.event_type in SCHEDULING_EVENTS}
        return _CachedInstance(record, history, scheduled)

    def _remember(self, instance_id: str, cached: _CachedInstance) -> None:
        self._cache[instance_id] = cached
        self._cache.move_to_end(instance_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _forget_session(self, instance_id: str) -> None:
        if self._sessions is not None:
            self._sessions.forget(instance_id)

    # -- completion waiters --------------------------------------------------------

    def _wake_waiters(self, instance_id: str) -> None:
        for future in self._waiters.pop(instance_id, []):
            if not future.done():
                future.set_result(None)

    # -- TaskHubClient -------------------------------------------------------------

    async def start_orchestration(
        self, name: str, input_json: str | None, instance_id: str | None = None
    ) -> str:
        """Schedule a new instance of orchestrator `name`; returns its id."""
        if name not in self.index.orchestrators:
            known = ", ".join(sorted(self.index.orchestrators)) or "none"
            raise UnknownFunctionError(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                f"function. Orchestrators in this app: {known}."
            )
        name = self.index.orchestrators[name].name  # the registered spelling
        instance_id = instance_id or uuid.uuid4().hex
        now = self.clock()
        record = InstanceRecord(
            instance_id=instance_id,
            execution_id=new_execution_id(),
            name=name,
            status=RuntimeStatus.PENDING,
            created_at=now,
            updated_at=now,
            input=input_json,
        )
        start = Message(
            instance_id, execution_started(record, now), execution_id=record.execution_id
        )
        await self._starts.create(record, start)
        return instance_id

    def _created(self, record: InstanceRecord, start: Message) -> None:
        """A new instance is stored (by `self._starts`): its first episode can run."""
        instance_id = record.instance_id
        # A new execution's history is empty: its first episode needs no store reads.
        self._remember(instance_id, _CachedInstance(record, [], set()))
        self._forget_session(instance_id)
        self._inbox.pop(instance_id, None)
        self._held.pop(instance_id, None)
        # Routed on the next callback, after the starter has resumed: a starter that
        # terminates (or raises an event) right after the start still gets there before
        # the first episode runs, as when starts were committed one at a time.
        asyncio.get_running_loop().call_soon(self._route, start)

    async def get_status(
        self,
        instance_id: str,
        *,
        show_input: bool = True,
        show_history: bool = False,
        show_history_output: bool = False,
    ) -> InstanceStatus | None:
        """The instance's status, or None."""
        record = self.store.get_instance(instance_id)
        if record is None:
            return None
        history = self.store.get_history(instance_id) if show_history else None
        return record.to_status(show_input=show_input, history=history)

    async def list_instances(self, query: InstanceQuery) -> InstancePage:
        """One page of instances matching the query."""
        records, token = self.store.list_instances(query)
        return InstancePage(
            instances=[r.to_status(show_input=query.show_input) for r in records],
            continuation_token=token,
        )

    async def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None:
        """Deliver an external event to a running instance."""
        self._require_active(instance_id, "raise an event for")
        event = HistoryEvent(EventType.EVENT_RAISED, self.clock(), name=event_name, input=data_json)
        self._send(instance_id, event)

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        """Terminate an active instance."""
        self._require_active(instance_id, "terminate")
        event = HistoryEvent(EventType.EXECUTION_TERMINATED, self.clock(), input=json.dumps(reason))
        self._send(instance_id, event)

    async def suspend(self, instance_id: str, reason: str | None) -> None:
        """Suspend an active instance."""
        self._require_active(instance_id, "suspend")
        self._send(
            instance_id, HistoryEvent(EventType.EXECUTION_SUSPENDED, self.clock(), input=reason)
        )

    async def resume(self, instance_id: str, reason: str | None) -> None:
        """Resume a suspended instance."""
        self._require_active(instance_id, "resume")
        self._send(
            instance_id, HistoryEvent(EventType.EXECUTION_RESUMED, self.clock(), input=reason)
        )

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        """Re-run the failed work of a Failed instance (and of its failed sub-orchestrations)."""
        record = self.store.get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        if record.status is not RuntimeStatus.FAILED:
            raise InvalidInstanceStateError(
                instance_id,
                f"Instance '{instance_id}' is {record.status.value}; only Failed instances "
                "can be rewound.",
            )
        commits = plan_rewind(self.store, record, reason, self.clock())
        new_messages, new_work = self.store.commit_episodes(commits)
        for commit in commits:
            self._cache.pop(commit.instance.instance_id, None)
            self._forget_session(commit.instance.instance_id)
        for message in new_messages:
            self._route(message)
        for work in new_work:
            self._activities.submit(work)

    async def restart(self, instance_id: str, *, new_instance_id: bool = True) -> str:
        """Start the instance again with its original input."""
        record = self.store.get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        target = None if new_instance_id else instance_id
        return await self.start_orchestration(record.name, record.input, target)

    async def purge(self, instance_id: str) -> int:
        """Delete one finished instance entirely (0 when it does not exist)."""
        record = self.store.get_instance(instance_id)
        if record is None:
            return 0
        if record.status not in TERMINAL_STATUSES:
            raise InvalidInstanceStateError(
                instance_id,
                f"Instance '{instance_id}' is {record.status.value}; only finished instances "
                "can be purged. Terminate it first.",
            )
        self._cache.pop(instance_id, None)
        self._forget_session(instance_id)
        return 1 if self.store.delete_instance(instance_id) else 0

    async def purge_many(self, query: InstanceQuery) -> int:
        """Delete every terminal instance matching the query."""
        return self.store.delete_instances(query)

    async def wait_for_completion(
        self, instance_id: str, wait_seconds: float
    ) -> InstanceStatus | None:
        """Wait up to `wait_seconds` for a terminal state; returns the status then."""
        status = await self.get_status(instance_id)
        if status is None or status.runtime_status in TERMINAL_STATUSES:
            return status
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, []).append(future)
        try:
            async with asyncio.timeout(max(wait_seconds, 0)):
                await future
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(instance_id)
            if waiters and future in waiters:
                waiters.remove(future)
        return await self.get_status(instance_id)

    # -- helpers -------------------------------------------------------------------

    def _require_active(self, instance_id: str, verb: str) -> InstanceRecord:
        record = self.store.get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        if record.status in TERMINAL_STATUSES:
            raise InstanceFinishedError(
                instance_id,
                f"Cannot {verb} instance '{instance_id}': it is {record.status.value}.",
            )
        return record

    def _send(self, instance_id: str, event: HistoryEvent) -> None:
        [message] = self.store.enqueue([Message(instance_id, event)])
        self._route(message)
