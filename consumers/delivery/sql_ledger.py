"""What the SQLite and PostgreSQL ledgers share: endpoints, reads, ``rewrite`` and ``write``.

Each operation is a :data:`Plan`, a generator that yields :class:`Stmt` (SQL
with ``?`` placeholders) and is sent each one's rows; a ledger runs a whole
plan on one connection, in one thread hop or one transaction
(:meth:`SQLLedger._run`). The words of SQL that differ are the
:class:`Dialect`; what PostgreSQL adds (notifications, the endpoint's claim
lock) are hooks, empty for SQLite. Of the hot path (:meth:`SQLLedger.write`)
each backend keeps its own inserts, outcome recording and concurrent claim.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from consumers.delivery.cluster import EndpointChanged, Pending
from consumers.delivery.ledger import Claimed, ClaimRequest, Decide, EndpointCounts, Enqueue, Pick
from consumers.delivery.machine_rules import select_claimable
from consumers.delivery.model import Attempt, Delivery, DeliveryStatus, Endpoint, Finished
from consumers.delivery.sql_schema import (
    ATTEMPT_COLUMNS,
    COLUMNS,
    IS_FINISHED,
    attempt_from_row,
    delivery_from_row,
)
from eventlog.sealed import SecretBox

__all__ = ["ACTIVE_WINDOW", "Call", "Dialect", "Plan", "SQLLedger", "Stmt", "chunks", "each"]

T = TypeVar("T")

#: Ids per ``IN (...)`` list, rows per multi-row statement (far below the parameter limits).
CHUNK = 500
#: Unfinished rows scanned per claim in the per-key mode.
ACTIVE_WINDOW = 2000

_encode = msgspec.json.encode
_decode_endpoint = msgspec.json.Decoder(Endpoint).decode


@dataclass(frozen=True, slots=True)
class Stmt:
    """SQL with ``?`` placeholders and its arguments (``many``: a list of argument
    rows for ``executemany``, no rows back)."""

    sql: str
    args: Sequence[Any] = ()
    many: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    """A backend function run (or awaited) on the plan's connection; its result is sent back."""

    fn: Callable[[Any], Any]


Plan = Generator[Stmt | Call, Any, T]
"""Yields statements, is sent each one's rows, returns the operation's result."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """The words of SQL the ledgers say differently."""

    tables: str = ""  # before a table name (PostgreSQL: ``<schema>.``)
    by_id: str = "id"  # order by id in code point order, as Python sorts
    for_update: str = ""  # locks the rows a ``rewrite`` reads
    unfinished: str = ""  # the index hint that finds an endpoint's unfinished rows


def _state(d: Delivery) -> tuple[str, int, int, int, float | None]:
    return d.status, d.attempts, d.budget_start, d.rate_limited, d.next_attempt_at


class SQLLedger(ABC):
    """A SQL ledger's operations, over its :meth:`_run` and :class:`Dialect`."""

    def __init__(self, dialect: Dialect, secrets: SecretBox | None) -> None:
        self._d = dialect
        #: Selects an endpoint's unfinished rows (the ``?``: its id).
        self._unfinished = (
            f"SELECT {COLUMNS} FROM {dialect.tables}webhook_deliveries {dialect.unfinished} "
            "WHERE endpoint_id = ? AND status IN ('pending', 'in_flight')"
        )
        #: Seals endpoint documents (their secrets, headers, URLs) at rest.
        self._secrets = secrets or SecretBox()

    @abstractmethod
    async def _run(self, plan: Plan[T], what: str | None) -> T:
        """Run ``plan`` on one connection: in one transaction, named ``what``,
        or read-only when ``what`` is None."""

    @abstractmethod
    def _enqueue(self, e: Enqueue, now: float) -> Plan[int]:
        """Insert ``e``'s rows (duplicates ignored), advance its consumer; how many rows."""

    @abstractmethod
    def _finish(self, finished: Sequence[Finished]) -> Plan[object]:
        """Record attempts and outcomes of rows still in flight, release the unattempted."""

    @abstractmethod
    def _claim_due(self, endpoint_id: str, now: float, limit: int) -> Plan[list[Delivery]]:
        """Claim up to ``limit`` due pending rows (concurrent mode), earliest due first."""

    @abstractmethod
    def _mark_claimed(self, seqs: list[int], now: float) -> Stmt:
        """Marks the rows ``seqs`` in flight."""

    def _notify(self, changes: Iterable[Pending | EndpointChanged]) -> list[Stmt]:
        """Statements telling other processes of ``changes`` (on commit)."""
        return []

    def _lock_endpoint(self, endpoint_id: str) -> list[Stmt]:
        """Statements taking the lock that the endpoint's ordered claims take."""
        return []

    async def _read(self, *stmts: Stmt) -> list[list[Any]]:
        """The rows of each statement, read on one connection."""
        return await self._run(each(stmts), None)

    def _open(self, doc: bytes) -> Endpoint:
        return _decode_endpoint(self._secrets.open(doc, "a webhook endpoint"))

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        doc = self._secrets.seal(_encode(endpoint))
        upsert = Stmt(
            f"INSERT INTO {self._d.tables}webhook_endpoints (id, doc) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            (endpoint.id, doc),
        )
        changed = self._notify([EndpointChanged(endpoint.id)])
        await self._run(each([upsert, *changed]), "put endpoint")

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        (rows,) = await self._read(
            Stmt(f"SELECT doc FROM {self._d.tables}webhook_endpoints WHERE id = ?", (endpoint_id,))
        )
        return self._open(rows[0][0]) if rows else None

    async def endpoints(self) -> list[Endpoint]:
        t, by_id = self._d.tables, self._d.by_id
        (rows,) = await self._read(Stmt(f"SELECT doc FROM {t}webhook_endpoints ORDER BY {by_id}"))
        return [self._open(r[0]) for r in rows]

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        t, args = self._d.tables, (endpoint_id,)
        deletes = [
            Stmt(
                f"DELETE FROM {t}webhook_attempts WHERE delivery_id IN "
                f"(SELECT id FROM {t}webhook_deliveries WHERE endpoint_id = ?)",
                args,
            ),
            Stmt(f"DELETE FROM {t}webhook_deliveries WHERE endpoint_id = ?", args),
            Stmt(f"DELETE FROM {t}webhook_endpoints WHERE id = ? RETURNING id", args),
        ]
        changed = self._notify([EndpointChanged(endpoint_id)])
        done = await self._run(each([*changed, *deletes]), "delete endpoint")
        return bool(done[-1])

    async def deliveries(
        self,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None = None,
        from_seq: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        sql = f"SELECT {COLUMNS} FROM {self._d.tables}webhook_deliveries "
        sql += "WHERE endpoint_id = ? AND seq >= ?"
        args: list[Any] = [endpoint_id, from_seq]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        (rows,) = await self._read(Stmt(sql + " ORDER BY seq LIMIT ?", [*args, limit]))
        return [delivery_from_row(r) for r in rows]

    async def delivery(
        self, endpoint_id: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None:
        t = self._d.tables
        found, attempts = await self._read(
            Stmt(
                f"SELECT {COLUMNS} FROM {t}webhook_deliveries WHERE id = ? AND endpoint_id = ?",
                (delivery_id, endpoint_id),
            ),
            Stmt(
                f"SELECT {ATTEMPT_COLUMNS} FROM {t}webhook_attempts "
                "WHERE delivery_id = ? ORDER BY number",
                (delivery_id,),
            ),
        )
        if not found:
            return None
        return delivery_from_row(found[0]), [attempt_from_row(delivery_id, a) for a in attempts]

    async def counts(self) -> dict[str, EndpointCounts]:
        (rows,) = await self._read(
            Stmt(
                "SELECT endpoint_id, count(*) FILTER (WHERE status = 'pending'), "
                "count(*) FILTER (WHERE status = 'in_flight'), "
                "min(created) FILTER (WHERE status = 'pending') "
                f"FROM {self._d.tables}webhook_deliveries "
                "WHERE status IN ('pending', 'in_flight') GROUP BY endpoint_id"
            )
        )
        return {r[0]: EndpointCounts(r[1], r[2], r[3]) for r in rows}

    async def write(
        self,
        enqueues: Sequence[Enqueue],
        finished: Sequence[Finished],
        claims: Sequence[ClaimRequest],
        now: float,
    ) -> tuple[list[int], list[Claimed]]:
        # Laid out here, on the event loop; the connection only runs them.
        inserts = [self._enqueue(e, now) for e in enqueues]
        finish = self._finish(finished) if finished else None
        return await self._run(self._write(inserts, finish, claims, now), "write deliveries")

    def _write(
        self,
        inserts: list[Plan[int]],
        finish: Plan[object] | None,
        claims: Sequence[ClaimRequest],
        now: float,
    ) -> Plan[tuple[list[int], list[Claimed]]]:
        inserted = []
        for insert in inserts:
            inserted.append((yield from insert))
        if finish is not None:
            yield from finish
        claimed: dict[int, Claimed] = {}
        # Endpoint locks taken in one order: no deadlock between two processes.
        for i in sorted(range(len(claims)), key=lambda i: claims[i].endpoint_id):
            claimed[i] = yield from self._claim(claims[i], now)
        return inserted, [claimed[i] for i in range(len(claims))]

    def _claim(self, claim: ClaimRequest, now: float) -> Plan[Claimed]:
        t, endpoint_id, ordering = self._d.tables, claim.endpoint_id, claim.ordering
        if ordering == "concurrent":
            due = yield from self._claim_due(endpoint_id, now, claim.limit)
            ((later,),) = yield Stmt(
                f"SELECT min(next_at) FROM {t}webhook_deliveries WHERE endpoint_id = ? "
                "AND status = 'pending' AND next_at > ?",
                (endpoint_id, now),
            )
            return Claimed(due, later)
        yield from each(self._lock_endpoint(endpoint_id))
        active = yield Stmt(
            f"{self._unfinished} ORDER BY seq LIMIT ?",
            (endpoint_id, 1 if ordering == "ordered" else ACTIVE_WINDOW),
        )
        claimed = select_claimable(map(delivery_from_row, active), ordering, now, claim.limit)
        if claimed.rows:
            yield self._mark_claimed([d.seq for d in claimed.rows], now)
        return Claimed(
            [msgspec.structs.replace(d, status="in_flight", updated=now) for d in claimed.rows],
            claimed.wake_at,
        )

    async def rewrite(self, endpoint_id: str, pick: Pick, decide: Decide[T]) -> T:
        """Picked ids are read row-locked (PostgreSQL: ``FOR UPDATE``, in id order),
        the active window also under the endpoint's claim lock."""
        return await self._run(self._rewrite(endpoint_id, pick, decide), "rewrite deliveries")

    def _rewrite(self, endpoint_id: str, pick: Pick, decide: Decide[T]) -> Plan[T]:
        d = self._d
        rows = f"SELECT {COLUMNS} FROM {d.tables}webhook_deliveries"
        unfinished = self._unfinished
        found: list[Any] = []
        if pick.ids is not None:
            for part in chunks(sorted(set(pick.ids))):
                found += yield Stmt(
                    f"{rows} WHERE endpoint_id = ? AND id IN ({', '.join('?' * len(part))}) "
                    f"ORDER BY {d.by_id}{d.for_update}",
                    [endpoint_id, *part],
                )
        else:
            yield from each(self._lock_endpoint(endpoint_id))
            if pick.due is None:
                found += yield Stmt(
                    f"{unfinished} ORDER BY seq LIMIT ?{d.for_update}", (endpoint_id, pick.active)
                )
            else:
                found += yield Stmt(
                    f"{unfinished} AND coalesce(next_at, 0) <= ? ORDER BY seq LIMIT ?"
                    + d.for_update,
                    (endpoint_id, pick.due, pick.active),
                )
                found += yield Stmt(
                    f"{rows} WHERE endpoint_id = ? AND status = 'pending' AND next_at > ? "
                    "ORDER BY next_at LIMIT 1",
                    (endpoint_id, pick.due),
                )
        decision = decide(sorted((delivery_from_row(r) for r in found), key=lambda r: r.seq))
        if decision.rows:
            yield Stmt(
                f"UPDATE {d.tables}webhook_deliveries SET status = ?, attempts = ?, "
                "budget_start = ?, rate_limited = ?, next_at = ?, updated = ?, "
                "last_error = ? WHERE seq = ?",
                [(*_state(r), r.updated, r.last_error, r.seq) for r in decision.rows],
                many=True,
            )
        if any(r.status == "pending" for r in decision.rows):
            yield from each(self._notify([Pending(endpoint_id)]))
        return decision.result

    async def prune(self, before: float, limit: int) -> int:
        return await self._run(self._prune(before, limit), "prune deliveries")

    def _prune(self, before: float, limit: int) -> Plan[int]:
        t = self._d.tables
        # Checked again: an operator's retry may revive a picked row before it is locked.
        old = f"{IS_FINISHED} AND updated < ?"
        gone = yield Stmt(
            f"DELETE FROM {t}webhook_deliveries WHERE seq IN (SELECT seq FROM "
            f"{t}webhook_deliveries WHERE {old} ORDER BY updated LIMIT ?) AND {old} RETURNING id",
            (before, limit, before),
        )
        ids = [r[0] for r in gone]
        for part in chunks(ids):
            yield Stmt(
                f"DELETE FROM {t}webhook_attempts WHERE delivery_id IN "
                f"({', '.join('?' * len(part))})",
                part,
            )
        return len(ids)


def chunks(items: Sequence[T]) -> list[Sequence[T]]:
    """``items`` in parts of :data:`CHUNK` (ids per ``IN`` list, rows per statement)."""
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def each(stmts: Iterable[Stmt]) -> Plan[list[list[Any]]]:
    """A plan of fixed statements; returns the rows of each."""
    out = []
    for stmt in stmts:
        out.append((yield stmt))
    return out
