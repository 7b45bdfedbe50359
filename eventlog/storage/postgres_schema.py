"""The PostgreSQL backend's schema, its migrations, and its error translation.

Every table lives in one PostgreSQL schema (``eventlog`` unless the URL says
``?schema=name``), so the log can share a database with an application. The
schema is versioned in its ``schema_version`` table, one row per component:
``eventlog`` for the core tables, and one per component that keeps its own
tables next to them (the webhook ledger) via
:meth:`~eventlog.storage.postgres.PostgresStorage.ensure_schema`. Migrations
run under a transaction-scoped advisory lock, so several processes starting
at once migrate exactly once.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from eventlog.errors import CorruptDatabase, LogClosed, SchemaTooNew, StorageError
from eventlog.storage.rows import to_us

__all__ = [
    "CORE",
    "DEFAULT_SCHEMA",
    "DRIVER_ERRORS",
    "LOST_ERRORS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "advisory_key",
    "apply_migrations",
    "connection_lost",
    "errors_translated",
    "redact",
    "set_offset",
    "split_url",
    "translate",
]

DEFAULT_SCHEMA = "eventlog"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Forward migrations of the core tables; entry i takes version i to i + 1.
#: ``{s}`` is the (validated) schema name.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE {s}.streams (
            name text PRIMARY KEY,
            next_offset bigint NOT NULL,
            first_offset bigint NOT NULL DEFAULT 0,
            bytes bigint NOT NULL DEFAULT 0,
            last_time_us bigint,
            max_age double precision,
            max_count bigint,
            max_bytes bigint
        )""",
        """CREATE TABLE {s}.events (
            stream text NOT NULL,
            "offset" bigint NOT NULL,
            id text NOT NULL,
            type text NOT NULL,
            key text,
            time_us bigint NOT NULL,
            headers bytea,
            data bytea NOT NULL,
            PRIMARY KEY (stream, "offset")
        )""",
        'CREATE UNIQUE INDEX events_by_id ON {s}.events (stream, id) INCLUDE ("offset")',
        """CREATE TABLE {s}.consumer_offsets (
            name text NOT NULL,
            stream text NOT NULL,
            "offset" bigint NOT NULL,
            updated_us bigint NOT NULL,
            PRIMARY KEY (name, stream)
        )""",
    ],
    [
        # Retention holds, per stream (eventlog.holds): 1 = named consumers hold it.
        "ALTER TABLE {s}.streams ADD COLUMN protect integer NOT NULL DEFAULT 1",
        "ALTER TABLE {s}.streams ADD COLUMN max_hold double precision",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
CORE = "eventlog"


def split_url(url: str) -> tuple[str, str]:
    """Take eventlog's own ``schema`` parameter out of a ``postgresql://`` URL.

    Returns ``(url for asyncpg, schema name)``; every other query parameter
    is left for asyncpg (``sslmode``, ``application_name``, ...).

    Raises:
        StorageError: The schema name is not a lower-case SQL identifier.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    rest: list[tuple[str, str]] = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            rest.append((name, value))
    if _SCHEMA_NAME.fullmatch(schema) is None:
        raise StorageError(
            f"invalid schema {schema!r} in the database URL: use 1-63 characters of "
            "[a-z0-9_], not starting with a digit"
        )
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    try:
        password, port = parts.password, parts.port
    except ValueError:  # unparsable netloc (e.g. a bad port): show none of it
        return urlunsplit(parts._replace(netloc="***"))
    if password is None:
        return url
    host = parts.hostname or ""
    if port is not None:
        host = f"{host}:{port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def advisory_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for a name (stable across processes)."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def translate(exc: BaseException, what: str) -> StorageError | LogClosed:
    """Map an asyncpg (or socket) exception to the eventlog error tree."""
    if isinstance(exc, asyncpg.InterfaceError) and "clos" in str(exc):
        if "pool is clos" in str(exc):
            return LogClosed("storage is closed")
        return StorageError(f"postgresql: {what}: connection closed: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or "?"
        return StorageError(f"postgresql: {what}: {exc} (SQLSTATE {state})")
    if isinstance(exc, TimeoutError):
        return StorageError(f"postgresql: {what}: timed out")
    return StorageError(f"postgresql: {what}: {type(exc).__name__}: {exc}")


#: What a driver call may raise that must be translated (never escape).
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


#: Driver errors that mean "the connection is gone", not "the statement failed".
LOST_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
)


def connection_lost(exc: BaseException | None) -> bool:
    """True if ``exc`` says the connection died (so an idempotent call may be retried)."""
    if isinstance(exc, LOST_ERRORS):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


@contextlib.contextmanager
def errors_translated(what: str) -> Iterator[None]:
    """Translate driver exceptions raised inside the block (usable around awaits)."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise translate(exc, what) from exc


async def apply_migrations(
    conn: asyncpg.Connection,
    schema: str,
    component: str,
    migrations: Sequence[Sequence[str]],
) -> None:
    """Bring ``component``'s tables in ``schema`` to the latest version.

    Creates the schema and its ``schema_version`` table on first use. Refuses a
    schema that holds tables but no ``schema_version`` (someone else's), and a
    version newer than ``migrations`` knows.

    Raises:
        CorruptDatabase: The schema belongs to something else.
        SchemaTooNew: A newer eventlog wrote it.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(schema, "migrate"))
        has_versions = await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_version"
        )
        if not has_versions:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema
            )
            if tables:
                names = ", ".join(r["tablename"] for r in tables[:5])
                raise CorruptDatabase(
                    f"schema {schema!r} holds tables of something else ({names}); "
                    "refusing to use it (pass ?schema=<name> in the URL to pick another)"
                )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await conn.execute(
                f"CREATE TABLE {schema}.schema_version "
                "(component text PRIMARY KEY, version integer NOT NULL)"
            )
        version = await conn.fetchval(
            f"SELECT version FROM {schema}.schema_version WHERE component = $1", component
        )
        version = version or 0
        if version > len(migrations):
            raise SchemaTooNew(version, len(migrations))
        for statements in migrations[version:]:
            for statement in statements:
                await conn.execute(statement.replace("{s}", schema))
        if version != len(migrations):
            await conn.execute(
                f"INSERT INTO {schema}.schema_version (component, version) VALUES ($1, $2) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                component,
                len(migrations),
            )


async def set_offset(
    conn: asyncpg.Connection, schema: str, consumer: str, stream: str, offset: int
) -> None:
    """Store a consumer offset (inside a transaction from :meth:`PostgresStorage.transact
    <eventlog.storage.postgres.PostgresStorage.transact>`)."""
    await conn.execute(
        f'INSERT INTO {schema}.consumer_offsets (name, stream, "offset", updated_us) '
        "VALUES ($1, $2, $3, $4) ON CONFLICT (name, stream) DO UPDATE SET "
        '"offset" = excluded."offset", updated_us = excluded.updated_us',
        consumer,
        stream,
        offset,
        to_us(datetime.now(UTC)),
    )
