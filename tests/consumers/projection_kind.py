"""A transactional consumer kind for tests (``tests.consumers.projection_kind:make``).

Each event becomes one row of the SQLite table ``projection`` in the log's
own file, written in the transaction that commits the consumer's offset.
"""

from __future__ import annotations

from typing import Any

from consumers import TransactionalHandler
from eventlog import Event, EventLog, OffsetTransaction


def make(log: EventLog, options: dict[str, Any]) -> TransactionalHandler:
    """The handler: one ``projection`` row per event."""

    async def project(events: list[Event], tx: OffsetTransaction) -> None:
        for event in events:
            await tx.execute("INSERT INTO projection (o) VALUES (?)", event.offset)

    return project
