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

(The claims are :class:`~consumers.delivery.sql_ledger.SQLLedger`'s, in the
ledger's words; :func:`finish` records outcomes.)

**The orphan sweep** (:meth:`PostgresLedger.sweep
<consumers.delivery.postgres_ledger.PostgresLedger.sweep>`): a process that dies
(SIGKILL, crash, lost host) leaves its claimed rows ``in_flight``. PostgreSQL drops a dead
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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from consumers.delivery.changes import Pending
from consumers.delivery.model import Finished
from consumers.delivery.sql_ledger import Plan, Stmt, each

__all__ = ["NOTIFY", "Notify", "arrays", "finish", "new_token", "owner_lease"]

#: Notifies ``$1`` of each payload in the list ``$2``.
NOTIFY = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"

Notify = Callable[[Iterable[Pending]], list[Stmt]]
"""The statements telling every process (on commit) of these changes."""


def arrays(items: Sequence[Any], *fields: str) -> list[list[Any]]:
    """The ``fields`` of ``items``, an array a field (``unnest``'s arguments)."""
    return [[getattr(item, f) for item in items] for f in fields]


def new_token() -> str:
    """A new owner token: ``<host>:<pid>:<random>`` (says who holds a row)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_lease(token: str) -> str:
    """The lease a live owner holds."""
    return f"ledger-owner:{token}"


def finish(s: str, token: str, results: Sequence[Finished], notify: Notify) -> Plan[None]:
    """Record outcomes of rows this owner claimed, in three statements whatever their
    number (others' rows are left alone: a sweep may have taken them back meanwhile);
    notify the endpoints whose rows went back to ``pending``."""
    latest = {f.delivery_id: f for f in results}  # one outcome per row: the last
    released = [f for f in latest.values() if f.attempt is None]
    attempted = [f for f in latest.values() if f.attempt is not None]
    again: list[str] = []
    if released:
        rows = yield Stmt(
            f"UPDATE {s}.webhook_deliveries d SET status = 'pending', next_at = v.next_at, "
            "updated = v.now, claimed_by = NULL FROM unnest(?::text[], ?::float8[], "
            "?::float8[]) AS v(id, next_at, now) WHERE d.id = v.id AND d.status = 'in_flight' "
            "AND d.claimed_by = ? RETURNING d.endpoint_id",
            (*arrays(released, "delivery_id", "next_attempt_at", "now"), token),
        )
        again += [r[0] for r in rows]
    if attempted:
        attempts = [f.attempt for f in attempted if f.attempt is not None]
        rows = yield Stmt(
            f"UPDATE {s}.webhook_deliveries d SET status = v.status, attempts = v.attempts, "
            "rate_limited = v.rate_limited, next_at = v.next_at, updated = v.now, "
            "last_status = v.last_status, last_error = v.last_error, claimed_by = NULL "
            "FROM unnest(?::text[], ?::text[], ?::int[], ?::int[], ?::float8[], "
            "?::float8[], ?::int[], ?::text[]) AS v(id, status, attempts, rate_limited, "
            "next_at, now, last_status, last_error) WHERE d.id = v.id "
            "AND d.status = 'in_flight' AND d.claimed_by = ? "
            "RETURNING d.id, d.endpoint_id, d.status",
            (
                *arrays(attempted, "delivery_id", "status", "attempts", "rate_limited"),
                *arrays(attempted, "next_attempt_at", "now"),
                *arrays(attempts, "status", "error"),
                token,
            ),
        )
        again += [endpoint_id for _, endpoint_id, status in rows if status == "pending"]
        mine = {r[0] for r in rows}
        recorded = [a for a in attempts if a.delivery_id in mine]
        if recorded:
            yield Stmt(
                f"INSERT INTO {s}.webhook_attempts (delivery_id, number, started, duration, "
                "status, error, verdict, response) SELECT v.id, coalesce((SELECT max(number) "
                f"FROM {s}.webhook_attempts a WHERE a.delivery_id = v.id), 0) + 1, v.started, "
                "v.duration, v.status, v.error, v.verdict, v.response FROM unnest(?::text[], "
                "?::float8[], ?::float8[], ?::int[], ?::text[], ?::text[], ?::text[]) "
                "AS v(id, started, duration, status, error, verdict, response)",
                arrays(recorded, "delivery_id", "started", "duration", "status", "error")
                + arrays(recorded, "verdict", "response"),
            )
    if again:
        yield from each(notify([Pending(e) for e in again]))
