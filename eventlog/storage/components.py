"""Which implementation of the log's own components goes with a backend.

The schedule of future appends and the held transactions (``log.transaction()``,
checkpoints) keep tables in the database the backend declares
(:attr:`Capabilities.tables <eventlog.storage.capabilities.Capabilities.tables>`):
SQLite or PostgreSQL, by its ``kind``. A backend without one (memory) gets the
in-memory implementations. Nothing here asks a backend for its type.
"""

from __future__ import annotations

from eventlog.storage.base import Storage
from eventlog.storage.capabilities import PerDatabase, PostgresTables, SQLiteTables
from eventlog.storage.held import HeldSource, MemoryHeld, PgHeld, SQLiteHeld
from eventlog.storage.schedule import MemorySchedule, ScheduleStore

__all__ = ["held_for", "schedule_store_for"]


def schedule_store_for(storage: Storage) -> ScheduleStore:
    """The schedule that lives with ``storage``: a table in its database, or memory."""
    stores = PerDatabase[ScheduleStore](MemorySchedule, _sqlite_schedule, _pg_schedule)
    return stores.pick(storage.capabilities.tables)


def _sqlite_schedule(tables: SQLiteTables) -> ScheduleStore:
    from eventlog.storage.schedule_sqlite import SQLiteSchedule

    return SQLiteSchedule(tables)


def _pg_schedule(tables: PostgresTables) -> ScheduleStore:
    from eventlog.storage.schedule_postgres import PostgresSchedule  # asyncpg only when used

    return PostgresSchedule(tables)


def held_for(storage: Storage) -> HeldSource:
    """The held-transaction source of a backend."""
    helds = PerDatabase[HeldSource](lambda: MemoryHeld(storage), SQLiteHeld, PgHeld)
    return helds.pick(storage.capabilities.tables)
