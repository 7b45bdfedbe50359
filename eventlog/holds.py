"""Retention holds: named consumers keep the events they have not read yet.

Retention never trims a stream past the lowest committed offset of any
named consumer of that stream that *protects* it. A consumer protects unless
its :class:`HoldPolicy` or the stream's :class:`~eventlog.model.Retention`
says ``protect=False``; with ``max_hold`` set on either (the smaller bound
wins), a consumer that has not committed for that many seconds loses the
protection (an abandoned consumer must not keep a stream forever). Retention then
trims past it — after a warning in the log and a ``retention.hold_expired``
event on the system stream, once, when its first unread events go.

Everything here is pure: :func:`plan_holds` takes the stream, the cutoff its
policy asks for, the consumers' positions and ``now``, and says how far to
trim and who holds what.

When a reader does resume below the retained range anyway, what it lost is
said explicitly as a :class:`Truncation`, never skipped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from eventlog.model import ConsumerInfo, StreamInfo

__all__ = ["Hold", "HoldPlan", "HoldPolicy", "Truncation", "plan_holds"]


class HoldPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How one consumer holds retention.

    Attributes:
        protect: Retention keeps the events it has not committed (default).
        max_hold: Seconds without a commit after which it stops protecting
            (None: never).
    """

    protect: bool = True
    max_hold: float | None = None


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    """What one consumer keeps retention from trimming.

    Attributes:
        consumer: The consumer.
        offset: Its committed offset (the first event it has not read).
        events: Events retention would otherwise delete for it.
        bytes: Their payload bytes, estimated from the stream's average event size.
        updated: When it last committed.
        expired: True once ``max_hold`` has passed: retention no longer waits for it.
    """

    consumer: str
    offset: int
    events: int
    bytes: int
    updated: datetime
    expired: bool = False


class HoldPlan(msgspec.Struct, frozen=True, kw_only=True):
    """How far retention may trim a stream, and why not further.

    Attributes:
        cutoff: The first offset to keep.
        holds: Consumers behind the policy's cutoff, lowest offset first.
        released: Expired holds whose unread events this trim deletes (to be
            warned about before trimming).
    """

    cutoff: int
    holds: list[Hold]
    released: list[Hold]


def plan_holds(
    info: StreamInfo,
    policy_cutoff: int,
    consumers: Sequence[ConsumerInfo],
    policy_of: Callable[[str], HoldPolicy],
    now: datetime,
) -> HoldPlan:
    """Apply the consumers' holds to ``policy_cutoff`` (see the module docstring)."""
    average = info.bytes / info.count if info.count else 0.0
    stream = info.retention
    holds: list[Hold] = []
    for consumer in consumers:
        if not stream.protect or consumer.stream != info.name or consumer.offset >= policy_cutoff:
            continue
        policy = policy_of(consumer.name)
        if not policy.protect:
            continue
        bounds = [b for b in (policy.max_hold, stream.max_hold) if b is not None]
        held = policy_cutoff - max(consumer.offset, info.first_offset)
        age = (now - consumer.updated).total_seconds()
        holds.append(
            Hold(
                consumer=consumer.name,
                offset=consumer.offset,
                events=held,
                bytes=round(held * average),
                updated=consumer.updated,
                expired=bool(bounds) and age > min(bounds),
            )
        )
    holds.sort(key=lambda h: (h.offset, h.consumer))
    live = [h.offset for h in holds if not h.expired]
    cutoff = max(min([policy_cutoff, *live]), info.first_offset)
    released = [h for h in holds if h.expired and info.first_offset <= h.offset < cutoff]
    return HoldPlan(cutoff=cutoff, holds=holds, released=released)


class Truncation(msgspec.Struct, frozen=True, kw_only=True):
    """Events a reader lost to retention: it resumed at ``offset``, below the
    first retained offset.

    Attributes:
        stream: The stream.
        offset: Where the reader wanted to resume.
        first_offset: The first retained offset.
        skipped: Events removed before the reader read them (``first_offset - offset``).
        resumed_at: Where the reader goes on (``first_offset``, or the head
            for a consumer whose reset policy is ``"latest"``).
        consumer: The named consumer, if the reader is one.
    """

    stream: str
    offset: int
    first_offset: int
    skipped: int
    resumed_at: int
    consumer: str | None = None

    @classmethod
    def of(
        cls,
        stream: str,
        offset: int,
        first: int,
        *,
        resumed_at: int | None = None,
        consumer: str | None = None,
    ) -> Truncation:
        """The truncation of a reader at ``offset`` when ``first`` is the first retained offset."""
        return cls(
            stream=stream,
            offset=offset,
            first_offset=first,
            skipped=max(first - offset, 0),
            resumed_at=first if resumed_at is None else resumed_at,
            consumer=consumer,
        )

    def describe(self) -> str:
        """One line for logs and close reasons."""
        who = f"consumer {self.consumer} " if self.consumer else ""
        return (
            f"{who}lost offsets {self.offset}-{self.first_offset - 1} of {self.stream!r} to "
            f"retention ({self.skipped} events skipped; first retained {self.first_offset}, "
            f"resuming at {self.resumed_at})"
        )
