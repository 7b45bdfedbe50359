"""Retention: which prefix of a stream its policy lets go, and trimming it.

A stream's :class:`~eventlog.model.Retention` limits age, count and payload
bytes; the cutoff is the highest offset any limit asks for. Trimming goes in
chunks so a large backlog never holds the write lock for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from eventlog.errors import EventLogError, InvalidEvent
from eventlog.model import Retention, StreamInfo
from eventlog.storage.base import Storage

__all__ = [
    "TRIM_CHUNK",
    "check_retention",
    "enforce_retention",
    "retention_cutoff",
    "run_retention",
]

logger = logging.getLogger("eventlog")

TRIM_CHUNK = 10_000


def check_retention(retention: Retention) -> None:
    """Refuse negative limits."""
    for value in (retention.max_age, retention.max_count, retention.max_bytes):
        if value is not None and value < 0:
            raise InvalidEvent("retention limits must not be negative")


async def retention_cutoff(storage: Storage, info: StreamInfo, now: datetime) -> int:
    """The first offset the stream keeps under its policy at ``now``."""
    policy = info.retention
    cutoff = info.first_offset
    if policy.max_count is not None:
        cutoff = max(cutoff, info.next_offset - policy.max_count)
    if policy.max_age is not None:
        t = now - timedelta(seconds=policy.max_age)
        cutoff = max(cutoff, await storage.offset_at_time(info.name, t))
    if policy.max_bytes is not None and info.bytes > policy.max_bytes:
        cutoff = max(cutoff, await storage.offset_for_bytes(info.name, policy.max_bytes))
    return min(cutoff, info.next_offset)


async def enforce_retention(storage: Storage, now: datetime) -> int:
    """Trim every stream to its policy; return how many events were deleted."""
    deleted = 0
    for info in await storage.streams():
        cutoff = await retention_cutoff(storage, info, now)
        first = info.first_offset
        while first < cutoff:
            upto = min(cutoff, first + TRIM_CHUNK)
            deleted += await storage.trim(info.name, upto)
            first = upto
    return deleted


async def run_retention(enforce: Callable[[], Awaitable[int]], interval: float) -> None:
    """Call ``enforce()`` every ``interval`` seconds until cancelled; a failed pass is logged."""
    while True:
        await asyncio.sleep(interval)
        try:
            await enforce()
        except EventLogError as exc:
            logger.warning("retention pass failed: %s", exc)
