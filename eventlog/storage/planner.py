"""Sans-I/O planning of a group-committed write, shared by every backend.

Given the append requests of one transaction, the streams' current heads and
the offsets of producer-given ids that already exist, :func:`plan_appends`
decides each request's outcome (idempotent duplicate, expected-offset
conflict, or new offsets) and the rows to insert. Backends do only the I/O:
look up heads and ids, call this, insert ``plan.rows``, store ``plan.heads``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from eventlog.errors import ExpectedOffsetMismatch
from eventlog.storage.base import Appended, AppendOutcome, AppendRequest, PendingEvent

__all__ = [
    "AppendPlan",
    "Row",
    "first_offsets",
    "generated_requests",
    "given_ids",
    "plan_appends",
]


class Row(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One event to insert: its stream, assigned offset, and content."""

    stream: str
    offset: int
    event: PendingEvent


class AppendPlan(msgspec.Struct, kw_only=True):
    """What one transaction writes.

    Attributes:
        rows: Events to insert, in offset order per stream.
        outcomes: One per request, in request order.
        heads: New next offset of every stream that gains rows.
        added_bytes: Payload bytes added per stream.
    """

    rows: list[Row]
    outcomes: list[AppendOutcome]
    heads: dict[str, int]
    added_bytes: dict[str, int]


def given_ids(requests: Iterable[AppendRequest]) -> dict[str, set[str]]:
    """Per stream, the producer-given ids a backend must look up before planning."""
    wanted: dict[str, set[str]] = {}
    for request in requests:
        for event in request.events:
            if event.id_given:
                wanted.setdefault(request.stream, set()).add(event.id)
    return wanted


def plan_appends(
    requests: Sequence[AppendRequest],
    heads: Mapping[str, int],
    existing: Mapping[tuple[str, str], int],
) -> AppendPlan:
    """Plan the requests of one transaction.

    Args:
        requests: In arrival order.
        heads: Next offset of each stream named in the requests (missing: 0).
        existing: ``(stream, id) -> offset`` of given ids already stored.

    A request whose events all exist is an idempotent retry: it gets the
    original offsets and writes nothing, whatever its ``expected_offset``.
    Otherwise ``expected_offset``, if given, must equal the stream's head, and
    the events whose ids are new get consecutive offsets; ids that repeat
    (stored, or earlier in this transaction) get the offset they already have.
    """
    next_offsets: dict[str, int] = {}
    seen: dict[tuple[str, str], int] = dict(existing)
    rows: list[Row] = []
    outcomes: list[AppendOutcome] = []
    added_bytes: dict[str, int] = {}
    for request in requests:
        stream = request.stream
        head = next_offsets.get(stream)
        if head is None:
            head = heads.get(stream, 0)
        events = request.events
        if len(events) == 1 and request.expected_offset is None and not events[0].id_given:
            # Fast path for the most common request: one event with a generated id.
            event = events[0]
            rows.append(Row(stream, head, event))
            outcomes.append(Appended(offsets=[head], written=1, next_offset=head + 1))
            next_offsets[stream] = head + 1
            added_bytes[stream] = added_bytes.get(stream, 0) + len(event.data)
            continue
        if request.expected_offset is None and not any(e.id_given for e in events):
            # Generated ids are new by construction: no look-ups needed.
            n = len(events)
            rows.extend([Row(stream, head + i, e) for i, e in enumerate(events)])
            outcomes.append(
                Appended(offsets=list(range(head, head + n)), written=n, next_offset=head + n)
            )
            next_offsets[stream] = head + n
            added_bytes[stream] = added_bytes.get(stream, 0) + sum([len(e.data) for e in events])
            continue
        known = [seen.get((stream, e.id)) if e.id_given else None for e in request.events]
        if all(offset is not None for offset in known):
            outcomes.append(
                Appended(offsets=[o for o in known if o is not None], written=0, next_offset=head)
            )
            continue
        if request.expected_offset is not None and request.expected_offset != head:
            outcomes.append(ExpectedOffsetMismatch(stream, request.expected_offset, head))
            continue
        offsets: list[int] = []
        written = 0
        nbytes = 0
        for event, offset in zip(request.events, known, strict=True):
            if offset is None and event.id_given:
                # Repeated within this very request.
                offset = seen.get((stream, event.id))
            if offset is None:
                offset = head
                head += 1
                written += 1
                nbytes += len(event.data)
                rows.append(Row(stream, offset, event))
                seen[(stream, event.id)] = offset
            offsets.append(offset)
        next_offsets[stream] = head
        added_bytes[stream] = added_bytes.get(stream, 0) + nbytes
        outcomes.append(Appended(offsets=offsets, written=written, next_offset=head))
    heads_out = {s: h for s, h in next_offsets.items() if h != heads.get(s, 0)}
    return AppendPlan(rows=rows, outcomes=outcomes, heads=heads_out, added_bytes=added_bytes)


def generated_requests(streams: Mapping[str, Sequence[PendingEvent]]) -> list[AppendRequest]:
    """One request per stream for :func:`~eventlog.storage.derived.append_generated`'s
    events, when the backend writes them through its general :meth:`Storage.append`
    (then :func:`first_offsets` gives the answer)."""
    return [AppendRequest(stream=stream, events=list(events)) for stream, events in streams.items()]


def first_offsets(
    requests: Sequence[AppendRequest], outcomes: Sequence[AppendOutcome]
) -> dict[str, int]:
    """The first offset each of :func:`generated_requests`' requests was given."""
    firsts: dict[str, int] = {}
    for request, outcome in zip(requests, outcomes, strict=True):
        if not isinstance(outcome, Appended):  # no expected offset was asked for
            raise outcome
        firsts[request.stream] = outcome.offsets[0]
    return firsts
