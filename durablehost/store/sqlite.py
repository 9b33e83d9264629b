"""The SQLite task hub: one file, WAL, every state change one transaction."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from durablehost.errors import (
    DurableHostError,
    HubUnavailableError,
    InstanceAlreadyExistsError,
)
from durablehost.model.history import HistoryEvent
from durablehost.model.instances import TERMINAL_STATUSES, InstanceQuery, RuntimeStatus
from durablehost.store.base import ActivityWork, EpisodeCommit, InstanceRecord, Message
from durablehost.store.listing import (
    INSTANCE_COLUMNS,
    instance_filters,
    instance_page,
    listing_sql,
)
from durablehost.store.migrations import migrate
from durablehost.store.rows import (
    EncodedEpisode,
    EncodedStart,
    attach_ids,
    encode_episode,
    encode_start,
    event_from_json,
    instance_from_row,
    message_row,
    start_outcomes,
)
from durablehost.wire.orchestration import parse_timestamp

__all__ = ["HubFullError", "HubReadOnlyError", "SqliteTaskHubStore"]

log = logging.getLogger(__name__)


_SQLITE_FULL = 13  # "database or disk is full" (sqlite3.SQLITE_FULL from Python 3.11.4 on)


class HubFullError(HubUnavailableError):
    """The disk (or the hub's page limit) is full: the change was rolled back."""

    # Somebody has to free space first: a client should not come back at once.
    retry_after = 30


class HubReadOnlyError(DurableHostError):
    """The hub file can be read but not written (a read-only file or mount)."""


# How often the WAL is copied into the database file, and the WAL size (in 4 KB pages)
# at which it is started over (see _checkpoint_loop).
_CHECKPOINT_SECONDS = 0.2
_RESTART_WAL_FRAMES = 8000
_CHECKPOINT_LOG_SECONDS = 60.0


class SqliteTaskHubStore:
    """TaskHubStore on one SQLite file. Safe to call from several threads (one
    connection, serialised by a lock); the engine calls it from its event loop."""

    def __init__(self, path: Path | str, *, checkpoints: bool = True) -> None:
        """Open (creating if needed) the hub at `path`. `checkpoints`: run the
        checkpoint thread below; only the process that does the hub's writes should
        (durablehost.store.writer), or RESTART checkpoints keep finding it busy."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN ourselves, so each commit is explicit.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        # WAL: readers never block the writer, and a commit is one sequential append.
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL under WAL: a commit survives a process crash (kill -9); only a power
        # loss may drop the last transactions. FULL would fsync every commit.
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Another process (a second host by mistake, a CLI) waits instead of failing.
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA foreign_keys=OFF")
        migrate(self._db)
        # Checkpoints (copying the WAL into the database file, with fsyncs) would run
        # inside whichever commit crosses the WAL size limit, on the engine's event loop.
        # A thread of its own copies the WAL instead, without blocking writers; only when
        # the WAL has grown does it take the store's lock for a short RESTART, so the next
        # commit starts the WAL file over. Commits stay as durable: a checkpoint only
        # moves committed pages.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoints:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="hub-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def close(self) -> None:
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        with self._lock:
            self._db.close()

    def _checkpoint_loop(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            last_logged = -_CHECKPOINT_LOG_SECONDS
            while not self._stop_checkpoints.wait(_CHECKPOINT_SECONDS):
                try:
                    _, wal_frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if wal_frames >= _RESTART_WAL_FRAMES:
                        # Under the lock no commit or read of ours is in progress, and
                        # the PASSIVE pass left little to copy. Without a busy timeout
                        # it never waits for another process's reader: it tries again.
                        with self._lock:
                            db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                except Exception as exc:
                    # Never let the thread die: without it the WAL would only grow. It
                    # tries five times a second: a lasting cause (a full disk) is logged
                    # once a minute, not at every try.
                    now = time.monotonic()
                    if now - last_logged >= _CHECKPOINT_LOG_SECONDS:
                        last_logged = now
                        log.warning("task hub checkpoint failed (%s); trying again", exc)
        finally:
            db.close()

    def check_writable(self) -> None:
        """Raise HubReadOnlyError unless a transaction can write to the hub.

        SQLite opens a file it may not write (a read-only mount, a file the user cannot
        write) read-only without a word, and only the first write fails: a host would
        serve and then refuse every start. A write that is rolled back finds out first.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    version = self._db.execute("PRAGMA user_version").fetchone()[0]
                    self._db.execute(f"PRAGMA user_version={int(version)}")
                finally:
                    self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise HubReadOnlyError(
                    f"the task hub {self.path} cannot be written: {exc}"
                ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            # IMMEDIATE takes the write lock up front, so a transaction never fails
            # half-way on a lock upgrade.
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                try:
                    self._db.execute("COMMIT")
                except BaseException:
                    # A COMMIT that failed (disk full) may leave the transaction open.
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode == _SQLITE_FULL:
                    raise HubFullError(
                        f"the task hub {self.path} is out of disk space ({exc}); nothing "
                        "of this change was stored: free some space and try again"
                    ) from None
                raise

    # -- instances ---------------------------------------------------------------

    def create_instance(self, instance: InstanceRecord, start: Message) -> Message:
        (outcome,) = self.create_instances([(instance, start)])
        if isinstance(outcome, InstanceAlreadyExistsError):
            raise outcome
        return outcome

    def create_instances(
        self, starts: Sequence[tuple[InstanceRecord, Message]]
    ) -> list[Message | InstanceAlreadyExistsError]:
        encoded = [encode_start(instance, start) for instance, start in starts]
        return start_outcomes(starts, self.create_encoded(encoded))

    def create_encoded(self, starts: Sequence[EncodedStart]) -> list[int | str]:
        """`create_instances` from `encode_start` rows (what a writer process receives):
        per start, the stored message's id, or the status of the active instance that
        already has the id."""
        results: list[int | str] = []
        with self._transaction() as db:
            for instance_row, start_row in starts:
                active_status = _claim_instance_id(db, instance_row)
                if active_status is not None:
                    results.append(active_status)
                    continue
                results.append(int(db.execute(_INSERT_MESSAGE, start_row).lastrowid or 0))
        return results

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?",
                (instance_id,),
            ).fetchone()
        return instance_from_row(row) if row else None

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
            ).fetchall()
        return [event_from_json(row[0]) for row in rows]

    def list_instances(self, query: InstanceQuery) -> tuple[list[InstanceRecord], str | None]:
        sql, params = listing_sql(query)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return instance_page(query, rows)

    # -- messages and work ---------------------------------------------------------

    def enqueue(self, messages: Sequence[Message]) -> list[Message]:
        with self._transaction() as db:
            return _insert_messages(db, messages)

    def pending_messages(self) -> list[Message]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, instance_id, execution_id, event, visible_at FROM messages ORDER BY id"
            ).fetchall()
        return [
            Message(
                instance_id=row[1],
                execution_id=row[2],
                event=event_from_json(row[3]),
                visible_at=parse_timestamp(row[4]) if row[4] else None,
                message_id=row[0],
            )
            for row in rows
        ]

    def pending_activities(self) -> list[ActivityWork]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, instance_id, execution_id, task_id, name, input FROM activities "
                "ORDER BY id"
            ).fetchall()
        return [
            ActivityWork(row[1], row[2], row[3], row[4], row[5], work_id=row[0]) for row in rows
        ]

    def commit_episodes(
        self, commits: Sequence[EpisodeCommit]
    ) -> tuple[list[Message], list[ActivityWork]]:
        return self.commit_episodes_with_results(commits, ())

    def commit_episodes_with_results(
        self, commits: Sequence[EpisodeCommit], completed_work_ids: Sequence[int]
    ) -> tuple[list[Message], list[ActivityWork]]:
        """`commit_episodes`, also deleting the activity work items whose results these
        episodes consume (results the engine routed without storing them as messages:
        one transaction per step instead of two)."""
        encoded = [encode_episode(commit) for commit in commits]
        return attach_ids(commits, self.commit_encoded(encoded, completed_work_ids))

    def commit_encoded(
        self, episodes: Sequence[EncodedEpisode], completed_work_ids: Sequence[int]
    ) -> list[tuple[list[int], list[int]]]:
        """Commit `encode_episode` rows in one transaction (what a writer process
        receives); per episode, the ids of its stored messages and work items."""
        ids: list[tuple[list[int], list[int]]] = []
        with self._transaction() as db:
            if completed_work_ids:
                db.executemany(
                    "DELETE FROM activities WHERE id = ?", [(i,) for i in completed_work_ids]
                )
            for episode in episodes:
                ids.append(_apply_episode(db, episode))
        return ids

    def complete_activities(
        self, completions: Sequence[tuple[int, Message]]
    ) -> list[Message | None]:
        """Delete each work item and store its result message, all in one transaction;
        one entry per completion, None (nothing stored) where the work item was gone."""
        stored: list[Message | None] = []
        with self._transaction() as db:
            for work_id, result in completions:
                deleted = db.execute("DELETE FROM activities WHERE id = ?", (work_id,)).rowcount
                stored.append(_insert_messages(db, [result])[0] if deleted else None)
        return stored

    # -- purge ---------------------------------------------------------------------

    def delete_instance(self, instance_id: str) -> bool:
        with self._transaction() as db:
            return _purge(db, instance_id)

    def delete_instances(self, query: InstanceQuery) -> int:
        where, params = instance_filters(query)
        terminal = [status.value for status in TERMINAL_STATUSES]
        where.append(f"status IN ({','.join('?' * len(terminal))})")
        params += terminal
        with self._transaction() as db:
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT instance_id FROM instances WHERE " + " AND ".join(where), params
                ).fetchall()
            ]
            for instance_id in ids:
                _purge(db, instance_id)
        return len(ids)


# -- applying a commit's rows (durablehost.store.rows) -------------------------------------

_INSERT_MESSAGE = (
    "INSERT INTO messages (instance_id, execution_id, event, visible_at, timer_id) "
    "VALUES (?, ?, ?, ?, ?)"
)
_INSERT_ACTIVITY = (
    "INSERT INTO activities (instance_id, execution_id, task_id, name, input) "
    "VALUES (?, ?, ?, ?, ?)"
)


def _apply_episode(db: sqlite3.Connection, episode: EncodedEpisode) -> tuple[list[int], list[int]]:
    instance_id = episode.instance[0]
    if episode.consumed_message_ids:
        db.executemany(
            "DELETE FROM messages WHERE id = ?", [(i,) for i in episode.consumed_message_ids]
        )
    if episode.drop_pending_work:
        db.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))
        db.execute("DELETE FROM messages WHERE instance_id = ?", (instance_id,))
    for timer_id in episode.canceled_timer_ids:
        db.execute(
            "DELETE FROM messages WHERE instance_id = ? AND timer_id = ?",
            (instance_id, timer_id),
        )
    if episode.replace_history:
        db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))
        next_seq = 0
    elif episode.history_start is not None:
        # Trusted: were it wrong, the (instance_id, seq) key would refuse the rows and
        # the whole transaction roll back; the engine then reloads the instance.
        next_seq = episode.history_start
    else:
        row = db.execute(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM history WHERE instance_id = ?",
            (instance_id,),
        ).fetchone()
        next_seq = row[0]
    db.executemany(
        "INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)",
        [(instance_id, next_seq + offset, text) for offset, text in enumerate(episode.history)],
    )
    _upsert_instance(db, episode.instance)
    for child in episode.new_instances:
        child_id = child[0]
        if db.execute("SELECT 1 FROM instances WHERE instance_id = ?", (child_id,)).fetchone():
            _purge(db, child_id)
        _insert_instance(db, child)
    message_ids = [int(db.execute(_INSERT_MESSAGE, row).lastrowid or 0) for row in episode.messages]
    work_ids = [int(db.execute(_INSERT_ACTIVITY, row).lastrowid or 0) for row in episode.activities]
    return message_ids, work_ids


def _purge(db: sqlite3.Connection, instance_id: str) -> bool:
    deleted = db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,)).rowcount
    db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))
    db.execute("DELETE FROM messages WHERE instance_id = ?", (instance_id,))
    db.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))
    return bool(deleted)


_INSERT_NEW_INSTANCE = (
    f"INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (instance_id) DO NOTHING"
)


def _claim_instance_id(db: sqlite3.Connection, values: tuple[Any, ...]) -> str | None:
    """Insert a new instance row (`rows.instance_values`): replacing a terminal instance of
    the same id; an active one is kept and its status returned. The usual new id costs
    one statement (no lookup first)."""
    if db.execute(_INSERT_NEW_INSTANCE, values).rowcount:
        return None
    instance_id = values[0]
    row = db.execute(
        "SELECT status FROM instances WHERE instance_id = ?", (instance_id,)
    ).fetchone()
    if RuntimeStatus(row[0]) not in TERMINAL_STATUSES:
        return str(row[0])
    _purge(db, instance_id)
    _insert_instance(db, values)
    return None


def _insert_instance(db: sqlite3.Connection, values: tuple[Any, ...]) -> None:
    db.execute(
        f"INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", values
    )


# UPDATE rather than INSERT OR REPLACE (a delete and an insert, rewriting every index
# entry) for the usual case, an instance's row after each episode; created_at is left out
# of the SET (and matched instead) so its index entry stays as it is.
_UPDATE_INSTANCE = (
    "UPDATE instances SET execution_id = ?, name = ?, status = ?, updated_at = ?, "
    "input = ?, output = ?, custom_status = ?, parent_instance_id = ?, "
    "parent_execution_id = ?, parent_task_id = ? WHERE instance_id = ? AND created_at = ?"
)


def _upsert_instance(db: sqlite3.Connection, values: tuple[Any, ...]) -> None:
    instance_id, execution_id, name, status, created_at, *rest = values
    updated = db.execute(
        _UPDATE_INSTANCE, (execution_id, name, status, *rest, instance_id, created_at)
    ).rowcount
    if not updated:
        db.execute(
            f"INSERT OR REPLACE INTO instances ({INSTANCE_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            values,
        )


def _insert_messages(db: sqlite3.Connection, messages: Sequence[Message]) -> list[Message]:
    for message in messages:
        message.message_id = int(db.execute(_INSERT_MESSAGE, message_row(message)).lastrowid or 0)
    return list(messages)
