"""The SQLite backend (the embedded default).

One writer connection applies every write; each write is one function run on
the connection's own thread (:mod:`eventlog.storage.sqlite_thread`; the
functions are in :mod:`eventlog.storage.sqlite_ops`), so a whole
group-committed transaction (look-ups, ``executemany``, head update,
``COMMIT``) costs one thread hop, not one per statement. Readers use their
own connections (WAL lets them read while the writer commits), so reads never
queue behind a commit. The file's schema and the checks made before anything
is written to it are in :mod:`eventlog.storage.sqlite_schema`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from eventlog.errors import LogClosed
from eventlog.model import ConsumerInfo, Event, Retention, StreamInfo
from eventlog.storage import sqlite_ops as ops
from eventlog.storage.base import AppendOutcome, AppendRequest, PendingEvent
from eventlog.storage.capabilities import Capabilities
from eventlog.storage.sqlite_ops import read_events, set_offset, translate
from eventlog.storage.sqlite_packed import install_alone, json_available, pack
from eventlog.storage.sqlite_schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    migrate_component,
    prepare_reader,
    prepare_writer,
)
from eventlog.storage.sqlite_thread import SQLiteThread

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLiteStorage",
    "Synchronous",
    "read_events",
    "set_offset",
    "translate",
]

T = TypeVar("T")
Synchronous = Literal["full", "normal", "off"]

#: Reads of at most this many events run on the event loop's own connection.
#: Building the events holds the GIL either way, so a worker thread bought no
#: parallelism, only two thread wake-ups per read, and on a busy machine a
#: wake-up waits for a core: random reads of 100 events had a p99 of 2-12 ms
#: through a reader thread against ~0.3 ms on the loop's thread (same process,
#: same offsets). Larger reads, and any read that would wait on a lock, go to
#: a reader thread.
INLINE_READ_ROWS = 1000


class SQLiteStorage:
    """A log in one SQLite file.

    Args:
        path: The database file; created if missing.
        synchronous: ``"full"`` (default: an acknowledged event survives power
            loss), ``"normal"`` (survives a process crash; a power loss may
            drop the last commits) or ``"off"``.
        readers: Number of reader connections.

    Besides the ``Storage`` methods it is the database of the webhook ledger
    and ingest sources (:class:`~eventlog.storage.capabilities.SQLiteTables`:
    :meth:`transact`, :meth:`query`, :meth:`ensure_schema`).
    """

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "full", readers: int = 2):
        if synchronous not in ("full", "normal", "off"):
            raise ValueError(f"synchronous must be full, normal or off, not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._reader_count = max(1, readers)
        self._writer: SQLiteThread | None = None
        self._readers: asyncio.Queue[SQLiteThread] = asyncio.Queue()
        self._all_readers: list[SQLiteThread] = []
        self._packed = False
        # Each stream's head as the writer's commits left it (writer thread only).
        self._known_heads: dict[str, tuple[int, int]] = {}
        self._inline: sqlite3.Connection | None = None
        # Two append transactions at once: the writer connection runs them one
        # after another in the order they were handed over.
        self.capabilities = Capabilities(
            kind="sqlite",
            durable=True,
            append_slots=2,
            tables=self,
            append_generated=self.append_generated,
            offset_at_time=self.offset_at_time,
            offset_for_bytes=self.offset_for_bytes,
        )

    @property
    def kind(self) -> Literal["sqlite"]:
        """The tag of :data:`~eventlog.storage.capabilities.Tables`."""
        return "sqlite"

    # -- connections ---------------------------------------------------------

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

        return await self._writer.run(txn)

    async def query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on a reader connection (read-only)."""
        if not self._all_readers:
            raise LogClosed("storage is closed")
        conn = await self._readers.get()
        try:
            return await conn.run(fn)
        finally:
            self._readers.put_nowait(conn)

    async def ensure_schema(self, component: str, migrations: Sequence[Sequence[str]]) -> None:
        """Apply a component's forward migrations (its own tables in this database)."""

        await self.transact(lambda conn: migrate_component(conn, component, migrations))

    async def open(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = await SQLiteThread.connect(self.path)
        try:
            await writer.run(lambda c: prepare_writer(c, self.path, self.synchronous))
        except BaseException:
            await writer.close()
            raise
        self._writer = writer
        self._packed = await writer.run(json_available)
        if self._packed:
            await writer.run(install_alone)
        for _ in range(self._reader_count):
            reader = await SQLiteThread.connect(self.path)
            await reader.run(prepare_reader)
            self._all_readers.append(reader)
            self._readers.put_nowait(reader)
        self._inline = inline = sqlite3.connect(self.path, isolation_level=None)
        prepare_reader(inline)
        inline.execute("PRAGMA busy_timeout = 0")  # never wait on the loop: a reader thread will

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        readers, self._all_readers = self._all_readers, []
        inline, self._inline = self._inline, None
        if inline is not None:
            with contextlib.suppress(sqlite3.Error):
                inline.close()
        self._readers = asyncio.Queue()
        for conn in [*readers, *([writer] if writer else [])]:
            with contextlib.suppress(sqlite3.Error):
                await conn.close()

    def _write(self) -> SQLiteThread:
        if self._writer is None:
            raise LogClosed("storage is closed")
        return self._writer

    # -- writes ----------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        now_us = ops.to_us(now)
        known = self._known_heads

        def append(conn: sqlite3.Connection) -> list[AppendOutcome]:
            for request in requests:  # heads this transaction moves without remembering
                known.pop(request.stream, None)
            return ops.append(conn, requests, now_us)

        return await self._write().run(append)

    async def append_generated(
        self, streams: Mapping[str, Sequence[PendingEvent]], now: datetime
    ) -> dict[str, int]:
        now_us = ops.to_us(now)
        # Packed here, on the event loop, so that the writer thread holds the GIL
        # for five bound values instead of eight per event.
        packed = {s: pack(events) for s, events in streams.items()} if self._packed else None
        return await self._write().run(
            lambda conn: ops.append_generated(conn, streams, now_us, packed, self._known_heads)
        )

    async def set_retention(self, stream: str, retention: Retention) -> None:
        await self.transact(lambda conn: ops.set_retention(conn, stream, retention))

    async def trim(self, stream: str, before: int) -> int:
        return await self.transact(lambda conn: ops.trim(conn, stream, before))

    async def delete_stream(self, stream: str) -> bool:
        return await self.transact(lambda conn: ops.delete_stream(conn, stream))

    async def commit_offset(self, consumer: str, stream: str, offset: int) -> None:
        now = ops.to_us(datetime.now(UTC))
        await self.transact(lambda conn: set_offset(conn, consumer, stream, offset, now))

    # -- reads -----------------------------------------------------------------

    async def read(self, stream: str, start: int, limit: int) -> list[Event]:
        if limit <= 0:
            return []
        if limit <= INLINE_READ_ROWS and self._inline is not None:
            await asyncio.sleep(0)  # a loop of reads still lets every other task run
            inline = self._inline
            if inline is not None:
                try:
                    return read_events(inline, stream, start, limit)
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise translate(exc) from exc
                except sqlite3.ProgrammingError:
                    pass  # used from another thread than the one that opened it
                except sqlite3.Error as exc:
                    raise translate(exc) from exc
        return await self.query(lambda conn: read_events(conn, stream, start, limit))

    async def stream_info(self, stream: str) -> StreamInfo | None:
        infos = await self.query(lambda conn: ops.stream_infos(conn, stream))
        return infos[0] if infos else None

    async def streams(self) -> list[StreamInfo]:
        return await self.query(ops.stream_infos)

    async def offset_at_time(self, stream: str, time: datetime) -> int:
        target = ops.to_us(time)
        return await self.query(lambda conn: ops.offset_at_time(conn, stream, target))

    async def offset_for_bytes(self, stream: str, max_bytes: int) -> int:
        return await self.query(lambda conn: ops.offset_for_bytes(conn, stream, max_bytes))

    async def get_offset(self, consumer: str, stream: str) -> int | None:
        return await self.query(lambda conn: ops.get_offset(conn, consumer, stream))

    async def consumers(self) -> list[ConsumerInfo]:
        return await self.query(ops.consumers)
