"""Parked events: what a consumer sets aside when a handler keeps failing on them.

When a consumer's ``on_failure`` is ``"park"`` and an event has failed
``max_attempts`` handler calls on its own, the runtime appends it to the
consumer's *parked stream* and moves past it. The parked stream is an
ordinary stream named ``<consumer>.parked``: readable, followable on the
firehose, subject to retention. A parked event keeps the original's type,
key, data and headers, and adds these headers:

=====================  =====================================================
``parked-stream``      the stream the event came from
``parked-offset``      its offset there
``parked-id``          its id there
``parked-time``        its append time there (RFC 3339)
``parked-consumer``    the consumer that parked it
``parked-error-type``  the exception's class name
``parked-error``       the exception's message (at most 1,000 characters)
``parked-attempts``    failed handler calls with this event alone
=====================  =====================================================

Replaying (:meth:`~consumers.runtime.ConsumerManager.replay_parked`) hands
each parked event back to the handler as the original :class:`Event`
(headers above removed); the consumer's committed offset *on its parked
stream* records how far replay got, so the parked count is the parked
stream's head minus that offset.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

import msgspec

from eventlog import (
    Consumer,
    ConsumerInfo,
    Event,
    EventLog,
    InvalidInput,
    StreamInfo,
    validate_stream_name,
)
from eventlog.encoding import json_problem
from eventlog.model import split_namespace
from eventlog.repair import repair

__all__ = [
    "NAME_HEADERS",
    "PARKED_SUFFIX",
    "OnFailure",
    "ReplayResult",
    "original_event",
    "park",
    "parked_counts",
    "parked_headers",
    "parked_stream",
    "replay",
    "shown_headers",
]

logger = logging.getLogger("eventlog.consumers")

OnFailure = Literal["park", "stop", "retry"]
"""What a consumer does once ``max_attempts`` calls failed: park the event(s)
and move on, stop with the error visible, or keep retrying with backoff."""

PARKED_SUFFIX = ".parked"

#: The headers of a parked copy whose values are stored names (a tenant's
#: key is shown them as it names them, like an event's ``stream``).
NAME_HEADERS = ("parked-stream", "parked-consumer")
_PREFIX = "parked-"
_MAX_MESSAGE = 1000


def parked_stream(consumer: str) -> str:
    """The name of ``consumer``'s parked stream: ``<consumer>.parked``.

    Raises:
        InvalidInput: The name would be longer than a stream name may be.
    """
    name = consumer + PARKED_SUFFIX
    try:
        return validate_stream_name(name)
    except InvalidInput:
        raise InvalidInput(
            f"consumer name {consumer!r} is too long for its parked stream {name!r} "
            "(stream names hold at most 128 characters)"
        ) from None


def parked_headers(
    event: Event, consumer: str, error: BaseException, attempts: int
) -> dict[str, str]:
    """The headers of ``event`` parked by ``consumer`` after ``error``."""
    message = str(error)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return {
        **event.headers,
        "parked-stream": event.stream,
        "parked-offset": str(event.offset),
        "parked-id": event.id,
        "parked-time": event.time.isoformat(),
        "parked-consumer": consumer,
        "parked-error-type": type(error).__name__,
        "parked-error": message,
        "parked-attempts": str(attempts),
    }


def shown_headers(headers: dict[str, str], namespace: str) -> dict[str, str]:
    """``headers`` with the :data:`NAME_HEADERS` of ``namespace`` as its owner
    names them (``acme~jobs`` -> ``jobs`` for ``acme``); the same dict when none is."""
    if not any(h in headers for h in NAME_HEADERS):
        return headers
    shown = dict(headers)
    for h in NAME_HEADERS:
        if h in shown:
            owner, name = split_namespace(shown[h])
            if owner == namespace:
                shown[h] = name
    return shown


def original_event(parked: Event) -> Event:
    """The event as its consumer first saw it, rebuilt from a parked copy."""
    headers = parked.headers
    try:
        return Event(
            stream=headers["parked-stream"],
            offset=int(headers["parked-offset"]),
            id=headers["parked-id"],
            type=parked.type,
            key=parked.key,
            time=datetime.fromisoformat(headers["parked-time"]),
            headers={k: v for k, v in headers.items() if not k.startswith(_PREFIX)},
            data=parked.data,
        )
    except (KeyError, ValueError):
        # Appended to the parked stream by hand: replay it as it is.
        return parked


def parked_counts(streams: list[StreamInfo], offsets: list[ConsumerInfo]) -> dict[str, int]:
    """Events waiting in each consumer's parked stream, by consumer name.

    A parked stream's events count from the consumer's committed offset on
    it (how far replay got), or from its first retained event.
    """
    replayed = {c.name: c.offset for c in offsets if c.stream == c.name + PARKED_SUFFIX}
    counts: dict[str, int] = {}
    for info in streams:
        if info.name.endswith(PARKED_SUFFIX) and len(info.name) > len(PARKED_SUFFIX):
            consumer = info.name[: -len(PARKED_SUFFIX)]
            start = max(replayed.get(consumer, info.first_offset), info.first_offset)
            counts[consumer] = max(info.next_offset - start, 0)
    return counts


class ReplayResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one replay of a consumer's parked events did.

    Attributes:
        consumer: The consumer.
        parked_stream: Its parked stream.
        replayed: Parked events the handler took this time.
        remaining: Parked events still waiting (0 when all replayed).
        error: The handler's error on the first event it refused again
            (``"Type: message"``), which stays parked; None if none failed.
    """

    consumer: str
    parked_stream: str
    replayed: int
    remaining: int
    error: str | None = None


async def park(
    log: EventLog,
    consumer: str,
    event: Event,
    error: Exception,
    attempts: int,
    *,
    id: str | None = None,
) -> None:
    """Append ``event`` to ``consumer``'s parked stream with why it was parked.

    ``id`` makes parking idempotent (the parked copy's event id): a caller that
    may park the same event twice (after a crash, or from two processes) passes
    one per event.

    An event an older version stored with data that is not UTF-8 JSON (which
    the log no longer takes) is parked repaired and flagged (:mod:`eventlog.repair`).
    """
    stream = parked_stream(consumer)
    if json_problem(bytes(event.data)) is not None:
        event = repair(event, "parking")
    await log.append(
        stream,
        event.data,
        type=event.type,
        key=event.key,
        id=id,
        headers=parked_headers(event, consumer, error, attempts),
    )
    logger.error(
        "consumer %s parked %s@%d (id %s) in %s after %d attempts: %s: %s",
        consumer,
        event.stream,
        event.offset,
        event.id,
        stream,
        attempts,
        type(error).__name__,
        error,
    )


async def replay(
    log: EventLog, consumer: str, handle: Callable[[Event, Consumer, int], Awaitable[None]]
) -> ReplayResult:
    """Hand ``consumer``'s parked events to ``handle(original, cursor, commit_to)``, oldest
    first, until one fails; ``handle`` commits ``commit_to`` on ``cursor`` (the
    consumer's position on its parked stream) once the handler took the event."""
    stream = parked_stream(consumer)
    cursor = log.consumer(consumer, stream)
    replayed, error = 0, None
    while True:
        parked = await cursor.poll(1)
        if not parked:
            break
        try:
            await handle(original_event(parked[0]), cursor, parked[0].offset + 1)
        except Exception as exc:  # still failing: leave it parked
            error = f"{type(exc).__name__}: {exc}"
            break
        replayed += 1
    remaining = await log.consumer(consumer, stream).lag()
    logger.info("consumer %s replayed %d parked event(s), %d remain", consumer, replayed, remaining)
    return ReplayResult(
        consumer=consumer, parked_stream=stream, replayed=replayed, remaining=remaining, error=error
    )
