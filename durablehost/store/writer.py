"""Where the engine's group commits run: inline, or in a writer process of their own.

Committing a batch of episodes is about a third of the engine's work in HelloSequence5
(building the rows, then SQLite writing them). A thread cannot take that off the event
loop: SQLite releases the GIL while it writes, but CPython hands the GIL back to a waiting
thread only every switch interval, so a writer thread crawls while the loop is busy
(measured: slower than committing inline). A process can. `ProcessWriter` starts one
that opens its own connection to the hub file (WAL: the host keeps reading and making
its rare other writes through its own connection) and commits each batch it receives
pickled over a pipe, answering with the stored messages and work items and their ids.
The engine awaits that answer and routes nothing before it, so durability is the same as
inline: a batch is durable once the writer's COMMIT returns, and only then is anything
it caused acknowledged. The writer process also runs the hub's checkpoints (it is the
one writing).

If the writer process dies, whether its last batch was committed is unknown to the host;
rather than guess, the host is told (`on_failure`) and exits, and the next start
recovers from the hub as after any crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import signal
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from durablehost.errors import HubUnavailableError, InstanceAlreadyExistsError
from durablehost.store.base import (
    ActivityWork,
    EpisodeCommit,
    InstanceRecord,
    Message,
    TaskHubStore,
)
from durablehost.store.rows import attach_ids, encode_episode, encode_start, start_outcomes
from durablehost.store.sqlite import SqliteTaskHubStore

__all__ = ["HubWriter", "HubWriterError", "InlineWriter", "ProcessWriter"]

log = logging.getLogger(__name__)

_Stored = tuple[list[Message], list[ActivityWork]]
_Created = list[Message | InstanceAlreadyExistsError]


# Largest batch committed by the host itself when the writer process is idle.
_INLINE_BATCH = 2


class HubWriterError(HubUnavailableError):
    """The writer process is gone; the host cannot know what it last committed. The
    host exits (and a restart recovers), so a client may try again in a few seconds."""


class HubWriter(Protocol):
    """The engine's group commits (see TaskHubStore for what each does)."""

    # How many batches the engine may have in flight at once: 1 means each commit ends
    # before the next batch is planned.
    depth: int

    async def commit_episodes_with_results(
        self, commits: Sequence[EpisodeCommit], completed_work_ids: Sequence[int]
    ) -> _Stored: ...

    async def create_instances(self, starts: Sequence[tuple[InstanceRecord, Message]]) -> _Created:
        """Create instances (TaskHubStore.create_instances)."""
        ...


class InlineWriter:
    """Commits on the calling thread, through the engine's own store."""

    depth = 1

    def __init__(self, store: TaskHubStore) -> None:
        self._store = store

    async def commit_episodes_with_results(
        self, commits: Sequence[EpisodeCommit], completed_work_ids: Sequence[int]
    ) -> _Stored:
        return self._store.commit_episodes_with_results(commits, completed_work_ids)

    async def create_instances(self, starts: Sequence[tuple[InstanceRecord, Message]]) -> _Created:
        return self._store.create_instances(starts)


class ProcessWriter:
    """Commits in a child process with its own connection to the SQLite hub of `store`
    (small batches while it is idle: through `store` itself).

    Requests are answered in the order they were sent (one pipe, one child). Call from
    one event loop.
    """

    depth = 3

    def __init__(self, store: SqliteTaskHubStore, *, on_failure: Callable[[str], None]) -> None:
        self._store = store
        self._on_failure = on_failure
        path = store.path
        context = multiprocessing.get_context("spawn")  # the host has threads: no fork
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=serve, args=(str(path), child), name="durablehost-hub-writer", daemon=True
        )
        self._process.start()
        child.close()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: str | None = None
        # Watch the pipe from the start: a writer that dies while idle is noticed at once.
        with contextlib.suppress(RuntimeError):  # no running loop: on the first call
            self._watch(asyncio.get_running_loop())

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self._conn.fileno(), self._on_readable)
        self._loop = loop

    def _inline(self, size: int) -> bool:
        # A small batch while the writer is idle (one instance stepping through a long
        # sequence, a lone start) is committed here: the round trip to the writer would
        # only add latency (~0.3 ms per step), and with nothing in flight no commit of
        # the writer's can be overtaken.
        return size <= _INLINE_BATCH and not self._waiting and self._failed is None

    async def commit_episodes_with_results(
        self, commits: Sequence[EpisodeCommit], completed_work_ids: Sequence[int]
    ) -> _Stored:
        if self._inline(len(commits)):
            return self._store.commit_episodes_with_results(commits, completed_work_ids)
        # Encoded here, as plain rows: they pickle several times faster than the records.
        encoded = [encode_episode(commit) for commit in commits]
        ids = await self._call("commit_encoded", encoded, list(completed_work_ids))
        return attach_ids(commits, ids)

    async def create_instances(self, starts: Sequence[tuple[InstanceRecord, Message]]) -> _Created:
        if self._inline(len(starts)):
            return self._store.create_instances(starts)
        encoded = [encode_start(instance, start) for instance, start in starts]
        return start_outcomes(starts, await self._call("create_encoded", encoded))

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._conn.fileno())
        self._failed = self._failed or "the writer process was stopped"
        with contextlib.suppress(OSError):  # already gone
            self._conn.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():  # stuck: it ignores SIGTERM (see serve), so SIGKILL
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()

    async def _call(self, method: str, *args: Any) -> Any:
        if self._failed is not None:
            raise HubWriterError(self._failed)
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._watch(loop)
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append(future)
        try:
            self._conn.send((method, args))
        except OSError as exc:
            self._fail(f"the hub writer process is gone ({exc})")
        return await future

    def _on_readable(self) -> None:
        try:
            while self._conn.poll():
                ok, value = self._conn.recv()
                future = self._waiting.popleft()
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except (EOFError, OSError) as exc:
            self._fail(f"the hub writer process is gone ({exc!r})")

    def _fail(self, reason: str) -> None:
        if self._failed is not None:
            return
        self._failed = reason
        if self._loop is not None:
            self._loop.remove_reader(self._conn.fileno())
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(HubWriterError(reason))
        log.critical("%s; its last commit may or may not have happened", reason)
        self._on_failure(reason)


def serve(path: str, conn: multiprocessing.connection.Connection) -> None:
    """The writer process: commit what arrives on `conn` until None or end of file."""
    # Ctrl+C in a terminal (SIGINT to the whole process group) or a SIGTERM to the group
    # must not kill the writer before its host: the host stops first and then closes the
    # pipe, which ends this loop. Only SIGKILL stops it from outside.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store = SqliteTaskHubStore(path)
    try:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return  # the host is gone (even kill -9): nothing is waiting for us
            if request is None:
                return
            method, args = request
            try:
                answer: tuple[bool, Any] = (True, getattr(store, method)(*args))
            except Exception as exc:
                answer = (False, exc)
            try:
                conn.send(answer)
            except OSError:
                return  # the host is gone
            except Exception as exc:  # an answer that does not pickle (an odd exception)
                conn.send((False, RuntimeError(f"{method} failed: {answer[1]!r} ({exc})")))
    finally:
        store.close()
