"""The SQL ledgers' tables, declared once for SQLite and PostgreSQL, and their row mappers.

Both hold the same tables column for column (so ``eventlog migrate`` copies
the rows as they are), PostgreSQL adds ``claimed_by``. Migrations are
append-only: a change is a new step, never an edit of a shipped one.
"""

from __future__ import annotations

from typing import Any

from consumers.delivery.model import FINISHED, Attempt, Delivery

__all__ = [
    "ATTEMPT_COLUMNS",
    "ATTEMPT_FIELDS",
    "COLUMNS",
    "DELIVERY_FIELDS",
    "IS_FINISHED",
    "attempt_from_row",
    "delivery_from_row",
    "finished_index",
    "tables",
]

#: The delivery columns both SQL ledgers select: :class:`Delivery`'s fields, by name
#: (``next_attempt_at`` is the column ``next_at``; ``"offset"`` is quoted for PostgreSQL).
DELIVERY_FIELDS = Delivery.__struct_fields__
COLUMNS = ", ".join(
    {"next_attempt_at": "next_at", "offset": '"offset"'}.get(f, f) for f in DELIVERY_FIELDS
)
#: The attempt columns both SQL ledgers select (:class:`Attempt`'s fields but the delivery id).
ATTEMPT_FIELDS = Attempt.__struct_fields__[1:]
ATTEMPT_COLUMNS = ", ".join(ATTEMPT_FIELDS)
#: The condition of a finished row (the prune's, and its index's: the same words).
IS_FINISHED = "status IN (" + ", ".join(f"'{s}'" for s in FINISHED) + ")"

_TABLES = [
    "CREATE TABLE {t}webhook_endpoints (id text PRIMARY KEY, doc {blob} NOT NULL){rowid}",
    """CREATE TABLE {t}webhook_deliveries (
        seq {seq} PRIMARY KEY,
        id text NOT NULL UNIQUE,
        endpoint_id text NOT NULL,
        stream text NOT NULL,
        "offset" {bigint} NOT NULL,
        event_id text NOT NULL,
        event_type text NOT NULL,
        key text,
        status text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        budget_start integer NOT NULL DEFAULT 0,
        rate_limited integer NOT NULL DEFAULT 0,
        next_at {real},
        created {real} NOT NULL,
        updated {real} NOT NULL,
        last_status integer,
        last_error text,
        replay integer NOT NULL DEFAULT 0{claimed_by}
    )""",
    "CREATE UNIQUE INDEX webhook_deliveries_live "
    'ON {t}webhook_deliveries (endpoint_id, stream, "offset") WHERE replay = 0',
    "CREATE INDEX webhook_deliveries_due "
    "ON {t}webhook_deliveries (endpoint_id, next_at) WHERE status = 'pending'",
    "CREATE INDEX webhook_deliveries_active ON {t}webhook_deliveries (endpoint_id, seq) "
    "WHERE status IN ('pending', 'in_flight')",
    "CREATE INDEX webhook_deliveries_by_endpoint ON {t}webhook_deliveries (endpoint_id, seq)",
    """CREATE TABLE {t}webhook_attempts (
        delivery_id text NOT NULL,
        number integer NOT NULL,
        started {real} NOT NULL,
        duration {real} NOT NULL,
        status integer,
        error text,
        verdict text NOT NULL,
        response text NOT NULL,
        PRIMARY KEY (delivery_id, number)
    ){rowid}""",
]


def tables(**words: str) -> list[str]:
    """The first migration step of a SQL ledger: its tables and indexes, in the
    dialect's ``words`` (``t``: what goes before a table name; ``seq``, ``bigint``,
    ``real``, ``blob``: type names; ``rowid``: after a keyed table;
    ``claimed_by``: after the last delivery column)."""
    return [sql.format(**words) for sql in _TABLES]


def finished_index(t: str) -> list[str]:
    """A later migration step of both SQL ledgers: the index that finds finished rows
    by age for the prune (:meth:`~consumers.delivery.ledger.LedgerStore.prune`)
    without reading every row; ``t`` as in :func:`tables`."""
    return [
        f"CREATE INDEX webhook_deliveries_finished ON {t}webhook_deliveries (updated) "
        f"WHERE {IS_FINISHED}"
    ]


def delivery_from_row(r: Any) -> Delivery:
    """A :class:`Delivery` from a row selected as :data:`COLUMNS`, matched by name."""
    fields = dict(zip(DELIVERY_FIELDS, r, strict=True))
    fields["replay"] = bool(fields["replay"])
    return Delivery(**fields)


def attempt_from_row(delivery_id: str, a: Any) -> Attempt:
    """An :class:`Attempt` from a row selected as :data:`ATTEMPT_COLUMNS`, matched by name."""
    return Attempt(delivery_id=delivery_id, **dict(zip(ATTEMPT_FIELDS, a, strict=True)))
