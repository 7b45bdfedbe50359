"""Which :class:`~consumers.delivery.ledger.LedgerStore` goes with which log backend."""

from __future__ import annotations

from consumers.delivery.ledger import LedgerStore
from consumers.delivery.sealed import SecretBox
from eventlog import EventLog

__all__ = ["ledger_for"]


def ledger_for(log: EventLog, *, secrets: SecretBox | None = None) -> LedgerStore:
    """The ledger store that matches the log's storage backend.

    SQLite: :class:`~consumers.delivery.sqlite_ledger.SQLiteLedger`;
    PostgreSQL: :class:`~consumers.delivery.postgres_ledger.PostgresLedger`; the
    in-memory log: :class:`~consumers.delivery.ledger.MemoryLedger`. Another
    backend provides its own by having a ``delivery_ledger()`` method.
    ``secrets`` seals the endpoint documents of the durable ledgers at rest.

    Raises:
        ValueError: The backend has no ledger (an in-memory ledger next to a
            durable log would lose deliveries whose offsets were committed).
    """
    from eventlog.storage.memory import MemoryStorage
    from eventlog.storage.sqlite import SQLiteStorage

    storage = log.storage
    if isinstance(storage, SQLiteStorage):
        from consumers.delivery.sqlite_ledger import SQLiteLedger

        return SQLiteLedger(storage, secrets=secrets)
    if isinstance(storage, MemoryStorage):
        from consumers.delivery.ledger import MemoryLedger

        return MemoryLedger(storage)
    if type(storage).__module__ == "eventlog.storage.postgres":  # asyncpg only when used
        from consumers.delivery.postgres_ledger import PostgresLedger

        return PostgresLedger(storage, secrets=secrets)  # type: ignore[arg-type]
    factory = getattr(storage, "delivery_ledger", None)
    if callable(factory):
        store: LedgerStore = factory()
        return store
    raise ValueError(
        f"the {type(storage).__name__} backend has no delivery ledger yet; "
        "webhook delivery needs the SQLite or in-memory backend"
    )
