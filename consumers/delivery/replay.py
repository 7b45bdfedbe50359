"""Replays (:meth:`~consumers.delivery.engine.DeliveryEngine.replay`): their errors and result."""

from __future__ import annotations

from dataclasses import dataclass

from eventlog.errors import InvalidInput, NotFound

__all__ = ["InvalidRange", "ReplayResult", "UnknownOffset"]


class UnknownOffset(NotFound):
    """A replay range names an offset the stream does not have."""

    code = "offset_not_found"


class InvalidRange(InvalidInput):
    """A replay range is empty or inverted."""

    code = "invalid_range"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did (or, with ``dry_run``, would do)."""

    from_offset: int
    to_offset: int
    scanned: int
    matched: int
    dry_run: bool
