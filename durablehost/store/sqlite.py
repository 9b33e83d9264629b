"""The SQLite task hub: one file, WAL, every state change one transaction."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from durablehost.errors import InstanceAlreadyExistsError, InvalidInputError
from durablehost.history import EventType, HistoryEvent
from durablehost.model import TERMINAL_STATUSES, InstanceQuery, RuntimeStatus
from durablehost.store.base import ActivityWork, EpisodeCommit, InstanceRecord, Message
from durablehost.store.migrations import migrate
from durablehost.wire.orchestration import format_timestamp, parse_timestamp

__all__ = ["SqliteTaskHubStore"]

log = logging.getLogger(__name__)

_INSTANCE_COLUMNS = (
    "instance_id, execution_id, name, status, created_at, updated_at, input, output, "
    "custom_status, parent_instance_id, parent_execution_id, parent_task_id"
)


# How often the WAL is copied into the database file, and the WAL size (in 4 KB pages)
# at which it is started over (see _checkpoint_loop).
_CHECKPOINT_SECONDS = 0.2
_RESTART_WAL_FRAMES = 8000


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
            while not self._stop_checkpoints.wait(_CHECKPOINT_SECONDS):
                try:
                    _, wal_frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if wal_frames >= _RESTART_WAL_FRAMES:
                        # Under the lock no commit or read of ours is in progress, and
                        # the PASSIVE pass left little to copy. Without a busy timeout
                        # it never waits for another process's reader: it tries again.
                        with self._lock:
                            db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                except Exception:
                    # Never let the thread die: without it the WAL would only grow.
                    log.warning("task hub checkpoint failed; trying again", exc_info=True)
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            # IMMEDIATE takes the write lock up front, so a transaction never fails
            # half-way on a lock upgrade.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

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
            for instance_values, message_row in starts:
                active_status = _claim_instance_id(db, instance_values)
                if active_status is not None:
                    results.append(active_status)
                    continue
                results.append(int(db.execute(_INSERT_MESSAGE, message_row).lastrowid or 0))
        return results

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?",
                (instance_id,),
            ).fetchone()
        return _instance_from_row(row) if row else None

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
            ).fetchall()
        return [event_from_json(row[0]) for row in rows]

    def list_instances(self, query: InstanceQuery) -> tuple[list[InstanceRecord], str | None]:
        where, params = _filters(query)
        if query.continuation_token:
            created, instance_id = _decode_token(query.continuation_token)
            where.append("(created_at < ? OR (created_at = ? AND instance_id < ?))")
            params += [created, created, instance_id]
        sql = f"SELECT {_INSTANCE_COLUMNS} FROM instances"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, instance_id DESC"
        limit = query.top if query.top and query.top > 0 else None
        if limit is not None:
            sql += f" LIMIT {limit + 1}"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        records = [_instance_from_row(row) for row in rows]
        token = None
        if limit is not None and len(records) > limit:
            records = records[:limit]
            last = records[-1]
            token = _encode_token(format_timestamp(last.created_at), last.instance_id)
        return records, token

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
        where, params = _filters(query)
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


# -- a commit as rows ------------------------------------------------------------------
# Commits are encoded to plain rows (strings and numbers) before they touch SQLite, so
# the encoding can happen in the host and the SQL in a writer process
# (durablehost.store.writer): such rows pickle several times faster than the records.

_INSERT_MESSAGE = (
    "INSERT INTO messages (instance_id, execution_id, event, visible_at, timer_id) "
    "VALUES (?, ?, ?, ?, ?)"
)
_INSERT_ACTIVITY = (
    "INSERT INTO activities (instance_id, execution_id, task_id, name, input) "
    "VALUES (?, ?, ?, ?, ?)"
)


class EncodedEpisode(NamedTuple):
    """One EpisodeCommit as rows."""

    instance_id: str
    instance: tuple[Any, ...]  # _instance_values
    consumed_message_ids: list[int]
    drop_pending_work: bool
    canceled_timer_ids: list[int]
    replace_history: bool
    history_start: int | None
    history: list[str]  # event_to_json
    new_instances: list[tuple[Any, ...]]
    messages: list[tuple[Any, ...]]  # _message_row
    activities: list[tuple[Any, ...]]


# (instance values, its ExecutionStarted message row)
EncodedStart = tuple[tuple[Any, ...], tuple[Any, ...]]


def encode_episode(commit: EpisodeCommit) -> EncodedEpisode:
    """The rows of one episode's commit."""
    return EncodedEpisode(
        commit.instance.instance_id,
        _instance_values(commit.instance),
        [i for i in commit.consumed_message_ids if i],  # 0: never stored
        commit.drop_pending_work,
        list(commit.canceled_timer_ids),
        commit.replace_history,
        commit.history_start,
        [event_to_json(event) for event in commit.history],
        [_instance_values(child) for child in commit.new_instances],
        [_message_row(message) for message in commit.messages],
        [(w.instance_id, w.execution_id, w.task_id, w.name, w.input) for w in commit.activities],
    )


def attach_ids(
    commits: Sequence[EpisodeCommit], ids: Sequence[tuple[list[int], list[int]]]
) -> tuple[list[Message], list[ActivityWork]]:
    """Give the commits' messages and work items the ids `commit_encoded` returned."""
    new_messages: list[Message] = []
    new_work: list[ActivityWork] = []
    for commit, (message_ids, work_ids) in zip(commits, ids, strict=True):
        for message, message_id in zip(commit.messages, message_ids, strict=True):
            message.message_id = message_id
        for work, work_id in zip(commit.activities, work_ids, strict=True):
            work.work_id = work_id
        new_messages += commit.messages
        new_work += commit.activities
    return new_messages, new_work


def encode_start(instance: InstanceRecord, start: Message) -> EncodedStart:
    """The rows of one new instance."""
    return _instance_values(instance), _message_row(start)


def start_outcomes(
    starts: Sequence[tuple[InstanceRecord, Message]], results: Sequence[int | str]
) -> list[Message | InstanceAlreadyExistsError]:
    """`create_encoded` results as `create_instances` outcomes."""
    outcomes: list[Message | InstanceAlreadyExistsError] = []
    for (instance, start), result in zip(starts, results, strict=True):
        if isinstance(result, str):
            outcomes.append(
                InstanceAlreadyExistsError(
                    instance.instance_id,
                    f"An instance with ID '{instance.instance_id}' already exists and is {result}.",
                )
            )
        else:
            start.message_id = result
            outcomes.append(start)
    return outcomes


def _message_row(message: Message) -> tuple[Any, ...]:
    event = message.event
    return (
        message.instance_id,
        message.execution_id,
        event_to_json(event),
        format_timestamp(message.visible_at) if message.visible_at else None,
        event.timer_id if event.event_type is EventType.TIMER_FIRED else None,
    )


def _apply_episode(db: sqlite3.Connection, episode: EncodedEpisode) -> tuple[list[int], list[int]]:
    instance_id = episode.instance_id
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


def _filters(query: InstanceQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.created_from is not None:
        where.append("created_at >= ?")
        params.append(format_timestamp(query.created_from))
    if query.created_to is not None:
        where.append("created_at <= ?")
        params.append(format_timestamp(query.created_to))
    if query.statuses:
        statuses = sorted(status.value for status in query.statuses)
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if query.instance_id_prefix:
        # Range scan instead of LIKE, so '%' and '_' in ids mean themselves.
        where.append("instance_id >= ? AND instance_id < ?")
        params += [query.instance_id_prefix, query.instance_id_prefix + "\U0010ffff"]
    return where, params


def _encode_token(created_at: str, instance_id: str) -> str:
    raw = json.dumps([created_at, instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[str, str]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not (
            isinstance(decoded, list)
            and len(decoded) == 2
            and all(isinstance(part, str) for part in decoded)
        ):
            raise ValueError("not a [created_at, instance_id] pair")
        return decoded[0], decoded[1]
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            "The continuation token is not one this host issued; start the listing again "
            "without x-ms-continuation-token."
        ) from exc


def _purge(db: sqlite3.Connection, instance_id: str) -> bool:
    deleted = db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,)).rowcount
    db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))
    db.execute("DELETE FROM messages WHERE instance_id = ?", (instance_id,))
    db.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))
    return bool(deleted)


def _instance_values(instance: InstanceRecord) -> tuple[Any, ...]:
    return (
        instance.instance_id,
        instance.execution_id,
        instance.name,
        instance.status.value,
        format_timestamp(instance.created_at),
        format_timestamp(instance.updated_at),
        instance.input,
        instance.output,
        instance.custom_status,
        instance.parent_instance_id,
        instance.parent_execution_id,
        instance.parent_task_id,
    )


_INSERT_NEW_INSTANCE = (
    f"INSERT INTO instances ({_INSTANCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (instance_id) DO NOTHING"
)


def _claim_instance_id(db: sqlite3.Connection, values: tuple[Any, ...]) -> str | None:
    """Insert a new instance row (`_instance_values`): replacing a terminal instance of
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
        f"INSERT INTO instances ({_INSTANCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", values
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
            f"INSERT OR REPLACE INTO instances ({_INSTANCE_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            values,
        )


def _instance_from_row(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(
        instance_id=row[0],
        execution_id=row[1],
        name=row[2],
        status=RuntimeStatus(row[3]),
        created_at=parse_timestamp(row[4]),
        updated_at=parse_timestamp(row[5]),
        input=row[6],
        output=row[7],
        custom_status=row[8],
        parent_instance_id=row[9],
        parent_execution_id=row[10],
        parent_task_id=row[11],
    )


def _insert_messages(db: sqlite3.Connection, messages: Sequence[Message]) -> list[Message]:
    for message in messages:
        message.message_id = int(db.execute(_INSERT_MESSAGE, _message_row(message)).lastrowid or 0)
    return list(messages)


# -- history event storage format ---------------------------------------------------
# Short keys keep rows small; only set fields are written. event_to_json spells these
# out one by one; the store round-trip tests (every field of every kind) keep them in step.
_EVENT_FIELDS = (
    ("n", "name"),
    ("v", "version"),
    ("i", "input"),
    ("r", "result"),
    ("rs", "reason"),
    ("d", "details"),
    ("ts", "task_scheduled_id"),
    ("ti", "timer_id"),
    ("ii", "instance_id"),
    ("pi", "parent_instance_id"),
    ("os", "orchestration_status"),
)


# orjson: the history is most of what the hub writes (every event of every episode) and
# reads (every replay after a restart), and orjson encodes these small dicts several
# times faster than json, writing datetimes itself (RFC 3339, Z for UTC; microseconds
# unless zero), so no timestamp is formatted in Python. parse_timestamp reads both that
# and the older text written by format_timestamp.
_DUMP_OPTIONS = orjson.OPT_UTC_Z


def event_to_json(event: HistoryEvent) -> str:
    """A history event as the compact JSON stored in the hub."""
    # Spelled out field by field (no loop over _EVENT_FIELDS): this runs for every event
    # of every episode, and attribute access by name is twice as fast as getattr.
    data: dict[str, Any] = {"t": int(event.event_type), "at": event.timestamp}
    if event.event_id != -1:
        data["id"] = event.event_id
    if event.is_played:
        data["p"] = 1
    if event.name is not None:
        data["n"] = event.name
    if event.version is not None:
        data["v"] = event.version
    if event.input is not None:
        data["i"] = event.input
    if event.result is not None:
        data["r"] = event.result
    if event.reason is not None:
        data["rs"] = event.reason
    if event.details is not None:
        data["d"] = event.details
    if event.task_scheduled_id is not None:
        data["ts"] = event.task_scheduled_id
    if event.timer_id is not None:
        data["ti"] = event.timer_id
    if event.instance_id is not None:
        data["ii"] = event.instance_id
    if event.parent_instance_id is not None:
        data["pi"] = event.parent_instance_id
    if event.orchestration_status is not None:
        data["os"] = event.orchestration_status
    if event.fire_at is not None:
        data["f"] = event.fire_at
    return orjson.dumps(data, option=_DUMP_OPTIONS).decode()


def event_from_json(text: str) -> HistoryEvent:
    """Inverse of event_to_json."""
    data = orjson.loads(text)
    kwargs: dict[str, Any] = {attribute: data.get(key) for key, attribute in _EVENT_FIELDS}
    fire_at = data.get("f")
    return HistoryEvent(
        event_type=EventType(data["t"]),
        timestamp=parse_timestamp(data["at"]),
        event_id=data.get("id", -1),
        is_played=bool(data.get("p")),
        fire_at=parse_timestamp(fire_at) if fire_at else None,
        **kwargs,
    )
