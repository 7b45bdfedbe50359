"""The SQLite :class:`~consumers.delivery.ledger.LedgerStore`: tables in the log's own database.

Every write is one ``transact`` call: an enqueue stores the delivery rows and
the consumer's offset (:func:`eventlog.storage.sqlite.set_offset`) together, and
a :meth:`SQLiteLedger.write` costs one thread hop and one commit.
:class:`MemoryLedger`, the ledger of a log that is not durable, is the same
ledger on a private in-memory database.
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import msgspec

from consumers.delivery.ledger import SHARED_PREFIX, Claimed, ClaimRequest, Enqueue
from consumers.delivery.model import Attempt, Delivery, Finished
from consumers.delivery.sql_ledger import Call, Dialect, Plan, SQLLedger, Stmt, chunks, each
from consumers.delivery.sql_schema import DELIVERY_FIELDS, finished_index, tables
from eventlog import EventLog
from eventlog.sealed import SecretBox
from eventlog.storage.capabilities import SQLiteTables
from eventlog.storage.sqlite import set_offset
from eventlog.storage.sqlite_schema import migrate_component

__all__ = ["MIGRATIONS", "MemoryLedger", "SQLiteLedger"]

T = TypeVar("T")

MIGRATIONS: list[list[str]] = [
    tables(
        t="",
        seq="INTEGER",  # INTEGER PRIMARY KEY: the rowid
        bigint="INTEGER",
        real="REAL",
        blob="BLOB",
        rowid=" WITHOUT ROWID",
        claimed_by="",
    ),
    finished_index(""),
]

#: Without it the planner may walk every row the endpoint ever had for its unfinished ones.
_UNFINISHED = "INDEXED BY webhook_deliveries_active"


def _padded(sql: str, width: int, values: list[Any]) -> Stmt:
    """``sql`` over ``values`` (rows of ``width``) padded to a power of two rows with rows of
    id ``''`` (no-ops): a few texts, each prepared once (preparing costs more than running)."""
    rows = len(values) // width
    size = 1 << (rows - 1).bit_length()
    return Stmt(_rows_sql(sql, width, size), values + ["", *[0] * (width - 1)] * (size - rows))


@functools.lru_cache(maxsize=64)
def _rows_sql(sql: str, width: int, rows: int) -> str:
    return sql.format(", ".join(["(" + ", ".join("?" * width) + ")"] * rows))


def _rows(f: Finished, a: Attempt) -> tuple[tuple[object, ...], tuple[object, ...]]:
    error = 0 if a.error is None else a.error  # binding None costs ~250 ns: nullif() undoes 0
    next_at = "" if f.next_attempt_at is None else f.next_attempt_at  # and '' (no real is '')
    outcome = f.delivery_id, f.status, f.attempts, f.rate_limited, next_at, f.now, a.status, error
    return (a.delivery_id, a.started, a.duration, a.status, error, a.verdict, a.response), outcome


class SQLiteLedger(SQLLedger):
    """The ledger in the log's SQLite database."""

    shared = None  # one process: the SQLite log's server

    def __init__(self, storage: SQLiteTables, *, secrets: SecretBox | None = None) -> None:
        super().__init__(Dialect(unfinished=_UNFINISHED), secrets)
        self._storage = storage

    async def open(self) -> None:
        await self._storage.ensure_schema("webhooks", MIGRATIONS)

    async def _run(self, plan: Plan[T], what: str | None) -> T:
        def run(c: sqlite3.Connection) -> T:
            try:
                stmt = next(plan)
                while True:
                    if isinstance(stmt, Call):
                        stmt = plan.send(stmt.fn(c))
                    elif stmt.many:
                        c.executemany(stmt.sql, stmt.args)
                        stmt = plan.send([])
                    else:
                        stmt = plan.send(c.execute(stmt.sql, stmt.args).fetchall())
            except StopIteration as done:
                result: T = done.value
                return result

        return await (self._storage.query if what is None else self._storage.transact)(run)

    def _enqueue(self, e: Enqueue, now: float) -> Plan[int]:
        inserted: int = yield Call(_enqueue(e, now))
        return inserted

    def _finish(self, finished: Sequence[Finished]) -> Plan[object]:
        # Multi-row statements: one sqlite3_step (one GIL hand-off) a chunk, not a
        # row. Attempts first, only of rows still in flight, which the update then
        # takes out of flight.
        stmts = []
        for part in chunks([_rows(f, f.attempt) for f in finished if f.attempt is not None]):
            tried, outcomes = [v for r in part for v in r[0]], [v for r in part for v in r[1]]
            stmts += [_padded(_ATTEMPTS, 7, tried), _padded(_OUTCOMES, 8, outcomes)]
        unsent = [f for f in finished if f.attempt is None]
        if releases := [(f.next_attempt_at, f.now, f.delivery_id) for f in unsent]:
            stmts.append(Stmt(_RELEASE, releases, many=True))
        return each(stmts)

    def _claim_due(self, endpoint_id: str, now: float, limit: int) -> Plan[list[Delivery]]:
        # The rows come back as one JSON value, decoded straight into Deliveries,
        # and are marked by seq: two sqlite3_step calls (each lets go of the GIL),
        # not one per row, and no Python per row (docs/benchmarks.md).
        ((picked,),) = yield Stmt(_PICK, (repr(now), endpoint_id, now, limit))
        rows = _claimed.decode(picked)
        if rows:
            yield self._mark_claimed([d.seq for d in rows], now)
        return rows

    def _mark_claimed(self, seqs: list[int], now: float) -> Stmt:
        return Stmt(
            "UPDATE webhook_deliveries SET status = 'in_flight', updated = ? "
            "WHERE seq IN (SELECT value FROM json_each(?))",
            (now, msgspec.json.encode(seqs)),
        )

    async def recover(self, now: float) -> int:
        return await self._storage.transact(
            lambda c: (
                c.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', next_at = ?, updated = ? "
                    "WHERE status = 'in_flight' AND substr(endpoint_id, 1, ?) != ?",
                    (now, now, len(SHARED_PREFIX), SHARED_PREFIX),
                ).rowcount
            )
        )


#: The picked rows as claimed (in flight, updated now), earliest due first. REAL
#: columns travel as quote() text, which is exact (SQLite's JSON writes 15
#: significant digits), so are ``now`` and every float the decoder reads.
_PICK = (
    "SELECT json_group_array(json_object("
    + ", ".join(
        f"'{f}', "
        + {
            "next_attempt_at": "nullif(quote(next_at), 'NULL')",
            "created": "quote(created)",
            "status": "'in_flight'",
            "updated": "?1",
            "offset": '"offset"',
        }.get(f, f)
        for f in DELIVERY_FIELDS
    )
    + ")) FROM (SELECT * FROM webhook_deliveries WHERE endpoint_id = ?2 AND status = 'pending' "
    "AND next_at <= ?3 ORDER BY next_at, seq LIMIT ?4)"
)
_ATTEMPTS = (
    "INSERT INTO webhook_attempts (delivery_id, number, started, duration, status, error, "
    "verdict, response) SELECT v.column1, (SELECT coalesce(max(a.number), 0) + 1 "
    "FROM webhook_attempts AS a WHERE a.delivery_id = v.column1), v.column2, v.column3, "
    "v.column4, nullif(v.column5, 0), v.column6, v.column7 FROM (VALUES {}) AS v WHERE EXISTS "
    "(SELECT 1 FROM webhook_deliveries AS d WHERE d.id = v.column1 AND d.status = 'in_flight')"
)
_OUTCOMES = (
    "UPDATE webhook_deliveries SET status = v.column2, attempts = v.column3, "
    "rate_limited = v.column4, next_at = nullif(v.column5, ''), updated = v.column6, "
    "last_status = v.column7, last_error = nullif(v.column8, 0) FROM (VALUES {}) AS v "
    "WHERE webhook_deliveries.id = v.column1 AND webhook_deliveries.status = 'in_flight'"
)
_RELEASE = (
    "UPDATE webhook_deliveries SET status = 'pending', next_at = ?, updated = ? "
    "WHERE id = ? AND status = 'in_flight'"
)
_INSERT = (
    "INSERT OR IGNORE INTO webhook_deliveries (id, stream, offset, event_id, event_type, key, "
    "next_at, replay, endpoint_id, status, created, updated) VALUES {}"
)
#: Not strict: numbers may come as text (above), ``replay`` as 0 or 1.
_claimed = msgspec.json.Decoder(list[Delivery], strict=False)


def _enqueue(e: Enqueue, now: float) -> Callable[[sqlite3.Connection], int]:
    """The statements of an enqueue: its rows, then the consumer's offset."""
    consumer, fixed = e.consumer, (e.endpoint_id, "pending", now, now)
    parts = [
        [v for r in part for v in (*msgspec.structs.astuple(r), *fixed)] for part in chunks(e.rows)
    ]

    def run(c: sqlite3.Connection) -> int:
        before = c.total_changes
        for values in parts:  # not padded: a VALUES list keeps its order, and seq follows it
            c.execute(_rows_sql(_INSERT, 12, len(values) // 12), values)
        inserted = c.total_changes - before
        if consumer is not None:
            set_offset(c, consumer.name, consumer.stream, consumer.offset, int(now * 1e6))
        return inserted

    return run


class _Private:
    """An in-memory SQLite database as :class:`~eventlog.storage.capabilities.SQLiteTables`,
    used on the event loop: it never waits on a disk or another writer."""

    kind: Literal["sqlite"] = "sqlite"

    def __init__(self) -> None:
        self._c = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._c.execute("CREATE TABLE schema_components (component TEXT PRIMARY KEY, version INT)")
        weakref.finalize(self, self._c.close)  # no ResourceWarning (Python 3.13+) when dropped

    async def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._c.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self._c)
        except BaseException:
            self._c.execute("ROLLBACK")
            raise
        self._c.execute("COMMIT")
        return result

    async def query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return fn(self._c)

    async def ensure_schema(self, component: str, migrations: Sequence[Sequence[str]]) -> None:
        await self.transact(lambda c: migrate_component(c, component, migrations))


class MemoryLedger(SQLiteLedger):
    """The SQLite ledger on a database of its own in memory, for ``log`` (not durable).

    Consumer offsets go to the log right after the rows are stored; in one
    process that is as atomic as the in-memory log itself.
    """

    def __init__(self, log: EventLog) -> None:
        super().__init__(_Private())
        self._log = log

    async def write(
        self,
        enqueues: Sequence[Enqueue],
        finished: Sequence[Finished],
        claims: Sequence[ClaimRequest],
        now: float,
    ) -> tuple[list[int], list[Claimed]]:
        rows = [dataclasses.replace(e, consumer=None) for e in enqueues]
        out = await super().write(rows, finished, claims, now)
        for c in (e.consumer for e in enqueues if e.consumer is not None):
            await self._log.commit_offset(c.name, c.stream, c.offset)
        return out
