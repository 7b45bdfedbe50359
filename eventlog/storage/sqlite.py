"""The SQLite backend (the embedded default), on aiosqlite.

One writer connection applies every write; each write is one function run on
the connection's worker thread, so a whole group-committed transaction
(look-ups, ``executemany``, head update, ``COMMIT``) costs one thread hop, not
one per statement. Readers use their own connections (WAL lets them read while
the writer commits), so reads never queue behind a commit.

The database is marked with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``; files that are not databases, belong to something
else, or were written by a newer eventlog are refused before anything is
written to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import aiosqlite
import msgspec

from eventlog.errors import CorruptDatabase, LogClosed, SchemaTooNew, StorageError
from eventlog.model import ConsumerInfo, Event, Retention, StreamInfo
from eventlog.storage.base import AppendOutcome, AppendRequest, HeadListener
from eventlog.storage.planner import given_ids, plan_appends

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SQLiteStorage", "Synchronous"]

T = TypeVar("T")
Synchronous = Literal["full", "normal", "off"]

APPLICATION_ID = 0x45564C47  # "EVLG"

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
]
SCHEMA_VERSION = len(MIGRATIONS)

_ID_CHUNK = 500
_encode = msgspec.json.encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


def translate(exc: sqlite3.Error) -> StorageError:
    """Map a sqlite3 exception to the eventlog error tree."""
    message = str(exc)
    if "not a database" in message or "malformed" in message:
        return CorruptDatabase(f"not a usable eventlog database: {message}")
    return StorageError(f"sqlite: {message}")


def _us(time: datetime) -> int:
    return (
        int(time.timestamp() * 1_000_000)
        if time.tzinfo
        else int(time.replace(tzinfo=UTC).timestamp() * 1_000_000)
    )


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


class SQLiteStorage:
    """A log in one SQLite file.

    Args:
        path: The database file; created if missing.
        synchronous: ``"full"`` (default: an acknowledged event survives power
            loss), ``"normal"`` (survives a process crash; a power loss may
            drop the last commits) or ``"off"``.
        readers: Number of reader connections.
    """

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "full", readers: int = 2):
        if synchronous not in ("full", "normal", "off"):
            raise ValueError(f"synchronous must be full, normal or off, not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._reader_count = max(1, readers)
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []

    # -- connections ---------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        try:
            return await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {str(self.path)!r}: {exc}") from exc

    @staticmethod
    async def _run(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        # aiosqlite's worker runs queued callables one at a time; running a
        # whole transaction as one callable is one thread hop instead of one
        # per statement (see BASELINES: ~100 us a hop).
        def call() -> T:
            return fn(conn._conn)

        try:
            return cast(T, await conn._execute(call))  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        except ValueError as exc:
            if "closed" in str(exc):
                raise LogClosed("storage is closed") from exc
            raise

    async def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in one write transaction on the writer connection.

        For components that keep their own tables in the log's database (the
        webhook ledger) and must update them atomically with a consumer offset
        (see :func:`set_offset`). ``fn`` runs on a worker thread and must not
        commit; it is serialised with every other write.
        """
        if self._writer is None:
            raise LogClosed("storage is closed")

        def txn(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._run(self._writer, txn)

    async def query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on a reader connection (read-only)."""
        if not self._all_readers:
            raise LogClosed("storage is closed")
        conn = await self._readers.get()
        try:
            return await self._run(conn, fn)
        finally:
            self._readers.put_nowait(conn)

    async def ensure_schema(self, component: str, migrations: Sequence[Sequence[str]]) -> None:
        """Apply a component's forward migrations (its own tables in this database)."""

        def migrate(conn: sqlite3.Connection) -> None:
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

        await self.transact(migrate)

    async def open(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = await self._connect()
        try:
            await self._run(writer, self._prepare)
        except BaseException:
            await writer.close()
            raise
        self._writer = writer
        for _ in range(self._reader_count):
            reader = await self._connect()
            await self._run(reader, _prepare_reader)
            self._all_readers.append(reader)
            self._readers.put_nowait(reader)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Look before writing anything: a foreign or corrupt file stays untouched.
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
                f"{str(self.path)!r} is an SQLite database of something else "
                f"(tables: {', '.join(sorted(tables)[:5])}); refusing to use it"
            )
        if version > 0 and app_id != APPLICATION_ID:
            raise CorruptDatabase(f"{str(self.path)!r} is not an eventlog database")
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(version, SCHEMA_VERSION)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"cannot put {str(self.path)!r} in WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
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

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        readers, self._all_readers = self._all_readers, []
        self._readers = asyncio.Queue()
        for conn in [*readers, *([writer] if writer else [])]:
            with contextlib.suppress(sqlite3.Error):
                await conn.close()

    def _write(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise LogClosed("storage is closed")
        return self._writer

    # -- writes ----------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        now_us = _us(now)

        def txn(conn: sqlite3.Connection) -> list[AppendOutcome]:
            heads: dict[str, int] = {}
            times: dict[str, int] = {}
            for stream in {r.stream for r in requests}:
                row = conn.execute(
                    "SELECT next_offset, last_time_us FROM streams WHERE name = ?", (stream,)
                ).fetchone()
                if row is not None:
                    heads[stream] = row[0]
                times[stream] = max(now_us, row[1] or 0) if row else now_us
            existing: dict[tuple[str, str], int] = {}
            for stream, id_set in given_ids(requests).items():
                ids = list(id_set)
                for i in range(0, len(ids), _ID_CHUNK):
                    chunk = ids[i : i + _ID_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    for event_id, offset in conn.execute(
                        f"SELECT id, offset FROM events WHERE stream = ? AND id IN ({marks})",
                        (stream, *chunk),
                    ):
                        existing[(stream, event_id)] = offset
            plan = plan_appends(requests, heads, existing)
            if not plan.rows:
                conn.execute("ROLLBACK")
                return plan.outcomes
            conn.executemany(
                "INSERT INTO events (stream, offset, id, type, key, time_us, headers, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.stream,
                        r.offset,
                        (e := r.event).id,
                        e.type,
                        e.key,
                        times[r.stream],
                        _encode(e.headers) if e.headers else None,
                        e.data,
                    )
                    for r in plan.rows
                ],
            )
            conn.executemany(
                "INSERT INTO streams (name, next_offset, bytes, last_time_us) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET next_offset = excluded.next_offset, "
                "bytes = bytes + excluded.bytes, last_time_us = excluded.last_time_us",
                [(s, h, plan.added_bytes.get(s, 0), times[s]) for s, h in plan.heads.items()],
            )
            conn.execute("COMMIT")
            return plan.outcomes

        def run(conn: sqlite3.Connection) -> list[AppendOutcome]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                return txn(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return await self._run(self._write(), run)

    async def set_retention(self, stream: str, retention: Retention) -> None:
        await self.transact(
            lambda conn: conn.execute(
                "INSERT INTO streams (name, next_offset, max_age, max_count, max_bytes) "
                "VALUES (?, 0, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "max_age = excluded.max_age, max_count = excluded.max_count, "
                "max_bytes = excluded.max_bytes",
                (stream, retention.max_age, retention.max_count, retention.max_bytes),
            )
        )

    async def trim(self, stream: str, before: int) -> int:
        def txn(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT first_offset, next_offset FROM streams WHERE name = ?", (stream,)
            ).fetchone()
            if row is None or before <= row[0]:
                return 0
            upto = min(before, row[1])
            count, nbytes = conn.execute(
                "SELECT count(*), coalesce(sum(length(data)), 0) FROM events "
                "WHERE stream = ? AND offset < ?",
                (stream, upto),
            ).fetchone()
            conn.execute("DELETE FROM events WHERE stream = ? AND offset < ?", (stream, upto))
            conn.execute(
                "UPDATE streams SET first_offset = ?, bytes = bytes - ? WHERE name = ?",
                (upto, nbytes, stream),
            )
            return int(count)

        return await self.transact(txn)

    async def delete_stream(self, stream: str) -> bool:
        def txn(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM events WHERE stream = ?", (stream,))
            conn.execute("DELETE FROM consumer_offsets WHERE stream = ?", (stream,))
            return conn.execute("DELETE FROM streams WHERE name = ?", (stream,)).rowcount > 0

        return await self.transact(txn)

    async def commit_offset(self, consumer: str, stream: str, offset: int) -> None:
        now = _us(datetime.now(UTC))
        await self.transact(lambda conn: set_offset(conn, consumer, stream, offset, now))

    # -- reads -----------------------------------------------------------------

    async def read(self, stream: str, start: int, limit: int) -> list[Event]:
        if limit <= 0:
            return []
        return await self.query(lambda conn: read_events(conn, stream, start, limit))

    async def stream_info(self, stream: str) -> StreamInfo | None:
        def q(conn: sqlite3.Connection) -> StreamInfo | None:
            row = conn.execute(_STREAM_SELECT + " WHERE name = ?", (stream,)).fetchone()
            return None if row is None else _stream_info(row)

        return await self.query(q)

    async def streams(self) -> list[StreamInfo]:
        return await self.query(
            lambda conn: [_stream_info(r) for r in conn.execute(_STREAM_SELECT + " ORDER BY name")]
        )

    async def offset_at_time(self, stream: str, time: datetime) -> int:
        target = _us(time)

        def q(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT first_offset, next_offset FROM streams WHERE name = ?", (stream,)
            ).fetchone()
            if row is None:
                return 0
            lo, hi = row
            # Time is monotonic within a stream, so binary search by offset.
            while lo < hi:
                mid = (lo + hi) // 2
                t = conn.execute(
                    "SELECT time_us FROM events WHERE stream = ? AND offset = ?", (stream, mid)
                ).fetchone()
                if t is None or t[0] < target:
                    lo = mid + 1
                else:
                    hi = mid
            return int(lo)

        return await self.query(q)

    async def offset_for_bytes(self, stream: str, max_bytes: int) -> int:
        def q(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT first_offset FROM streams WHERE name = ?", (stream,)
            ).fetchone()
            if row is None:
                return 0
            total = 0
            cursor = conn.execute(
                "SELECT offset, length(data) FROM events WHERE stream = ? ORDER BY offset DESC",
                (stream,),
            )
            for offset, size in cursor:
                total += size
                if total > max_bytes:
                    return int(offset) + 1
            return int(row[0])

        return await self.query(q)

    async def get_offset(self, consumer: str, stream: str) -> int | None:
        def q(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT offset FROM consumer_offsets WHERE name = ? AND stream = ?",
                (consumer, stream),
            ).fetchone()
            return None if row is None else int(row[0])

        return await self.query(q)

    async def consumers(self) -> list[ConsumerInfo]:
        return await self.query(
            lambda conn: [
                ConsumerInfo(name=n, stream=s, offset=o, updated=_dt(u))
                for n, s, o, u in conn.execute(
                    "SELECT name, stream, offset, updated_us FROM consumer_offsets "
                    "ORDER BY name, stream"
                )
            ]
        )

    def listen(self, listener: HeadListener) -> None:
        """Not supported: other processes' appends are found by the log's
        periodic re-check while it waits."""


def _prepare_reader(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA query_only = ON")


def set_offset(
    conn: sqlite3.Connection, consumer: str, stream: str, offset: int, now_us: int
) -> None:
    """Store a consumer offset inside a transaction opened by :meth:`SQLiteStorage.transact`."""
    conn.execute(
        "INSERT INTO consumer_offsets (name, stream, offset, updated_us) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name, stream) DO UPDATE SET offset = excluded.offset, "
        "updated_us = excluded.updated_us",
        (consumer, stream, offset, now_us),
    )


def read_events(conn: sqlite3.Connection, stream: str, start: int, limit: int) -> list[Event]:
    """Read a page of events (on a worker thread)."""
    rows = conn.execute(
        "SELECT offset, id, type, key, time_us, headers, data FROM events "
        "WHERE stream = ? AND offset >= ? ORDER BY offset LIMIT ?",
        (stream, start, limit),
    ).fetchall()
    # One group commit shares one time: decode each distinct time once.
    times: dict[int, datetime] = {}
    for time_us in {row[4] for row in rows}:
        times[time_us] = _dt(time_us)
    raw = msgspec.Raw
    decode_headers = _decode_headers
    return [
        Event(
            stream=stream,
            offset=offset,
            id=event_id,
            type=type_,
            key=key,
            time=times[time_us],
            headers=decode_headers(headers) if headers else {},
            data=raw(data),
        )
        for offset, event_id, type_, key, time_us, headers, data in rows
    ]


_STREAM_SELECT = (
    "SELECT name, next_offset, first_offset, bytes, last_time_us, max_age, max_count, max_bytes "
    "FROM streams"
)


def _stream_info(row: Any) -> StreamInfo:
    name, next_offset, first_offset, nbytes, last_us, max_age, max_count, max_bytes = row
    return StreamInfo(
        name=name,
        next_offset=next_offset,
        first_offset=first_offset,
        count=next_offset - first_offset,
        bytes=nbytes,
        last_time=None if last_us is None else _dt(last_us),
        retention=Retention(max_age=max_age, max_count=max_count, max_bytes=max_bytes),
    )
