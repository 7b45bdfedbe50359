"""Which implementation of the log's own components goes with a backend.

The schedule of future appends and the held transactions (``log.transaction()``,
checkpoints) keep tables in the database the backend declares
(:attr:`Capabilities.tables <eventlog.storage.capabilities.Capabilities.tables>`):
SQLite or PostgreSQL, by its ``kind``. A backend without one (memory) gets the
in-memory implementations. Nothing here asks a backend for its type.
"""

from __future__ import annotations

from eventlog.storage.base import Storage
from eventlog.storage.held import HeldSource, MemoryHeld, PgHeld, SQLiteHeld
from eventlog.storage.schedule import MemorySchedule, ScheduleStore

__all__ = ["held_for", "schedule_store_for"]


def schedule_store_for(storage: Storage) -> ScheduleStore:
    """The schedule that lives with ``storage``: a table in its database, or memory."""
    tables = storage.capabilities.tables
    if tables is None:
        return MemorySchedule()
    if tables.kind == "sqlite":
        from eventlog.storage.schedule_sqlite import SQLiteSchedule

        return SQLiteSchedule(tables)
    from eventlog.storage.schedule_postgres import PostgresSchedule  # asyncpg only when used

    return PostgresSchedule(tables)


def held_for(storage: Storage) -> HeldSource:
    """The held-transaction source of a backend."""
    tables = storage.capabilities.tables
    if tables is None:
        return MemoryHeld(storage)
    if tables.kind == "sqlite":
        return SQLiteHeld(tables)
    return PgHeld(tables)
