"""Ingest sources created through the API, in the log's PostgreSQL schema.

Table ``<schema>.ingest_sources`` (component ``ingest`` of the schema's
migrations). Every server process on the database sees a source as soon as
it is stored: the registry reads it per request.
"""

from __future__ import annotations

import asyncpg

from eventlog.storage.capabilities import PostgresTables

__all__ = ["COPY_COLUMNS", "MIGRATIONS", "TABLES", "PostgresSourceStore"]

MIGRATIONS = [
    [
        "CREATE TABLE {s}.ingest_sources ("
        " name TEXT PRIMARY KEY,"
        " spec BYTEA NOT NULL,"
        " updated TIMESTAMPTZ NOT NULL DEFAULT now())"
    ]
]


#: For ``eventlog migrate`` (server/cli/migrate.py): the tables it copies from SQLite, and
#: their columns: SQLite's ``updated_us`` has no counterpart (``updated`` takes its default;
#: nothing reads either).
TABLES = ["ingest_sources"]
COPY_COLUMNS = {"ingest_sources": ["name", "spec"]}


class PostgresSourceStore:
    """A :class:`~server.ingest.store.SourceStore` in PostgreSQL."""

    def __init__(self, storage: PostgresTables) -> None:
        self._storage = storage
        self._s = storage.schema
        self._ready = False

    async def _schema(self) -> None:
        if not self._ready:
            # Idempotent and safe to race: migrations are versioned per component.
            await self._storage.ensure_schema("ingest", MIGRATIONS)
            self._ready = True

    async def get(self, name: str) -> bytes | None:
        await self._schema()

        async def q(conn: asyncpg.Connection) -> bytes | None:
            value = await conn.fetchval(
                f"SELECT spec FROM {self._s}.ingest_sources WHERE name = $1", name
            )
            return None if value is None else bytes(value)

        return await self._storage.query(q, "read ingest source")

    async def all(self) -> list[tuple[str, bytes]]:
        await self._schema()

        async def q(conn: asyncpg.Connection) -> list[tuple[str, bytes]]:
            rows = await conn.fetch(
                f"SELECT name, spec FROM {self._s}.ingest_sources ORDER BY name"
            )
            return [(str(r["name"]), bytes(r["spec"])) for r in rows]

        return await self._storage.query(q, "list ingest sources")

    async def put(self, name: str, spec: bytes) -> bool:
        await self._schema()

        async def txn(conn: asyncpg.Connection) -> bool:
            inserted = await conn.fetchval(
                f"INSERT INTO {self._s}.ingest_sources (name, spec) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated = now() "
                "RETURNING (xmax = 0)",
                name,
                spec,
            )
            return bool(inserted)

        return await self._storage.transact(txn, "store ingest source")

    async def delete(self, name: str) -> bool:
        await self._schema()

        async def txn(conn: asyncpg.Connection) -> bool:
            status = await conn.execute(
                f"DELETE FROM {self._s}.ingest_sources WHERE name = $1", name
            )
            return bool(status.endswith(" 1"))

        return await self._storage.transact(txn, "delete ingest source")
