"""The pure rules of shared consumers: no event loop, no clock, no database."""

from __future__ import annotations

import math

import msgspec
import pytest

from consumers.delivery.ledger import Rewrite
from consumers.delivery.model import Delivery
from consumers.shared import rules
from consumers.shared.errors import (
    AlreadyAcked,
    ClaimExpired,
    ClaimNotFound,
    ClaimNotHeld,
    InvalidDelay,
)
from consumers.shared.rules import ClaimId
from tests.consumers.delivery.rows import delivery_row

NOW = 1_000.0
WAIT = 30.0


def row(seq: int, key: str | None = None, **fields: object) -> Delivery:
    return delivery_row(
        seq, endpoint_id="shared:c", stream="s", key=key, **{"next_attempt_at": NOW, **fields}
    )


def claim(
    rows: list[Delivery], limit: int = 10, *, by_key: bool = False, max_deliver: int = 3
) -> Rewrite[rules.ClaimPlan]:
    return rules.claim(
        rows, now=NOW, limit=limit, ack_wait=WAIT, max_deliver=max_deliver, ordered_by_key=by_key
    )


def held(seq: int, worker: str = "w1", attempt: int = 1, key: str | None = None) -> Delivery:
    return row(seq, key, status="in_flight", attempts=attempt, next_attempt_at=NOW + 5)


def test_claim_hands_out_due_rows_in_seq_order_up_to_the_limit() -> None:
    decision = claim([row(1), row(2), row(3)], limit=2)
    assert [(d.offset, d.status, d.attempts, d.next_attempt_at) for d in decision.rows] == [
        (1, "in_flight", 1, NOW + WAIT),
        (2, "in_flight", 1, NOW + WAIT),
    ]
    assert decision.result.claimed == list(decision.rows)
    assert decision.result.active == 3


def test_claim_redelivers_expired_claims_and_wakes_at_the_next_expiry_or_delay() -> None:
    expired = row(1, status="in_flight", attempts=1, next_attempt_at=NOW)
    live = row(2, status="in_flight", attempts=1, next_attempt_at=NOW + 7)
    delayed = row(3, next_attempt_at=NOW + 4)
    decision = claim([expired, live, delayed])
    assert [(d.offset, d.attempts) for d in decision.rows] == [(1, 2)]
    assert decision.result.wake_at == NOW + 4


def test_claim_parks_rows_handed_out_max_deliver_times_instead_of_claiming_them() -> None:
    worn = row(1, status="in_flight", attempts=3, next_attempt_at=NOW - 1)
    nacked = row(2, attempts=3)
    decision = claim([worn, nacked, row(3)], max_deliver=3)
    assert [d.offset for d in decision.rows] == [3]
    assert decision.result.park == [worn, nacked]
    marked = rules.parked([worn, nacked, row(3)], decision.result.park, NOW)
    assert [(d.offset, d.status, d.last_error) for d in marked.rows] == [
        (1, "failed", "max_deliver"),
        (2, "failed", "max_deliver"),
    ]


def test_parked_leaves_rows_that_changed_since_they_were_chosen() -> None:
    worn = row(1, attempts=3)
    since = msgspec.structs.replace(worn, status="delivered")
    assert rules.parked([since], [worn], NOW).rows == []


def test_per_key_order_hands_out_only_the_oldest_unfinished_event_of_each_key() -> None:
    rows = [held(1, key="a"), row(2, key="a"), row(3, key="b"), row(4, key="b"), row(5), row(6)]
    decision = claim(rows, by_key=True)
    assert [d.offset for d in decision.rows] == [3, 5, 6]
    # without per-key order everything pending goes
    assert [d.offset for d in claim(rows).rows] == [2, 3, 4, 5, 6]


def test_per_key_order_is_kept_by_a_delayed_head_and_by_a_head_about_to_be_parked() -> None:
    rows = [row(1, key="a", next_attempt_at=NOW + 9), row(2, key="a"), row(3, key="b", attempts=3)]
    decision = claim(rows, by_key=True)
    assert decision.rows == []
    assert [d.offset for d in decision.result.park] == [3]
    assert decision.result.wake_at == NOW + 9


def test_ack_marks_held_claims_delivered() -> None:
    d = held(1)
    decision = rules.ack([d], [str(ClaimId.of(d, "w1"))], worker="w1", now=NOW)
    assert decision.result == 1
    assert [(x.status, x.next_attempt_at) for x in decision.rows] == [("delivered", None)]


@pytest.mark.parametrize(
    ("claim_id", "state", "error"),
    [
        ("nonsense", {}, ClaimNotFound),
        ("msg_9.1.w1", {}, ClaimNotFound),  # no such row
        ("msg_1.2.w1", {}, ClaimNotFound),  # never handed out a second time
        ("msg_1.1.w2", {}, ClaimNotHeld),
        ("msg_1.1.w1", {"status": "delivered"}, AlreadyAcked),
        ("msg_1.1.w1", {"next_attempt_at": NOW}, ClaimExpired),  # ack_wait passed
        ("msg_1.1.w1", {"status": "pending"}, ClaimExpired),  # nacked
        ("msg_1.1.w1", {"attempts": 2}, ClaimExpired),  # redelivered since
        ("msg_1.1.w1", {"status": "failed"}, ClaimExpired),  # parked
    ],
)
def test_settling_a_claim_that_is_not_held_names_why(
    claim_id: str, state: dict[str, object], error: type[Exception]
) -> None:
    d = msgspec.structs.replace(held(1), **state)
    for settle in (
        lambda: rules.ack([d], [claim_id], worker="w1", now=NOW),
        lambda: rules.nack([d], [claim_id], worker="w1", now=NOW, delay=0),
        lambda: rules.extend([d], [claim_id], worker="w1", now=NOW, ack_wait=WAIT),
    ):
        with pytest.raises(error, match="claim"):
            settle()


def test_a_request_with_one_bad_claim_changes_nothing_and_names_that_claim() -> None:
    good, bad = held(1), held(2)
    with pytest.raises(ClaimNotHeld, match=r"msg_2\.1\.w2"):
        rules.ack([good, bad], ["msg_1.1.w1", "msg_2.1.w2"], worker="w1", now=NOW)
    with pytest.raises(AlreadyAcked):  # the same claim twice in one request
        rules.ack([good], ["msg_1.1.w1", "msg_1.1.w1"], worker="w1", now=NOW)


def test_nack_gives_claims_back_after_the_delay_and_extend_pushes_the_expiry() -> None:
    d = held(1)
    back = rules.nack([d], ["msg_1.1.w1"], worker="w1", now=NOW, delay=12.5)
    assert [(x.status, x.next_attempt_at, x.attempts) for x in back.rows] == [
        ("pending", NOW + 12.5, 1)
    ]
    longer = rules.extend([d], ["msg_1.1.w1"], worker="w1", now=NOW + 1, ack_wait=WAIT)
    assert longer.result == NOW + 1 + WAIT
    assert [(x.status, x.next_attempt_at) for x in longer.rows] == [("in_flight", NOW + 1 + WAIT)]


@pytest.mark.parametrize("delay", [-1, 86_400.5, math.inf, math.nan, "5", True, None])
def test_absurd_nack_delays_are_refused(delay: object) -> None:
    with pytest.raises(InvalidDelay) as caught:
        rules.check_delay(delay)
    assert caught.value.json_path == "$.delay"


def test_claim_ids_round_trip_and_keep_dots_in_worker_names() -> None:
    cid = ClaimId("msg_abc", 3, "host.1.worker")
    assert ClaimId.parse(str(cid)) == cid
    assert rules.check_delay(0) == 0.0
    assert rules.check_delay(86_400) == 86_400.0
