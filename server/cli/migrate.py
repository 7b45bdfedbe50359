"""``eventlog migrate SRC DST``: copy a whole SQLite log into PostgreSQL, then verify it.

Everything is copied as it is: every stream with its events (offsets, ids,
append times, headers and payload bytes unchanged), heads, low watermarks and
retention policies, every consumer's committed offset, and the tables of
components that keep their own tables in the log (the webhook endpoints and
delivery ledger, scheduled events, checkpoints, ingest sources, shared
consumers) when the destination knows them. The copy is one PostgreSQL
transaction: a failed migration leaves the destination as it was. The source
is opened read-only and never changed.

At the end both sides are read back and compared: event counts, heads and a
checksum of every event per stream, consumer offsets, and row counts and
checksums of the component tables. Exit codes: 0 copied and verified,
1 failed (storage error or a verification mismatch), 2 refused (bad
arguments, a source that is not an eventlog database, a destination that is
not empty).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import sqlite3
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import msgspec

from eventlog.errors import EventLogError
from eventlog.storage.postgres import PostgresStorage
from eventlog.storage.sqlite import APPLICATION_ID, SCHEMA_VERSION
from server.cli.common import Meter

__all__ = ["Checksum", "MigrateError", "compare", "register"]

CHUNK = 5_000
_EVENT_COLUMNS = ("stream", "offset", "id", "type", "key", "time_us", "headers", "data")
_STREAM_COLUMNS = (
    "name",
    "next_offset",
    "first_offset",
    "bytes",
    "last_time_us",
    "max_age",
    "max_count",
    "max_bytes",
    "protect",
    "max_hold",
)
_OFFSET_COLUMNS = ("name", "stream", "offset", "updated_us")


class MigrateError(Exception):
    """The migration was refused before anything was written (exit code 2)."""


class Checksum:
    """A digest of a set of rows plus their count, the same on both sides.

    Order-independent (the sum of per-row digests), so each side may read in
    its own order; every row carries its primary key, so moving a value from
    one row to another still changes the digest.
    """

    def __init__(self) -> None:
        self._sum = 0
        self.count = 0

    def add(self, row: Sequence[Any]) -> None:
        """Feed one row; ``bytes``, ``str``, numbers and None hash by value."""
        digest = hashlib.blake2b(
            msgspec.msgpack.encode([_plain(v) for v in row]), digest_size=16
        ).digest()
        self._sum = (self._sum + int.from_bytes(digest, "big")) % (1 << 128)
        self.count += 1

    @property
    def hexdigest(self) -> str:
        return f"{self._sum:032x}"


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # SQLite REAL 60.0 and PostgreSQL double 60 agree
    return value


def compare(source: dict[str, tuple[int, str]], target: dict[str, tuple[int, str]]) -> list[str]:
    """The differences between two ``{name: (count, checksum)}`` maps (empty if equal)."""
    problems = []
    for name in sorted(source.keys() | target.keys()):
        a, b = source.get(name), target.get(name)
        if a is None:
            problems.append(f"{name}: only in the destination")
        elif b is None:
            problems.append(f"{name}: missing from the destination")
        elif a[0] != b[0]:
            problems.append(f"{name}: {a[0]} rows in the source, {b[0]} in the destination")
        elif a[1] != b[1]:
            problems.append(f"{name}: same count ({a[0]}) but the contents differ")
    return problems


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` to the ``eventlog`` parser."""
    p = subparsers.add_parser(
        "migrate",
        help="copy an SQLite log into PostgreSQL and verify the copy",
        description=(
            "Copy every stream, event, consumer offset and webhook table of the SQLite log "
            "SRC into the PostgreSQL database DST (which must hold no eventlog data yet), "
            "in one transaction, then verify counts and checksums on both sides."
        ),
    )
    p.add_argument("source", metavar="SRC", help="SQLite database file")
    p.add_argument("target", metavar="DST", help="postgresql:// URL")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        asyncio.run(migrate(Path(args.source), args.target))
    except MigrateError as exc:
        print(f"eventlog migrate: {exc}", file=sys.stderr)
        return 2
    except (EventLogError, VerificationFailed) as exc:
        print(f"eventlog migrate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("eventlog migrate: interrupted; the destination was not changed", file=sys.stderr)
        return 130
    return 0


class VerificationFailed(Exception):
    """The copy differs from the source (exit code 1)."""


def open_source(path: Path) -> sqlite3.Connection:
    """Open an eventlog SQLite file read-only, refusing anything else."""
    if not path.is_file():
        raise MigrateError(f"{str(path)!r} does not exist or is not a file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.Error as exc:
        raise MigrateError(f"{str(path)!r} is not an SQLite database: {exc}") from exc
    if app_id != APPLICATION_ID or version == 0:
        conn.close()
        raise MigrateError(f"{str(path)!r} is not an eventlog database")
    if version != SCHEMA_VERSION:
        conn.close()
        raise MigrateError(
            f"{str(path)!r} has schema version {version}, this eventlog writes "
            f"{SCHEMA_VERSION}: open it once with this version (or the matching one) first"
        )
    return conn


def _components(src: sqlite3.Connection) -> dict[str, list[str]]:
    """Component name -> its tables, for every component the source holds."""
    found = [r[0] for r in src.execute("SELECT component FROM schema_components ORDER BY 1")]
    components: dict[str, list[str]] = {}
    for component in found:
        spec = component_spec(component)
        if spec is None:
            raise MigrateError(
                f"the source holds {component!r} tables, which this eventlog cannot copy "
                "to PostgreSQL; nothing was copied"
            )
        components[component] = list(spec.tables)
    return components


class ComponentSpec(NamedTuple):
    """How to copy one component's tables: its PostgreSQL migrations, its tables
    (in copy order), statements to run once its rows are in (``{s}``: schema), and
    the columns copied of a table whose SQLite columns PostgreSQL does not all have."""

    migrations: Sequence[Sequence[str]]
    tables: Sequence[str]
    after_copy: Sequence[str]
    columns: Mapping[str, Sequence[str]] = {}


#: Components with a PostgreSQL store: name -> module with MIGRATIONS, TABLES, and
#: optionally AFTER_COPY and COPY_COLUMNS. `eventlog serve` makes ``ingest`` in every
#: database it opens, so a log it served is refused unless every one is here.
COMPONENT_MODULES = {
    "webhooks": "consumers.delivery.postgres_ledger",
    "schedule": "eventlog.storage.schedule_postgres",
    "checkpoints": "eventlog.storage.checkpoints",
    "ingest": "server.ingest.pg_store",
    "shared": "consumers.shared.spec",
}


def component_spec(component: str) -> ComponentSpec | None:
    """The copy recipe of a component that has a PostgreSQL store, else None."""
    name = COMPONENT_MODULES.get(component)
    if name is None:
        return None
    module: Any = importlib.import_module(name)
    return ComponentSpec(
        module.MIGRATIONS,
        module.TABLES,
        getattr(module, "AFTER_COPY", []),
        getattr(module, "COPY_COLUMNS", {}),
    )


def _columns(src: sqlite3.Connection, component: str, table: str) -> list[str]:
    """The columns of ``table`` copied and compared: the component's choice, else all."""
    spec = component_spec(component)
    chosen = spec.columns.get(table) if spec is not None else None
    if chosen is not None:
        return list(chosen)
    return [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]


async def migrate(source: Path, target: str, *, chunk: int = CHUNK) -> None:
    """Copy and verify (see the module docstring)."""
    if not target.startswith(("postgresql://", "postgres://")):
        raise MigrateError("DST must be a postgresql:// URL")
    src = open_source(source)
    try:
        components = _components(src)
        storage = PostgresStorage(target)
        await storage.open()
        try:
            await _check_empty(storage)
            for component in components:
                await _ensure_component(storage, component)
            source_sums = await _copy(src, storage, components, chunk)
            target_sums = await _checksums_of_target(storage, src, components, chunk)
        finally:
            await storage.close()
    finally:
        src.close()
    problems = compare(source_sums, target_sums)
    if problems:
        raise VerificationFailed("verification failed:\n  " + "\n  ".join(problems))
    events = sum(n for name, (n, _) in source_sums.items() if name.startswith("stream "))
    streams = sum(1 for name in source_sums if name.startswith("stream "))
    print(
        f"migrated {events} events in {streams} streams, "
        f"{source_sums['consumer offsets'][0]} consumer offsets"
        + "".join(
            f", {source_sums[f'table {t}'][0]} {t} rows" for ts in components.values() for t in ts
        )
        + "; counts and checksums verified",
        file=sys.stderr,
    )


async def _check_empty(storage: PostgresStorage) -> None:
    if await storage.streams() or await storage.consumers():
        raise MigrateError(
            f"the destination {storage.url} already holds eventlog data "
            f"(schema {storage.schema!r}); migrate into an empty database or another "
            "?schema=name"
        )


async def _ensure_component(storage: PostgresStorage, component: str) -> None:
    """Create a component's PostgreSQL tables with its own migrations."""
    spec = component_spec(component)
    assert spec is not None  # checked by _components
    await storage.ensure_schema(component, spec.migrations)


async def _copy(
    src: sqlite3.Connection,
    storage: PostgresStorage,
    components: dict[str, list[str]],
    chunk: int,
) -> dict[str, tuple[int, str]]:
    schema = storage.schema
    sums: dict[str, tuple[int, str]] = {}
    streams = src.execute(f"SELECT {', '.join(_STREAM_COLUMNS)} FROM streams ORDER BY name")
    stream_rows = streams.fetchall()
    total = src.execute("SELECT count(*) FROM events").fetchone()[0]

    async def txn(conn: asyncpg.Connection) -> None:
        with Meter("copying events", total) as meter:
            for row in stream_rows:
                name = row[0]
                checksum = Checksum()
                for rows in _pages(src, name, chunk):
                    for r in rows:
                        checksum.add(r)
                    await conn.copy_records_to_table(
                        "events", records=rows, columns=_EVENT_COLUMNS, schema_name=schema
                    )
                    meter.advance(len(rows))
                sums[f"stream {name}"] = (checksum.count, checksum.hexdigest)
        await conn.copy_records_to_table(
            "streams", records=stream_rows, columns=_STREAM_COLUMNS, schema_name=schema
        )
        sums["streams"] = _sum(stream_rows)
        offsets = src.execute(
            'SELECT name, stream, "offset", updated_us FROM consumer_offsets ORDER BY name, stream'
        ).fetchall()
        await conn.copy_records_to_table(
            "consumer_offsets", records=offsets, columns=_OFFSET_COLUMNS, schema_name=schema
        )
        sums["consumer offsets"] = _sum(offsets)
        for component, tables in components.items():
            for table in tables:
                columns = _columns(src, component, table)
                rows = src.execute(f"SELECT {_quoted(columns)} FROM {table}").fetchall()
                await conn.copy_records_to_table(
                    table, records=rows, columns=columns, schema_name=schema
                )
                sums[f"table {table}"] = _sum(rows)
            spec = component_spec(component)
            assert spec is not None
            for statement in spec.after_copy:
                await conn.execute(statement.replace("{s}", schema))

    await storage.transact(txn, "migrate")
    return sums


def _pages(src: sqlite3.Connection, stream: str, chunk: int) -> Iterable[list[tuple[Any, ...]]]:
    last = -1
    while True:
        rows = src.execute(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events "
            "WHERE stream = ? AND offset > ? ORDER BY offset LIMIT ?",
            (stream, last, chunk),
        ).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][1]


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _sum(rows: Iterable[Sequence[Any]]) -> tuple[int, str]:
    checksum = Checksum()
    for row in rows:
        checksum.add(row)
    return checksum.count, checksum.hexdigest


async def _checksums_of_target(
    storage: PostgresStorage,
    src: sqlite3.Connection,
    components: dict[str, list[str]],
    chunk: int,
) -> dict[str, tuple[int, str]]:
    schema = storage.schema
    sums: dict[str, tuple[int, str]] = {}
    cols = _quoted(_EVENT_COLUMNS)

    async def read(conn: asyncpg.Connection) -> None:
        total = await conn.fetchval(f"SELECT count(*) FROM {schema}.events")
        streams = await conn.fetch(f"SELECT {', '.join(_STREAM_COLUMNS)} FROM {schema}.streams")
        sums["streams"] = _sum(tuple(r) for r in streams)
        with Meter("verifying", total) as meter:
            for row in streams:
                name = row[0]
                checksum = Checksum()
                last = -1
                while True:
                    rows = await conn.fetch(
                        f"SELECT {cols} FROM {schema}.events WHERE stream = $1 "
                        'AND "offset" > $2 ORDER BY "offset" LIMIT $3',
                        name,
                        last,
                        chunk,
                    )
                    if not rows:
                        break
                    for r in rows:
                        checksum.add(tuple(r))
                    last = rows[-1][1]
                    meter.advance(len(rows))
                sums[f"stream {name}"] = (checksum.count, checksum.hexdigest)
        offsets = await conn.fetch(
            f'SELECT name, stream, "offset", updated_us FROM {schema}.consumer_offsets'
        )
        sums["consumer offsets"] = _sum(tuple(r) for r in offsets)
        for component, tables in components.items():
            for table in tables:
                columns = _columns(src, component, table)
                rows = await conn.fetch(f"SELECT {_quoted(columns)} FROM {schema}.{table}")
                sums[f"table {table}"] = _sum(tuple(r) for r in rows)

    await storage.query(read, "verify")
    return sums
