"""What a backend offers beyond the ``Storage`` protocol, declared instead of guessed.

Every backend sets :attr:`Storage.capabilities` to one :class:`Capabilities`.
Code that needs something optional reads the declaration; nothing tests a
backend's type. ``tables`` is a tagged union (``tables.kind``): a component
that keeps its own tables in the log's database (the webhook ledger, ingest
sources) picks its SQLite or PostgreSQL implementation by the tag, and gets
the typed access that implementation needs (:class:`PerDatabase` writes that
choice once)::

    tables = log.capabilities.tables
    if tables is None:
        ...  # no database: keep the component's state in memory
    elif tables.kind == "sqlite":
        ...  # tables: SQLiteTables
    else:
        ...  # tables: PostgresTables
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

from eventlog.storage.leases import Leases

if TYPE_CHECKING:
    import asyncpg

    from eventlog.storage.base import PendingEvent

    AppendGenerated = Callable[
        [Mapping[str, Sequence[PendingEvent]], datetime], Awaitable[dict[str, int]]
    ]

__all__ = [
    "Capabilities",
    "HeadListener",
    "PerDatabase",
    "PostgresTables",
    "SQLiteTables",
    "Tables",
    "TopicListener",
]

T = TypeVar("T")

HeadListener = Callable[[str, int], None]
"""Called with ``(stream, next_offset)`` when a backend learns that another
process appended to a stream (PostgreSQL LISTEN/NOTIFY); ``next_offset`` is
negative when the stream was deleted."""

TopicListener = Callable[[str | None], None]
"""Called with the payload of each notification on a component's own channel
(PostgreSQL LISTEN/NOTIFY), or with None when notifications may have been lost
(the listening connection was re-made): look at the state again."""


class SQLiteTables(Protocol):
    """The log's SQLite database, for components that keep their own tables in it."""

    @property
    def kind(self) -> Literal["sqlite"]:
        """The tag of :data:`Tables`."""
        ...

    async def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in one write transaction on the writer connection.

        ``fn`` runs on the connection's thread, is serialised with every other
        write and must not commit; it may store a consumer offset in the same
        transaction (:func:`eventlog.storage.sqlite.set_offset`).
        """
        ...

    async def query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on a reader connection (read-only)."""
        ...

    async def ensure_schema(self, component: str, migrations: Sequence[Sequence[str]]) -> None:
        """Apply a component's forward migrations (its own tables in this database)."""


class PostgresTables(Leases, Protocol):
    """The log's PostgreSQL schema, for components that keep their own tables in it.

    Its leases (advisory locks) hold across every process on the database.
    """

    @property
    def kind(self) -> Literal["postgres"]:
        """The tag of :data:`Tables`."""
        ...

    @property
    def schema(self) -> str:
        """The PostgreSQL schema that holds the log's tables."""
        ...

    async def transact(
        self, fn: Callable[[asyncpg.Connection], Awaitable[T]], what: str = "transaction"
    ) -> T:
        """Run ``await fn(connection)`` in one transaction (``what`` names it in errors).

        ``fn`` must not commit; it may store a consumer offset in the same
        transaction (:func:`eventlog.storage.postgres.set_offset`).
        """
        ...

    async def query(
        self, fn: Callable[[asyncpg.Connection], Awaitable[T]], what: str = "query"
    ) -> T:
        """Run ``await fn(connection)`` on a pooled connection (reads)."""
        ...

    async def ensure_schema(self, component: str, migrations: Sequence[Sequence[str]]) -> None:
        """Apply a component's forward migrations; statements write ``{s}`` for the schema."""

    async def subscribe(self, channel: str, listener: TopicListener) -> Callable[[], None]:
        """LISTEN on ``channel`` (the component sends with ``pg_notify`` in its
        transactions); returns the call that stops ``listener``."""
        ...


Tables = SQLiteTables | PostgresTables
"""A database a component may keep its own tables in, tagged by ``kind``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What one backend declares about itself.

    Attributes:
        kind: The backend's name (``"memory"``, ``"sqlite"``, ``"postgres"``),
            for messages and metrics.
        durable: Events survive the process. A component next to a durable
            log must not keep state that the log's offsets depend on in memory.
        append_slots: How many append transactions the writer may hand over
            at once. More than one is only right for a backend that applies
            its writes one at a time in call order (SQLite's single writer
            connection), so that offsets keep the order appends were queued.
        listen: Registers a :data:`HeadListener` for other processes' appends;
            None for a backend only this process writes to.
        leases: Leases that hold across every process sharing the backend;
            None when leases exclusive within the process are enough.
        tables: The database components may keep their own tables in; None
            for a backend without one (memory).
        append_generated: The backend's own
            :func:`~eventlog.storage.derived.append_generated` (the fast path of
            appends whose ids the log generated); None: derived from ``append``.
        offset_at_time: The backend's own
            :func:`~eventlog.storage.derived.offset_at_time`; None: a binary
            search with ``read``.
        offset_for_bytes: The backend's own
            :func:`~eventlog.storage.derived.offset_for_bytes`; None: payload
            bytes counted back from the head with ``read``.
    """

    kind: str
    durable: bool
    append_slots: int = 1
    listen: Callable[[HeadListener], None] | None = None
    leases: Leases | None = None
    tables: Tables | None = None
    append_generated: AppendGenerated | None = None
    offset_at_time: Callable[[str, datetime], Awaitable[int]] | None = None
    offset_for_bytes: Callable[[str, int], Awaitable[int]] | None = None


@dataclass(frozen=True)  # no slots: PerDatabase[X](...) sets __orig_class__
class PerDatabase(Generic[T]):
    """A component's implementations, one per database a backend may declare
    (:attr:`Capabilities.tables`), so that the choice is written once::

        PerDatabase[SpecStore](MemorySpecs, SQLiteSpecs, PostgresSpecs).pick(tables)
    """

    memory: Callable[[], T]
    sqlite: Callable[[SQLiteTables], T]
    postgres: Callable[[PostgresTables], T]

    def pick(self, tables: Tables | None) -> T:
        """``memory()`` without a database, else ``sqlite(tables)`` or
        ``postgres(tables)`` by its ``kind``."""
        if tables is None:
            return self.memory()
        if tables.kind == "sqlite":
            return self.sqlite(tables)
        return self.postgres(tables)
