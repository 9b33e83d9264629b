"""Numbered schema migrations for the SQLite task hub (PRAGMA user_version)."""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "migrate"]

# Append new steps; never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    # 1: instances, their history, messages to instances, activity work.
    """
    CREATE TABLE instances (
        instance_id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        input TEXT,
        output TEXT,
        custom_status TEXT,
        parent_instance_id TEXT,
        parent_execution_id TEXT,
        parent_task_id INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX instances_by_created ON instances (created_at, instance_id);
    CREATE INDEX instances_by_status ON instances (status, created_at);
    CREATE TABLE history (
        instance_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (instance_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id TEXT NOT NULL,
        execution_id TEXT,
        event TEXT NOT NULL,
        visible_at TEXT,
        timer_id INTEGER
    );
    CREATE INDEX messages_by_instance ON messages (instance_id, timer_id);
    CREATE TABLE activities (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        task_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        input TEXT
    );
    CREATE INDEX activities_by_instance ON activities (instance_id);
    """,
)


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema up to date, one numbered step per transaction."""
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"task hub schema version {current} is newer than this durablehost knows "
            f"({len(MIGRATIONS)}); upgrade durablehost or use another --hub file"
        )
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
