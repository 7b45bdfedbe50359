"""Where ingest sources live: the config file (read-only) and a runtime store.

Sources created through the API are kept by a :class:`SourceStore`: in the
log's own database (table ``ingest_sources``, so they survive a restart and
every server process on the database sees them) when the log is on SQLite or
PostgreSQL (:mod:`server.ingest.pg_store`), in memory otherwise. The
:class:`SourceRegistry` puts both together: config sources first, then the
store, looked up on every request (one indexed read) so that a source created,
changed or deleted by another server process on the same database takes
effect at once; compiled definitions are cached by their stored bytes.

Secrets are stored as given, since verifying an HMAC needs them, unless a
secrets key seals the definitions (:mod:`server.ingest.sealed`, docs/secrets.md);
the API never returns them (:func:`server.ingest.sources.redacted`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Protocol

import msgspec

from eventlog import EventLog
from eventlog.errors import Conflict
from eventlog.model import utc_now
from eventlog.storage.capabilities import PerDatabase, PostgresTables, SQLiteTables
from server.ingest.sources import CompiledSource, Source, compile_source

__all__ = [
    "ConfigOwned",
    "MemorySourceStore",
    "SQLiteSourceStore",
    "SourceRegistry",
    "SourceStore",
    "store_for",
]

_MIGRATIONS = [
    [
        "CREATE TABLE ingest_sources ("
        " name TEXT PRIMARY KEY,"
        " spec BLOB NOT NULL,"
        " updated_us INTEGER NOT NULL)"
    ]
]
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Source)


class ConfigOwned(Conflict):
    """The source is declared in the config file; the API cannot change it (HTTP 409)."""

    code = "source_in_config"

    def __init__(self, name: str) -> None:
        super().__init__(f"source {name!r} is defined in the config file")
        self.name = name


class SourceStore(Protocol):
    """Persistence of API-created sources as encoded definitions (JSON bytes)."""

    async def get(self, name: str) -> bytes | None:
        """The stored definition, or None."""
        ...

    async def all(self) -> list[tuple[str, bytes]]:
        """Every stored ``(name, definition)``, by name."""
        ...

    async def put(self, name: str, spec: bytes) -> bool:
        """Store a definition; True when it was new."""
        ...

    async def delete(self, name: str) -> bool:
        """Remove a definition; True when it existed."""
        ...


class MemorySourceStore:
    """A :class:`SourceStore` in a dict (in-memory logs, tests)."""

    def __init__(self) -> None:
        self._specs: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes | None:
        return self._specs.get(name)

    async def all(self) -> list[tuple[str, bytes]]:
        return [(name, self._specs[name]) for name in sorted(self._specs)]

    async def put(self, name: str, spec: bytes) -> bool:
        created = name not in self._specs
        self._specs[name] = spec
        return created

    async def delete(self, name: str) -> bool:
        return self._specs.pop(name, None) is not None


class SQLiteSourceStore:
    """A :class:`SourceStore` in the log's SQLite database (table ``ingest_sources``)."""

    def __init__(self, storage: SQLiteTables) -> None:
        self._storage = storage
        self._ready = False
        self._lock = asyncio.Lock()

    async def _schema(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self._storage.ensure_schema("ingest", _MIGRATIONS)
                self._ready = True

    async def get(self, name: str) -> bytes | None:
        await self._schema()

        def q(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT spec FROM ingest_sources WHERE name = ?", (name,)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._storage.query(q)

    async def all(self) -> list[tuple[str, bytes]]:
        await self._schema()

        def q(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows = conn.execute("SELECT name, spec FROM ingest_sources ORDER BY name").fetchall()
            return [(str(r[0]), bytes(r[1])) for r in rows]

        return await self._storage.query(q)

    async def put(self, name: str, spec: bytes) -> bool:
        await self._schema()
        now_us = int(utc_now().timestamp() * 1_000_000)

        def txn(conn: sqlite3.Connection) -> bool:
            exists = conn.execute("SELECT 1 FROM ingest_sources WHERE name = ?", (name,)).fetchone()
            conn.execute(
                "INSERT INTO ingest_sources (name, spec, updated_us) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, "
                "updated_us = excluded.updated_us",
                (name, spec, now_us),
            )
            return exists is None

        return await self._storage.transact(txn)

    async def delete(self, name: str) -> bool:
        await self._schema()

        def txn(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM ingest_sources WHERE name = ?", (name,))
            return cur.rowcount > 0

        return await self._storage.transact(txn)


def store_for(log: EventLog) -> SourceStore:
    """A store in the database the log's backend declares (SQLite, PostgreSQL), else in memory."""
    stores = PerDatabase[SourceStore](MemorySourceStore, SQLiteSourceStore, _pg_store)
    return stores.pick(log.capabilities.tables)


def _pg_store(tables: PostgresTables) -> SourceStore:
    from server.ingest.pg_store import PostgresSourceStore  # asyncpg only when used

    return PostgresSourceStore(tables)


class SourceRegistry:
    """Every source: config-file sources first, then the runtime store."""

    def __init__(self, config_sources: Sequence[Source], store: SourceStore) -> None:
        self._config = {s.name: compile_source(s, "config") for s in config_sources}
        self._store = store
        self._cache: dict[str, tuple[bytes, CompiledSource]] = {}

    def _compiled(self, name: str, spec: bytes) -> CompiledSource:
        cached = self._cache.get(name)
        if cached is not None and cached[0] == spec:
            return cached[1]
        # Decoding runs Source.__post_init__, which checks the definition.
        compiled = compile_source(_decoder.decode(spec), "api")
        self._cache[name] = (spec, compiled)
        return compiled

    async def get(self, name: str) -> CompiledSource | None:
        """The source named ``name``, or None."""
        if name in self._config:
            return self._config[name]
        spec = await self._store.get(name)
        if spec is None:
            self._cache.pop(name, None)
            return None
        return self._compiled(name, spec)

    async def all(self) -> list[CompiledSource]:
        """Every source, config-file ones first, each group by name."""
        stored = [self._compiled(name, spec) for name, spec in await self._store.all()]
        config = [self._config[n] for n in sorted(self._config)]
        return config + [s for s in stored if s.name not in self._config]

    async def put(self, source: Source) -> tuple[CompiledSource, bool]:
        """Create or replace an API source; returns it and whether it was new.

        Raises:
            ConfigOwned: A config-file source has that name.
        """
        if source.name in self._config:
            raise ConfigOwned(source.name)
        compiled = compile_source(source, "api")
        spec = _encoder.encode(source)
        created = await self._store.put(source.name, spec)
        self._cache[source.name] = (spec, compiled)
        return compiled, created

    async def delete(self, name: str) -> bool:
        """Delete an API source; False if there was none.

        Raises:
            ConfigOwned: A config-file source has that name.
        """
        if name in self._config:
            raise ConfigOwned(name)
        self._cache.pop(name, None)
        return await self._store.delete(name)
