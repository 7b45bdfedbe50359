"""Claims on the shared PostgreSQL ledger: who holds an in-flight row; a dead holder's taken back.

Every process's :class:`~consumers.delivery.postgres_ledger.PostgresLedger`
has an owner token, ``<host>:<pid>:<random>``, and holds the lease
``ledger-owner:<token>`` (a session advisory lock) for as long as it lives.
A claim marks its rows ``in_flight`` with ``claimed_by = <token>``; recording
an outcome or releasing a claim touches only rows that still carry the token.

* ``concurrent`` endpoints: a claim takes due rows with ``FOR UPDATE SKIP
  LOCKED`` and marks them in the same statement, so processes claiming at once
  get disjoint rows and never wait on each other.
* ``ordered`` and ``per-key`` endpoints: a claim first takes a transaction
  advisory lock on the endpoint, so claims are serialised and an in-flight
  head blocks every process, as the ordering rule requires.

**The orphan sweep** (:func:`sweep`): a process that dies (SIGKILL, crash,
lost host) leaves its claimed rows ``in_flight``. PostgreSQL drops a dead
session's advisory locks as soon as its connection closes, so a row whose
owner lease *can be taken* belongs to a process that is gone. Every process
sweeps once per lease period: it takes each foreign owner's lease it can get,
returns that owner's rows to ``pending`` (due now) in one transaction that also
notifies every process (``pending:<endpoint>``, :mod:`consumers.delivery.changes`),
and releases the lease again. A killed process's rows are therefore claimable
again within one period plus one sweep; the engine runs it every ``lease_retry``
seconds, so the bound is two lease periods (docs/webhooks.md).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec

from consumers.delivery.changes import Pending, encode_change
from consumers.delivery.ledger import Claimed, select_claimable
from consumers.delivery.model import Finished, Ordering
from consumers.delivery.sql_ledger import COLUMNS, delivery_from_row
from eventlog.storage.capabilities import PostgresTables
from eventlog.storage.leases import Lease
from eventlog.storage.postgres_schema import advisory_key

__all__ = [
    "ACTIVE_WINDOW",
    "NOTIFY",
    "claim_concurrent",
    "claim_serial",
    "finish",
    "new_token",
    "notify_pending",
    "owner_lease",
    "sweep",
]

#: Unfinished rows scanned per claim in the per-key mode.
ACTIVE_WINDOW = 2000

#: Notifies ``$1`` of each payload in the list ``$2``.
NOTIFY = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"

_PREFIXED = ", ".join(f"d.{c.strip()}" for c in COLUMNS.split(","))


def new_token() -> str:
    """A new owner token: ``<host>:<pid>:<random>`` (says who holds a row)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_lease(token: str) -> str:
    """The lease a live owner holds."""
    return f"ledger-owner:{token}"


async def notify_pending(c: asyncpg.Connection, channel: str, endpoint_ids: Sequence[str]) -> None:
    """Tell every process (on commit) that these endpoints have claimable rows."""
    if endpoint_ids:
        await c.execute(
            NOTIFY,
            channel,
            sorted({encode_change(Pending(e)) for e in endpoint_ids}),
        )


async def claim_concurrent(
    c: asyncpg.Connection, s: str, endpoint_id: str, now: float, limit: int, token: str
) -> Claimed:
    """Claim up to ``limit`` due rows, earliest due first, skipping rows others are claiming."""
    claimed = await c.fetch(
        f"WITH due AS (SELECT seq FROM {s}.webhook_deliveries WHERE endpoint_id = $1 "
        "AND status = 'pending' AND next_at <= $2 ORDER BY next_at, seq LIMIT $3 "
        f"FOR UPDATE SKIP LOCKED) UPDATE {s}.webhook_deliveries d SET "
        "status = 'in_flight', updated = $2, claimed_by = $4 FROM due "
        f"WHERE d.seq = due.seq RETURNING {_PREFIXED}",
        endpoint_id,
        now,
        limit,
        token,
    )
    later = await c.fetchval(
        f"SELECT min(next_at) FROM {s}.webhook_deliveries WHERE endpoint_id = $1 "
        "AND status = 'pending' AND next_at > $2",
        endpoint_id,
        now,
    )
    rows = sorted((delivery_from_row(r) for r in claimed), key=lambda d: (d.next_attempt_at, d.seq))
    return Claimed(rows, later)


async def claim_serial(
    c: asyncpg.Connection,
    s: str,
    endpoint_id: str,
    ordering: Ordering,
    now: float,
    limit: int,
    token: str,
) -> Claimed:
    """Claim by the ordering rule, one claim at a time per endpoint across every process."""
    await c.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(s, "claim", endpoint_id))
    window = 1 if ordering == "ordered" else ACTIVE_WINDOW
    active = [
        delivery_from_row(r)
        for r in await c.fetch(
            f"SELECT {COLUMNS} FROM {s}.webhook_deliveries WHERE endpoint_id = $1 "
            "AND status IN ('pending', 'in_flight') ORDER BY seq LIMIT $2",
            endpoint_id,
            window,
        )
    ]
    claimed = select_claimable(active, ordering, now, limit)
    if claimed.rows:
        await c.execute(
            f"UPDATE {s}.webhook_deliveries SET status = 'in_flight', updated = $1, "
            "claimed_by = $2 WHERE seq = ANY($3::bigint[])",
            now,
            token,
            [d.seq for d in claimed.rows],
        )
    return Claimed(
        [msgspec.structs.replace(d, status="in_flight", updated=now) for d in claimed.rows],
        claimed.wake_at,
    )


async def finish(
    c: asyncpg.Connection, s: str, channel: str, results: Sequence[Finished], token: str
) -> None:
    """Record outcomes of rows this owner claimed, in three statements whatever their
    number (others' rows are left alone: a sweep may have taken them back meanwhile);
    notify the endpoints whose rows went back to ``pending``."""
    latest = {f.delivery_id: f for f in results}  # one outcome per row: the last
    released = [f for f in latest.values() if f.attempt is None]
    attempted = [f for f in latest.values() if f.attempt is not None]
    again: list[str] = []
    if released:
        rows = await c.fetch(
            f"UPDATE {s}.webhook_deliveries d SET status = 'pending', next_at = v.next_at, "
            "updated = v.now, claimed_by = NULL FROM unnest($1::text[], $2::float8[], "
            "$3::float8[]) AS v(id, next_at, now) WHERE d.id = v.id AND d.status = 'in_flight' "
            "AND d.claimed_by = $4 RETURNING d.endpoint_id",
            [f.delivery_id for f in released],
            [f.next_attempt_at for f in released],
            [f.now for f in released],
            token,
        )
        again += [r[0] for r in rows]
    if attempted:
        attempts = [f.attempt for f in attempted if f.attempt is not None]
        rows = await c.fetch(
            f"UPDATE {s}.webhook_deliveries d SET status = v.status, attempts = v.attempts, "
            "rate_limited = v.rate_limited, next_at = v.next_at, updated = v.now, "
            "last_status = v.last_status, last_error = v.last_error, claimed_by = NULL "
            "FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::float8[], "
            "$6::float8[], $7::int[], $8::text[]) AS v(id, status, attempts, rate_limited, "
            "next_at, now, last_status, last_error) WHERE d.id = v.id "
            "AND d.status = 'in_flight' AND d.claimed_by = $9 "
            "RETURNING d.id, d.endpoint_id, d.status",
            [f.delivery_id for f in attempted],
            [f.status for f in attempted],
            [f.attempts for f in attempted],
            [f.rate_limited for f in attempted],
            [f.next_attempt_at for f in attempted],
            [f.now for f in attempted],
            [a.status for a in attempts],
            [a.error for a in attempts],
            token,
        )
        again += [endpoint_id for _, endpoint_id, status in rows if status == "pending"]
        mine = {r[0] for r in rows}
        recorded = [a for a in attempts if a.delivery_id in mine]
        if recorded:
            await c.execute(
                f"INSERT INTO {s}.webhook_attempts (delivery_id, number, started, duration, "
                "status, error, verdict, response) SELECT v.id, coalesce((SELECT max(number) "
                f"FROM {s}.webhook_attempts a WHERE a.delivery_id = v.id), 0) + 1, v.started, "
                "v.duration, v.status, v.error, v.verdict, v.response FROM unnest($1::text[], "
                "$2::float8[], $3::float8[], $4::int[], $5::text[], $6::text[], $7::text[]) "
                "AS v(id, started, duration, status, error, verdict, response)",
                [a.delivery_id for a in recorded],
                [a.started for a in recorded],
                [a.duration for a in recorded],
                [a.status for a in recorded],
                [a.error for a in recorded],
                [a.verdict for a in recorded],
                [a.response for a in recorded],
            )
    await notify_pending(c, channel, again)


async def sweep(
    storage: PostgresTables, channel: str, token: str, now: float, *, own: bool
) -> dict[str, int]:
    """Return the in-flight rows of owners that are gone to ``pending`` (due ``now``).

    With ``own`` (at start-up) this owner's rows too. Rows without an owner
    are never touched: a shared consumer's worker claimed them (``rewrite``)
    and they expire by their own ``ack_wait`` (``eventlog migrate`` makes the
    copied claims of the stopped SQLite server pending). Returns the rows
    returned per endpoint id.
    """
    s = storage.schema
    owners = await storage.query(
        lambda c: c.fetch(
            f"SELECT DISTINCT claimed_by FROM {s}.webhook_deliveries WHERE status = 'in_flight'"
        ),
        "find claim owners",
    )
    dead: list[str] = []
    leases: list[Lease] = []
    try:
        for (owner,) in owners:
            if owner is None:
                continue
            if owner == token:
                if own:
                    dead.append(owner)
                continue
            lease = await storage.acquire_lease(owner_lease(owner))
            if lease is not None:  # its process is gone
                leases.append(lease)
                dead.append(owner)
        if not dead:
            return {}

        async def txn(c: asyncpg.Connection) -> dict[str, int]:
            rows = await c.fetch(
                f"WITH r AS (UPDATE {s}.webhook_deliveries SET status = 'pending', "
                "next_at = $1, updated = $1, claimed_by = NULL WHERE status = 'in_flight' "
                "AND claimed_by = ANY($2::text[]) RETURNING endpoint_id) "
                "SELECT endpoint_id, count(*) FROM r GROUP BY endpoint_id",
                now,
                dead,
            )
            returned = {endpoint_id: int(n) for endpoint_id, n in rows}
            await notify_pending(c, channel, list(returned))
            return returned

        return await storage.transact(txn, "sweep orphaned deliveries")
    finally:
        for lease in leases:
            await lease.release()
