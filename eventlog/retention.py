"""Retention: which prefix of a stream its policy lets go, and trimming it.

A stream's :class:`~eventlog.model.Retention` limits age, count and payload
bytes; the cutoff is the highest offset any limit asks for, lowered to what
named consumers have not read yet (:mod:`eventlog.holds`). Trimming goes in
chunks so a large backlog never holds the write lock for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from eventlog.errors import EventLogError, InvalidField
from eventlog.holds import HoldPlan, HoldPolicy, plan_holds
from eventlog.model import ConsumerInfo, Retention, StreamInfo
from eventlog.storage.base import Storage
from eventlog.storage.derived import offset_at_time, offset_for_bytes

__all__ = [
    "MAX_RETENTION_SECONDS",
    "TRIM_CHUNK",
    "Notice",
    "check_retention",
    "enforce_retention",
    "plan_stream",
    "retention_cutoff",
    "run_retention",
    "stored_policy_error",
]

logger = logging.getLogger("eventlog")

Notice = Callable[[str, dict[str, object]], Awaitable[None]]
"""Records ``(event type, data)`` on the system stream."""

TRIM_CHUNK = 10_000


#: The longest ``max_age`` and ``max_hold``: 100 years. A longer age would
#: reach back before year 1 when the cutoff is computed, and stop every pass.
MAX_RETENTION_SECONDS = 100 * 365 * 86400
_INT64_MAX = 2**63 - 1
_LIMITS = (
    ("max_age", float, MAX_RETENTION_SECONDS),
    ("max_count", int, _INT64_MAX),
    ("max_bytes", int, _INT64_MAX),
    ("max_hold", float, MAX_RETENTION_SECONDS),
)


def check_retention(retention: Retention) -> None:
    """Refuse a limit that is not a number above 0 and in range (None is no limit).

    The same rule for the embedded log and the HTTP API: a zero limit would
    empty the stream at the next pass, which is never what a typo meant.

    Raises:
        InvalidField: 422, ``path`` naming the field (``$.max_count``).
    """
    for name, kind, top in _LIMITS:
        value = getattr(retention, name)
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (kind is int and not isinstance(value, int)) or not 0 < value <= top:
            what = "an integer" if kind is int else "a number of seconds"
            raise InvalidField(
                f"retention {name} must be {what} above 0 and at most {top}, or null for no "
                f"limit; got {value!r}",
                path=f"$.{name}",
            )
    if not isinstance(retention.protect, bool):
        raise InvalidField("retention protect must be true or false", path="$.protect")


def stored_policy_error(info: StreamInfo) -> InvalidField | None:
    """Why :func:`check_retention` refuses the stream's stored policy, or None.

    An older version stored limits unchecked (a ``max_age`` past datetime's
    range, infinity, a count stored as a float): such a policy trims nothing.
    """
    try:
        check_retention(info.retention)
    except InvalidField as exc:
        return exc
    return None


async def retention_cutoff(storage: Storage, info: StreamInfo, now: datetime) -> int:
    """The first offset the stream keeps under its policy at ``now``."""
    policy = info.retention
    cutoff = info.first_offset
    if policy.max_count is not None:
        cutoff = max(cutoff, info.next_offset - policy.max_count)
    if policy.max_age is not None:
        t = now - timedelta(seconds=policy.max_age)
        cutoff = max(cutoff, await offset_at_time(storage, info.name, t))
    if policy.max_bytes is not None and info.bytes > policy.max_bytes:
        cutoff = max(cutoff, await offset_for_bytes(storage, info.name, policy.max_bytes))
    return min(cutoff, info.next_offset)


async def plan_stream(
    storage: Storage,
    info: StreamInfo,
    consumers: list[ConsumerInfo],
    policy_of: Callable[[str], HoldPolicy],
    now: datetime,
) -> HoldPlan:
    """The stream's retention cutoff at ``now``, held back by its consumers
    (nothing to trim under a policy :func:`stored_policy_error` refuses)."""
    if stored_policy_error(info) is not None:
        return HoldPlan(cutoff=info.first_offset, holds=[], released=[])
    cutoff = await retention_cutoff(storage, info, now)
    return plan_holds(info, cutoff, consumers, policy_of, now)


async def enforce_retention(
    storage: Storage,
    now: datetime,
    policy_of: Callable[[str], HoldPolicy] = lambda name: HoldPolicy(),
    notice: Notice | None = None,
) -> int:
    """Trim every stream to its policy and its consumers' holds; return events deleted.

    Before trimming unread events of a consumer whose hold expired, logs a
    warning and records ``retention.hold_expired`` through ``notice``. A stream
    whose stored policy :func:`check_retention` refuses, or whose trim fails, is
    skipped with a warning: the other streams are still trimmed.
    """
    deleted = 0
    consumers = await storage.consumers()
    for info in await storage.streams():
        problem = stored_policy_error(info)
        if problem is not None:
            logger.warning(
                "retention: skipping stream %s, its stored policy: %s", info.name, problem
            )
            continue
        try:
            deleted += await _enforce_stream(storage, info, consumers, policy_of, now, notice)
        except EventLogError as exc:
            logger.warning("retention: skipping stream %s this pass: %s", info.name, exc)
        except Exception:
            logger.exception("retention: skipping stream %s this pass", info.name)
    return deleted


async def _enforce_stream(
    storage: Storage,
    info: StreamInfo,
    consumers: list[ConsumerInfo],
    policy_of: Callable[[str], HoldPolicy],
    now: datetime,
    notice: Notice | None,
) -> int:
    """Trim one stream (see :func:`enforce_retention`); return events deleted."""
    deleted = 0
    plan = await plan_stream(storage, info, consumers, policy_of, now)
    for hold in plan.released:
        lost = plan.cutoff - hold.offset
        logger.warning(
            "retention: consumer %s has not committed on %s since %s (max_hold passed); "
            "trimming %d events it has not read (offsets %d-%d)",
            hold.consumer,
            info.name,
            hold.updated.isoformat(),
            lost,
            hold.offset,
            plan.cutoff - 1,
        )
        if notice is not None:
            await notice(
                "retention.hold_expired",
                {
                    "stream": info.name,
                    "consumer": hold.consumer,
                    "offset": hold.offset,
                    "first_offset": plan.cutoff,
                    "events_lost": lost,
                    "last_commit": hold.updated.isoformat(),
                },
            )
    first = info.first_offset
    while first < plan.cutoff:
        upto = min(plan.cutoff, first + TRIM_CHUNK)
        deleted += await storage.trim(info.name, upto)
        first = upto
    return deleted


async def run_retention(enforce: Callable[[], Awaitable[int]], interval: float) -> None:
    """Call ``enforce()`` every ``interval`` seconds until cancelled; a failed pass is
    logged and the next one still runs."""
    while True:
        await asyncio.sleep(interval)
        try:
            await enforce()
        except EventLogError as exc:
            logger.warning("retention pass failed: %s", exc)
        except Exception:
            logger.exception("retention pass failed")
