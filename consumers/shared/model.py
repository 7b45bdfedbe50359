"""What shared consumers hand out and report: claims, held claims, the info record."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeGuard

import msgspec

from consumers.shared.errors import ClaimExpired
from eventlog import Event
from eventlog.errors import InvalidField

__all__ = [
    "MAX_CLAIMS",
    "MAX_WAIT",
    "Claim",
    "HeldClaim",
    "Settles",
    "SharedConsumerInfo",
    "Undelivered",
    "check_claim",
    "check_worker",
    "is_seconds",
]

#: Most claims one request may ask for, and the longest long-poll (seconds).
MAX_CLAIMS = 1000
MAX_WAIT = 60.0


class Undelivered(ClaimExpired):
    """Why a shared consumer parks an event: handed out ``max_deliver`` times, never acked
    (the name parked copies carry in ``parked-error-type``; never raised to a caller)."""


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """One event handed to one worker until ``expires``.

    Attributes:
        id: The claim id to ack, nack or extend (opaque).
        offset: The event's offset.
        stream: The event's stream.
        attempt: How many times the event was handed out, this one included.
        expires: When the claim lapses and the event goes to another worker.
        event: The event.
    """

    id: str
    offset: int
    stream: str
    attempt: int
    expires: datetime
    event: Event


class SharedConsumerInfo(msgspec.Struct, kw_only=True):
    """A shared consumer's spec and state (``GET /api/consumers/{name}/shared``).

    ``pending`` counts events not handed out (or given back), ``claimed`` the
    ones held by workers; ``oldest_unacked_age`` is the age in seconds of the
    event at the ack floor (None when everything is acked).
    """

    name: str
    stream: str
    types: list[str]
    key: str | None
    ack_wait: float
    max_deliver: int
    ordered_by_key: bool
    ack_floor: int
    head: int
    pending: int
    claimed: int
    parked: int
    oldest_unacked_age: float | None


@dataclass(frozen=True)
class HeldClaim:
    """A claim with the means to settle it (what :meth:`SharedConsumer.claims` yields).

    It has the attributes of ``eventlog.client``'s claims (``id``, ``offset``,
    ``stream``, ``attempt``, ``expires``, ``event``), so a worker moves between
    embedded and remote with one line changed.
    """

    consumer: Settles
    worker: str
    claim: Claim

    @property
    def event(self) -> Event:
        """The claimed event."""
        return self.claim.event

    @property
    def id(self) -> str:
        """The claim id."""
        return self.claim.id

    @property
    def offset(self) -> int:
        """The event's offset."""
        return self.claim.offset

    @property
    def stream(self) -> str:
        """The event's stream."""
        return self.claim.stream

    @property
    def attempt(self) -> int:
        """How many times the event was handed out, this one included."""
        return self.claim.attempt

    @property
    def expires(self) -> datetime:
        """When the claim lapses (as claimed; :meth:`in_progress` returns a later one)."""
        return self.claim.expires

    async def ack(self) -> None:
        """Done with the event."""
        await self.consumer.ack(self.worker, [self.claim.id])

    async def nack(self, delay: float = 0.0) -> None:
        """Give the event back, to be handed out again after ``delay`` seconds."""
        await self.consumer.nack(self.worker, [self.claim.id], delay)

    async def in_progress(self) -> datetime:
        """Still working: extend the claim by ``ack_wait``."""
        return await self.consumer.in_progress(self.worker, [self.claim.id])


def check_worker(worker: object) -> str:
    if not isinstance(worker, str) or not 1 <= len(worker) <= 200:
        raise InvalidField(
            "worker must be a name of 1 to 200 characters",
            code="invalid_parameter",
            path="$.worker",
        )
    return worker


def is_seconds(value: object, most: float) -> TypeGuard[int | float]:
    """``value`` is a number of seconds (not a bool, finite) from 0 to ``most``."""
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and 0 <= value <= most
    )


def check_claim(worker: object, max: object, wait: object) -> None:
    """Check a claim request's worker, ``max`` (1-1000) and ``wait`` (0-60 s).

    Raises:
        InvalidField: ``invalid_parameter``, with the field's path.
    """
    check_worker(worker)
    if isinstance(max, bool) or not isinstance(max, int) or not 1 <= max <= MAX_CLAIMS:
        raise InvalidField(f"max must be 1 to {MAX_CLAIMS}", code="invalid_parameter", path="$.max")
    if not is_seconds(wait, MAX_WAIT):
        raise InvalidField(
            f"wait must be 0 to {MAX_WAIT:.0f} seconds", code="invalid_parameter", path="$.wait"
        )


class Settles(Protocol):
    """What settles a held claim (a :class:`~consumers.shared.SharedConsumer`)."""

    async def ack(self, worker: str, claims: Sequence[str]) -> int: ...

    async def nack(self, worker: str, claims: Sequence[str], delay: float = 0.0) -> int: ...

    async def in_progress(self, worker: str, claims: Sequence[str]) -> datetime: ...
