"""``LogConfig``, the log's tuning, and how an open target picks its storage backend."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, Literal

import msgspec

from eventlog.errors import InvalidInput
from eventlog.storage.base import Storage

__all__ = ["LogConfig", "storage_for"]


class LogConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Tuning of an :class:`EventLog`. Every field has a safe default.

    Attributes:
        synchronous: SQLite durability: ``"full"`` fsyncs every commit (an
            acknowledged event survives power loss), ``"normal"`` survives a
            process crash only, ``"off"`` neither.
        max_event_bytes: Largest event (data plus headers) accepted.
        max_batch_events: Most events one ``append_batch`` call may carry.
        writer_batch_events: Most events the writer puts in one transaction.
        writer_batch_bytes: Most bytes the writer puts in one transaction.
        queue_events: Events that may wait for the writer before producers block.
        queue_bytes: Bytes that may wait for the writer before producers block.
        read_page: Page size of :meth:`EventLog.scan` and consumers.
        readers: SQLite reader connections.
        retention_interval: Seconds between retention passes (0 disables the task).
        protect_consumers: Retention keeps the events named consumers have not
            committed (per consumer: :meth:`EventLog.set_hold_policy`).
        max_hold: Seconds without a commit after which a consumer no longer
            holds retention (None: never).
        system_stream: Where the log records what it did on its own
            (``retention.hold_expired``, ``consumer.truncated``).
        recheck_interval: While waiting for appends, seconds between storage
            re-checks that catch other processes' appends (None: never).
        schedule_horizon: Farthest due time a scheduled append may have, in
            seconds from now (default 366 days); further is refused.
        schedule_poll: Seconds between looks for scheduled events that
            another process added to the same database.
    """

    synchronous: Literal["full", "normal", "off"] = "full"
    max_event_bytes: int = 1 << 20
    max_batch_events: int = 10_000
    writer_batch_events: int = 5_000
    writer_batch_bytes: int = 16 << 20
    queue_events: int = 50_000
    queue_bytes: int = 64 << 20
    read_page: int = 1_000
    readers: int = 2
    retention_interval: float = 60.0
    protect_consumers: bool = True
    max_hold: float | None = None
    system_stream: str = "system"
    recheck_interval: float | None = 1.0
    schedule_horizon: float = 366 * 86_400.0
    schedule_poll: float = 1.0


def storage_for(target: str | Path, config: LogConfig) -> Storage:
    """Pick a backend: ``":memory:"``, a ``postgresql://`` URL, or an SQLite file path."""
    text = str(target)
    if text == ":memory:":
        from eventlog.storage.memory import MemoryStorage

        return MemoryStorage()
    if text.startswith(("postgresql://", "postgres://")):
        postgres: Any = importlib.import_module("eventlog.storage.postgres")
        storage: Storage = postgres.PostgresStorage(text)
        return storage
    if isinstance(target, str) and _URL_SCHEME.match(text):
        raise InvalidInput(
            f"unsupported database URL {text.split('://', 1)[0] + '://...'!r}: use a "
            "postgresql:// URL, an SQLite file path or ':memory:'"
        )
    from eventlog.storage.sqlite import SQLiteStorage

    return SQLiteStorage(target, synchronous=config.synchronous, readers=config.readers)


_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
