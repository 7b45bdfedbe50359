"""The ``checkpoints`` table: producers' positions, committed with their appends.

A producer that reads from somewhere else (a file source's byte offset) stores
where it is as a checkpoint in the same transaction as the events it appended
(:meth:`eventlog.transaction.LogTransaction.set_checkpoint`). Component
``checkpoints`` of the log's database on SQLite and PostgreSQL;
``eventlog migrate`` copies it (``MIGRATIONS``, ``TABLES``).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SQLITE_MIGRATIONS", "TABLES"]

SQLITE_MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, value BLOB NOT NULL, "
        "updated_us INTEGER NOT NULL) WITHOUT ROWID"
    ]
]

#: PostgreSQL (``{s}``: the log's schema).
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE {s}.checkpoints (name text PRIMARY KEY, value bytea NOT NULL, "
        "updated_us bigint NOT NULL)"
    ]
]

TABLES = ["checkpoints"]
