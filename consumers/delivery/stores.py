"""Which :class:`~consumers.delivery.ledger.LedgerStore` goes with which log backend."""

from __future__ import annotations

from collections.abc import Callable

from consumers.delivery.ledger import LedgerStore
from consumers.delivery.sqlite_ledger import MemoryLedger, SQLiteLedger
from eventlog import EventLog
from eventlog.sealed import SecretBox

__all__ = ["LedgerFactory", "ledger_for", "register_ledger"]

LedgerFactory = Callable[[EventLog], LedgerStore]

#: Ledgers of other backends, by the ``kind`` their capabilities declare.
_registry: dict[str, LedgerFactory] = {}


def register_ledger(kind: str, factory: LedgerFactory) -> None:
    """Give the ledger ``factory(log)`` to logs whose backend declares ``kind`` (its
    ledger must commit delivery rows and the consumer offset in one transaction)."""
    _registry[kind] = factory


def ledger_for(log: EventLog, *, secrets: SecretBox | None = None) -> LedgerStore:
    """The ledger that goes with the log's backend: a registered one
    (:func:`register_ledger`) for its kind, else one in the database it declares
    (``secrets`` seals the endpoint documents at rest), else, for a log that is
    not durable, the in-memory one.

    Raises:
        ValueError: A durable backend without a ledger (an in-memory ledger would
            lose deliveries whose offsets were committed).
    """
    capabilities = log.capabilities
    if (registered := _registry.get(capabilities.kind)) is not None:
        return registered(log)
    tables = capabilities.tables
    if tables is None:
        if capabilities.durable:
            raise ValueError(
                f"the {capabilities.kind} backend has no delivery ledger; "
                "webhook delivery needs the SQLite, PostgreSQL or in-memory backend"
            )
        return MemoryLedger(log)
    if tables.kind == "sqlite":
        return SQLiteLedger(tables, secrets=secrets)
    from consumers.delivery.postgres_ledger import PostgresLedger  # asyncpg only when used

    return PostgresLedger(tables, secrets=secrets)
