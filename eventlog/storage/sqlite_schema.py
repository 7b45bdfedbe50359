"""The SQLite file's schema: its marks, its migrations, and the checks made before
anything is written.

The database is marked with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``; files that are not databases, belong to something
else, or were written by a newer eventlog are refused untouched. Components
that keep their own tables in the file (the webhook ledger, ingest sources)
version them in ``schema_components`` (:func:`migrate_component`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from eventlog.errors import CorruptDatabase, SchemaTooNew, StorageError

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "PAGE_SIZE",
    "SCHEMA_VERSION",
    "migrate_component",
    "prepare_reader",
    "prepare_writer",
]

APPLICATION_ID = 0x45564C47  # "EVLG"

#: Page size of new files. Events of a few hundred bytes sit in the primary
#: key's leaf pages (WITHOUT ROWID); larger pages mean fewer page splits and
#: WAL frames per group commit (measured ~25% cheaper inserts than 4 KiB).
PAGE_SIZE = 16384

#: Forward migrations; entry i takes the schema from version i to i + 1.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE streams (
            name TEXT PRIMARY KEY,
            next_offset INTEGER NOT NULL,
            first_offset INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            last_time_us INTEGER,
            max_age REAL,
            max_count INTEGER,
            max_bytes INTEGER
        ) WITHOUT ROWID""",
        """CREATE TABLE events (
            stream TEXT NOT NULL,
            offset INTEGER NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            key TEXT,
            time_us INTEGER NOT NULL,
            headers BLOB,
            data BLOB NOT NULL,
            PRIMARY KEY (stream, offset)
        ) WITHOUT ROWID""",
        "CREATE UNIQUE INDEX events_by_id ON events (stream, id)",
        """CREATE TABLE consumer_offsets (
            name TEXT NOT NULL,
            stream TEXT NOT NULL,
            offset INTEGER NOT NULL,
            updated_us INTEGER NOT NULL,
            PRIMARY KEY (name, stream)
        ) WITHOUT ROWID""",
        """CREATE TABLE schema_components (
            component TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ],
    [
        # Retention holds, per stream (eventlog.holds): 1 = named consumers hold it.
        "ALTER TABLE streams ADD COLUMN protect INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE streams ADD COLUMN max_hold REAL",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def prepare_writer(conn: sqlite3.Connection, path: Path, synchronous: str) -> None:
    """Check the file, switch it to WAL, set durability, apply forward migrations.

    Looks before writing anything: a foreign or corrupt file stays untouched.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    if version == 0 and tables:
        raise CorruptDatabase(
            f"{str(path)!r} is an SQLite database of something else "
            f"(tables: {', '.join(sorted(tables)[:5])}); refusing to use it"
        )
    if version > 0 and app_id != APPLICATION_ID:
        raise CorruptDatabase(f"{str(path)!r} is not an eventlog database")
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(version, SCHEMA_VERSION)
    if version == 0:
        # Only a new, empty file takes a page size (an existing one keeps its own).
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StorageError(f"cannot put {str(path)!r} in WAL mode (got {mode})")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def prepare_reader(conn: sqlite3.Connection) -> None:
    """Settings of a reader connection: wait on locks, never write."""
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA query_only = ON")


def migrate_component(
    conn: sqlite3.Connection, component: str, migrations: Sequence[Sequence[str]]
) -> None:
    """Apply a component's pending migrations (inside a write transaction)."""
    row = conn.execute(
        "SELECT version FROM schema_components WHERE component = ?", (component,)
    ).fetchone()
    version = row[0] if row else 0
    if version > len(migrations):
        raise SchemaTooNew(version, len(migrations))
    for statements in migrations[version:]:
        for statement in statements:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_components (component, version) VALUES (?, ?) "
        "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        (component, len(migrations)),
    )
