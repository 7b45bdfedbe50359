"""The ledger of a log that is not durable: the SQLite ledger on a private in-memory database."""

from __future__ import annotations

import dataclasses
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from consumers.delivery.ledger import Claimed, ClaimRequest, Enqueue
from consumers.delivery.model import Finished
from consumers.delivery.sqlite_ledger import SQLiteLedger
from eventlog import EventLog
from eventlog.storage.sqlite_schema import migrate_component

__all__ = ["MemoryLedger"]

T = TypeVar("T")


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
