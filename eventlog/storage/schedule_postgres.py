"""The schedule in the log's PostgreSQL schema: table ``{schema}.schedule``.

Several server processes share one schedule. Each dispatch is one transaction
that locks the due rows it takes (``FOR UPDATE SKIP LOCKED``: rows another
process holds are skipped, not waited for), appends them in the same
transaction, and deletes them before it commits. A process that dies
mid-dispatch loses its transaction and its locks with its connection, so its
rows go, untouched, to the next process that looks: each due event is
appended exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from eventlog.storage.capabilities import PostgresTables
from eventlog.storage.schedule import Begin, Deliver, ScheduleFilter, ScheduleRow
from eventlog.storage.schedule_sql import ROW_COLUMNS, schedule_row

__all__ = ["AFTER_COPY", "MIGRATIONS", "TABLES", "PostgresSchedule"]

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE {s}.schedule (
            seq bigserial PRIMARY KEY,
            stream text NOT NULL,
            id text NOT NULL,
            due_us bigint NOT NULL,
            created_us bigint NOT NULL,
            type text NOT NULL,
            key text,
            headers bytea,
            data bytea NOT NULL,
            UNIQUE (stream, id)
        )""",
        "CREATE INDEX schedule_by_due ON {s}.schedule (due_us, seq)",
    ]
]

#: What ``eventlog migrate`` copies, and how it then moves the sequence past the rows.
TABLES = ["schedule"]
AFTER_COPY = [
    "SELECT setval(pg_get_serial_sequence('{s}.schedule', 'seq'), "
    "coalesce(max(seq), 0) + 1, false) FROM {s}.schedule"
]


class PostgresSchedule:
    """A :class:`~eventlog.storage.schedule.ScheduleStore` in the log's PostgreSQL schema."""

    def __init__(self, storage: PostgresTables) -> None:
        self._storage = storage
        s = storage.schema
        self._sql_insert = (
            f"INSERT INTO {s}.schedule (stream, id, due_us, created_us, type, key, headers, data) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], "
            "$5::text[], $6::text[], $7::bytea[], $8::bytea[]) "
            "ON CONFLICT (stream, id) DO NOTHING RETURNING stream, id, seq"
        )
        self._sql_existing = (
            f"SELECT {ROW_COLUMNS} FROM {s}.schedule s JOIN unnest($1::text[], $2::text[]) "
            "AS w(stream, id) USING (stream, id)"
        )
        self._sql_get = f"SELECT {ROW_COLUMNS} FROM {s}.schedule WHERE stream = $1 AND id = $2"
        self._sql_cancel = f"DELETE FROM {s}.schedule WHERE stream = $1 AND id = $2 RETURNING seq"
        self._sql_next = f"SELECT min(due_us) FROM {s}.schedule"
        self._sql_claim = (
            f"SELECT {ROW_COLUMNS} FROM {s}.schedule WHERE due_us <= $1 "
            "ORDER BY due_us, seq LIMIT $2 FOR UPDATE SKIP LOCKED"
        )
        self._sql_delete = f"DELETE FROM {s}.schedule WHERE seq = ANY($1::bigint[])"
        self._sql_page = f"SELECT {ROW_COLUMNS} FROM {s}.schedule"

    async def open(self) -> None:
        await self._storage.ensure_schema("schedule", MIGRATIONS)

    async def add(self, rows: Sequence[ScheduleRow]) -> list[tuple[ScheduleRow, bool]]:
        async def txn(conn: asyncpg.Connection) -> list[tuple[ScheduleRow, bool]]:
            columns = [
                [getattr(r, name) for r in rows]
                for name in ("stream", "id", "due_us", "created_us", "type", "key", "headers")
            ]
            columns.append([r.data for r in rows])
            new = {(s, i): seq for s, i, seq in await conn.fetch(self._sql_insert, *columns)}
            missing = [r for r in rows if (r.stream, r.id) not in new]
            existing: dict[tuple[str, str], ScheduleRow] = {}
            if missing:
                found = await conn.fetch(
                    self._sql_existing, [r.stream for r in missing], [r.id for r in missing]
                )
                existing = {(r[0], r[1]): schedule_row(r) for r in found}
            out: list[tuple[ScheduleRow, bool]] = []
            for r in rows:
                seq = new.get((r.stream, r.id))
                if seq is not None:
                    out.append((msgspec.structs.replace(r, seq=seq), True))
                else:
                    out.append((existing[(r.stream, r.id)], False))
            return out

        return await self._storage.transact(txn, "schedule")

    async def get(self, stream: str, event_id: str) -> ScheduleRow | None:
        async def q(conn: asyncpg.Connection) -> ScheduleRow | None:
            r = await conn.fetchrow(self._sql_get, stream, event_id)
            return None if r is None else schedule_row(r)

        return await self._storage.query(q, "scheduled event")

    async def cancel(self, stream: str, event_id: str) -> bool:
        async def d(conn: asyncpg.Connection) -> bool:
            return await conn.fetchval(self._sql_cancel, stream, event_id) is not None

        return await self._storage.transact(d, "cancel scheduled event")

    async def page(self, where: ScheduleFilter) -> list[ScheduleRow]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("stream", where.stream), ("type", where.type)):
            if value is not None:
                params.append(value)
                clauses.append(f"{column} = ${len(params)}")
        if where.until_us is not None:
            params.append(where.until_us)
            clauses.append(f"due_us <= ${len(params)}")
        if where.after is not None:
            params.extend(where.after)
            clauses.append(f"(due_us, seq) > (${len(params) - 1}, ${len(params)})")
        sql = self._sql_page
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        params.append(where.limit)
        sql += f" ORDER BY due_us, seq LIMIT ${len(params)}"

        async def q(conn: asyncpg.Connection) -> list[ScheduleRow]:
            return [schedule_row(r) for r in await conn.fetch(sql, *params)]

        return await self._storage.query(q, "list scheduled events")

    async def next_due(self) -> int | None:
        async def q(conn: asyncpg.Connection) -> int | None:
            value = await conn.fetchval(self._sql_next)
            return None if value is None else int(value)

        return await self._storage.query(q, "next due time")

    async def dispatch(self, now_us: int, limit: int, begin: Begin, deliver: Deliver) -> int:
        async with begin() as txn:
            due = [schedule_row(r) for r in await txn.execute(self._sql_claim, now_us, limit)]
            if due:
                await deliver(due, txn)
                await txn.execute(self._sql_delete, [r.seq for r in due])
        return len(due)
