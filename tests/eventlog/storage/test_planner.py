"""The append planner: offsets after each stream's head, idempotent retries, conflicts."""

from __future__ import annotations

from eventlog.errors import ExpectedOffsetMismatch
from eventlog.storage.base import Appended, AppendRequest, PendingEvent
from eventlog.storage.planner import given_ids, plan_appends


def ev(id: str = "g", given: bool = False, size: int = 1) -> PendingEvent:
    return PendingEvent(id=id, id_given=given, type="t", key=None, headers={}, data=b"x" * size)


def test_plan_assigns_offsets_after_each_streams_head() -> None:
    plan = plan_appends(
        [AppendRequest(stream="a", events=[ev(), ev()]), AppendRequest(stream="b", events=[ev()])],
        {"a": 10},
        {},
    )
    assert [(r.stream, r.offset) for r in plan.rows] == [("a", 10), ("a", 11), ("b", 0)]
    assert plan.heads == {"a": 12, "b": 1}
    assert plan.added_bytes == {"a": 2, "b": 1}


def test_plan_retry_of_existing_ids_writes_nothing_even_with_stale_expected_offset() -> None:
    request = AppendRequest(stream="s", events=[ev("k", True)], expected_offset=0)
    plan = plan_appends([request], {"s": 5}, {("s", "k"): 3})
    assert plan.rows == []
    assert plan.outcomes == [Appended(offsets=[3], written=0, next_offset=5)]
    assert plan.heads == {}


def test_plan_conflict_leaves_other_requests_alone() -> None:
    plan = plan_appends(
        [
            AppendRequest(stream="s", events=[ev()], expected_offset=1),
            AppendRequest(stream="s", events=[ev()]),
        ],
        {"s": 2},
        {},
    )
    assert isinstance(plan.outcomes[0], ExpectedOffsetMismatch)
    assert plan.outcomes[1] == Appended(offsets=[2], written=1, next_offset=3)


def test_given_ids_lists_only_producer_chosen_ids() -> None:
    requests = [
        AppendRequest(stream="s", events=[ev("a", True), ev("gen")]),
        AppendRequest(stream="t", events=[ev("b", True)]),
    ]
    assert given_ids(requests) == {"s": {"a"}, "t": {"b"}}
