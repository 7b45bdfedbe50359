"""The schedule in the log's SQLite file: table ``schedule``, component ``schedule``.

Scheduling is one write transaction on the writer connection (serialised with
appends, durable on return). Dispatch first looks on a reader connection; when
something is due it selects, appends and deletes the due rows in one held
transaction (SQLite's write lock), so a process that dies mid-way leaves them
scheduled, and a cancel (a write) either comes first or finds nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from eventlog.storage.capabilities import SQLiteTables
from eventlog.storage.schedule import Begin, Deliver, ScheduleFilter, ScheduleRow
from eventlog.storage.schedule_sql import ROW_COLUMNS, schedule_row

__all__ = ["MIGRATIONS", "SQLiteSchedule"]

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE schedule (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            stream TEXT NOT NULL,
            id TEXT NOT NULL,
            due_us INTEGER NOT NULL,
            created_us INTEGER NOT NULL,
            type TEXT NOT NULL,
            key TEXT,
            headers BLOB,
            data BLOB NOT NULL
        )""",
        "CREATE UNIQUE INDEX schedule_by_id ON schedule (stream, id)",
        "CREATE INDEX schedule_by_due ON schedule (due_us, seq)",
    ]
]


def _add(conn: sqlite3.Connection, rows: Sequence[ScheduleRow]) -> list[tuple[ScheduleRow, bool]]:
    out: list[tuple[ScheduleRow, bool]] = []
    for row in rows:
        got = conn.execute(
            "INSERT INTO schedule (stream, id, due_us, created_us, type, key, headers, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (stream, id) DO NOTHING RETURNING seq",
            (
                row.stream,
                row.id,
                row.due_us,
                row.created_us,
                row.type,
                row.key,
                row.headers,
                row.data,
            ),
        ).fetchone()
        if got is not None:
            out.append((msgspec.structs.replace(row, seq=got[0]), True))
            continue
        existing = conn.execute(
            f"SELECT {ROW_COLUMNS} FROM schedule WHERE stream = ? AND id = ?", (row.stream, row.id)
        ).fetchone()
        out.append((schedule_row(existing), False))
    return out


def _page(conn: sqlite3.Connection, where: ScheduleFilter) -> list[ScheduleRow]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.stream is not None:
        clauses.append("stream = ?")
        params.append(where.stream)
    if where.type is not None:
        clauses.append("type = ?")
        params.append(where.type)
    if where.until_us is not None:
        clauses.append("due_us <= ?")
        params.append(where.until_us)
    if where.after is not None:
        clauses.append("(due_us, seq) > (?, ?)")
        params.extend(where.after)
    sql = f"SELECT {ROW_COLUMNS} FROM schedule"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY due_us, seq LIMIT ?"
    params.append(where.limit)
    return [schedule_row(r) for r in conn.execute(sql, params)]


def _delete(conn: sqlite3.Connection, rows: Sequence[ScheduleRow]) -> None:
    conn.executemany("DELETE FROM schedule WHERE seq = ?", [(r.seq,) for r in rows])


class SQLiteSchedule:
    """A :class:`~eventlog.storage.schedule.ScheduleStore` in the log's SQLite file."""

    def __init__(self, storage: SQLiteTables) -> None:
        self._storage = storage

    async def open(self) -> None:
        await self._storage.ensure_schema("schedule", MIGRATIONS)

    async def add(self, rows: Sequence[ScheduleRow]) -> list[tuple[ScheduleRow, bool]]:
        return await self._storage.transact(lambda conn: _add(conn, rows))

    async def get(self, stream: str, event_id: str) -> ScheduleRow | None:
        def q(conn: sqlite3.Connection) -> ScheduleRow | None:
            r = conn.execute(
                f"SELECT {ROW_COLUMNS} FROM schedule WHERE stream = ? AND id = ?",
                (stream, event_id),
            ).fetchone()
            return None if r is None else schedule_row(r)

        return await self._storage.query(q)

    async def cancel(self, stream: str, event_id: str) -> bool:
        def d(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM schedule WHERE stream = ? AND id = ?", (stream, event_id)
            )
            return cur.rowcount > 0

        return await self._storage.transact(d)

    async def page(self, where: ScheduleFilter) -> list[ScheduleRow]:
        return await self._storage.query(lambda conn: _page(conn, where))

    async def next_due(self) -> int | None:
        def q(conn: sqlite3.Connection) -> int | None:
            value = conn.execute("SELECT min(due_us) FROM schedule").fetchone()[0]
            return None if value is None else int(value)

        return await self._storage.query(q)

    async def dispatch(self, now_us: int, limit: int, begin: Begin, deliver: Deliver) -> int:
        # A reader looks first: the write lock is taken only when something is due.
        if not await self.page(ScheduleFilter(until_us=now_us, limit=1)):
            return 0
        async with begin() as txn:
            found = await txn.execute(
                f"SELECT {ROW_COLUMNS} FROM schedule "
                "WHERE due_us <= ? ORDER BY due_us, seq LIMIT ?",
                now_us,
                limit,
            )
            due = [schedule_row(r) for r in found]
            if due:
                await deliver(due, txn)
                await txn.run(lambda conn: _delete(conn, due))
        return len(due)
