"""What a shared consumer is (its spec), and where specs are kept.

Specs live in the log's own database (table ``shared_consumers``, the
``shared`` component of its schema) so that they survive restarts and every
server process on a PostgreSQL database sees the same ones; a log in memory
keeps them in a dict. The events themselves are delivery-ledger rows
(:mod:`consumers.shared.consumer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Protocol

import msgspec

from consumers.filter import EventFilter
from consumers.parking import parked_stream
from eventlog import EventLog, validate_stream_name
from eventlog.errors import InvalidField, InvalidInput
from eventlog.model import StreamName
from eventlog.storage.capabilities import PerDatabase, PostgresTables, SQLiteTables

if TYPE_CHECKING:
    import asyncpg

__all__ = ["SharedSpec", "SpecStore", "spec_store_for"]

#: The shortest ``ack_wait`` (a worker gets a claim's answer back and acts on it; the
#: bound of a webhook's ``timeout`` too) and the longest (a day).
MIN_ACK_WAIT = 0.1
MAX_ACK_WAIT = 86_400.0

#: Seconds a claim lasts: 0.1 to a day.
AckWait = Annotated[float, msgspec.Meta(ge=MIN_ACK_WAIT, le=MAX_ACK_WAIT)]
#: Hand-outs of one event before it is parked: 1 to 1,000,000.
MaxDeliver = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]


class SharedSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A shared consumer's declaration (the body of ``PUT /api/consumers/{name}/shared``).

    Attributes:
        stream: The stream it consumes (may not change once declared).
        types: Event type patterns (``*`` matches anything); empty matches all.
        key: Optional pattern on the event key.
        ack_wait: Seconds a claim lasts before the event goes to another worker.
        max_deliver: Hand-outs of one event before it is parked in ``<name>.parked``.
        ordered_by_key: Hand out an event only when no earlier event of its key is
            unacked (order within a key, concurrency across keys).
        start: Where a new consumer starts: ``"beginning"``, ``"end"`` or an offset.
    """

    stream: StreamName
    types: list[Annotated[str, msgspec.Meta(min_length=1, max_length=256)]] = []
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None = None
    ack_wait: AckWait = 30.0
    max_deliver: MaxDeliver = 5
    ordered_by_key: bool = False
    start: Literal["beginning", "end"] | Annotated[int, msgspec.Meta(ge=0)] = "beginning"

    def check(self, name: str) -> SharedSpec:
        """Return the spec if it is valid for consumer ``name``.

        Raises:
            InvalidInput: A bad name, stream, filter or limit (``InvalidField``
                for a field, with its JSON path).
        """
        validate_stream_name(name)
        parked_stream(name)
        try:
            validate_stream_name(self.stream)
        except InvalidField:
            raise
        except Exception as exc:
            raise InvalidField(str(exc), path="$.stream") from None
        try:
            EventFilter(self.types, self.key)
        except InvalidInput as exc:
            raise InvalidField(str(exc), path="$.types" if self.types else "$.key") from None
        if not MIN_ACK_WAIT <= self.ack_wait <= MAX_ACK_WAIT:
            raise InvalidField(
                f"ack_wait must be {MIN_ACK_WAIT:g} to {MAX_ACK_WAIT:.0f} seconds",
                path="$.ack_wait",
            )
        if self.max_deliver < 1:
            raise InvalidField("max_deliver must be at least 1", path="$.max_deliver")
        if isinstance(self.start, int) and self.start < 0:
            raise InvalidField("start must be beginning, end or an offset >= 0", path="$.start")
        return self


_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(SharedSpec).decode


_SQLITE = [["CREATE TABLE shared_consumers (name TEXT PRIMARY KEY, doc BLOB NOT NULL)"]]
_POSTGRES = [["CREATE TABLE {s}.shared_consumers (name text PRIMARY KEY, doc bytea NOT NULL)"]]

#: For ``eventlog migrate`` (server/cli/migrate.py): PostgreSQL's migrations, the tables copied.
MIGRATIONS = _POSTGRES
TABLES = ["shared_consumers"]


class SpecStore(Protocol):
    """Where shared consumer specs are kept."""

    async def open(self) -> None:
        """Create the table if needed."""

    async def get(self, name: str) -> SharedSpec | None:
        """One spec, or None."""
        ...

    async def all(self) -> dict[str, SharedSpec]:
        """Every spec, by name."""
        ...

    async def put(self, name: str, spec: SharedSpec) -> None:
        """Create or replace a spec."""

    async def delete(self, name: str) -> bool:
        """Remove a spec; True if it existed."""
        ...


class MemorySpecs:
    """Specs in a dict (a log in memory)."""

    def __init__(self) -> None:
        self._specs: dict[str, SharedSpec] = {}

    async def open(self) -> None:
        return None

    async def get(self, name: str) -> SharedSpec | None:
        return self._specs.get(name)

    async def all(self) -> dict[str, SharedSpec]:
        return dict(sorted(self._specs.items()))

    async def put(self, name: str, spec: SharedSpec) -> None:
        self._specs[name] = spec

    async def delete(self, name: str) -> bool:
        return self._specs.pop(name, None) is not None


class SQLiteSpecs:
    """Specs in the log's SQLite database."""

    def __init__(self, db: SQLiteTables) -> None:
        self._db = db

    async def open(self) -> None:
        await self._db.ensure_schema("shared", _SQLITE)

    async def get(self, name: str) -> SharedSpec | None:
        row = await self._db.query(
            lambda c: c.execute(
                "SELECT doc FROM shared_consumers WHERE name = ?", (name,)
            ).fetchone()
        )
        return None if row is None else _decode(row[0])

    async def all(self) -> dict[str, SharedSpec]:
        rows = await self._db.query(
            lambda c: c.execute("SELECT name, doc FROM shared_consumers ORDER BY name").fetchall()
        )
        return {name: _decode(doc) for name, doc in rows}

    async def put(self, name: str, spec: SharedSpec) -> None:
        doc = _encode(spec)
        await self._db.transact(
            lambda c: c.execute(
                "INSERT INTO shared_consumers (name, doc) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
                (name, doc),
            )
        )

    async def delete(self, name: str) -> bool:
        return await self._db.transact(
            lambda c: c.execute("DELETE FROM shared_consumers WHERE name = ?", (name,)).rowcount > 0
        )


class PostgresSpecs:
    """Specs in the log's PostgreSQL schema (every server process sees the same)."""

    def __init__(self, db: PostgresTables) -> None:
        self._db = db
        self._t = f"{db.schema}.shared_consumers"

    async def open(self) -> None:
        await self._db.ensure_schema("shared", _POSTGRES)

    async def get(self, name: str) -> SharedSpec | None:
        doc = await self._db.query(
            lambda c: c.fetchval(f"SELECT doc FROM {self._t} WHERE name = $1", name)
        )
        return None if doc is None else _decode(doc)

    async def all(self) -> dict[str, SharedSpec]:
        rows = await self._db.query(
            lambda c: c.fetch(f'SELECT name, doc FROM {self._t} ORDER BY name COLLATE "C"')
        )
        return {r[0]: _decode(r[1]) for r in rows}

    async def put(self, name: str, spec: SharedSpec) -> None:
        doc = _encode(spec)

        async def txn(c: asyncpg.Connection) -> None:
            await c.execute(
                f"INSERT INTO {self._t} (name, doc) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
                name,
                doc,
            )

        await self._db.transact(txn, "put shared consumer")

    async def delete(self, name: str) -> bool:
        async def txn(c: asyncpg.Connection) -> bool:
            return (
                await c.fetchval(f"DELETE FROM {self._t} WHERE name = $1 RETURNING name", name)
                is not None
            )

        return await self._db.transact(txn, "delete shared consumer")


def spec_store_for(log: EventLog) -> SpecStore:
    """The spec store that goes with the log's backend (its database, else memory)."""
    stores = PerDatabase[SpecStore](MemorySpecs, SQLiteSpecs, PostgresSpecs)
    return stores.pick(log.capabilities.tables)
