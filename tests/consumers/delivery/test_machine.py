"""The per-endpoint delivery machine, without an event loop (plain functions, no I/O).

``test_every_row_of_the_outcome_table`` walks the retry/outcome table of
docs/webhooks.md row by row through the machine; the other tests pin the
machine's claim window, in-flight limit, pacing, health and shutdown rules.
"""

from __future__ import annotations

import pytest

from consumers.delivery.machine import (
    WINDOW,
    Action,
    Claim,
    DeliveryMachine,
    Disable,
    Record,
    Send,
    SetHealth,
)
from consumers.delivery.machine_rules import (
    apply_finished,
    gone_result,
    kind_failed,
    select_claimable,
)
from consumers.delivery.model import Delivery, Endpoint, Finished, Ordering, SecretEntry
from consumers.delivery.retry import AttemptResult, Classification, ErrorKind, RetryPolicy, classify
from tests.consumers.delivery.rows import delivery_row

NOW = 1_700_000_000.0
SHORT = RetryPolicy.preset("short")  # 1 s, 2 s, 4 s; 4 attempts; no jitter


def endpoint(**changes: object) -> Endpoint:
    fields: dict[str, object] = {"id": "ep", "url": "https://example.com/hook", "retry": SHORT}
    fields.update(changes)
    return Endpoint(**fields)  # type: ignore[arg-type]


def row(seq: int, *, key: str | None = None, status: str = "in_flight", **more: object) -> Delivery:
    return delivery_row(seq, key=key, status=status, **{"next_attempt_at": NOW, **more})


def answer(
    status: int | None = None,
    error: ErrorKind | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> AttemptResult:
    return AttemptResult(status, headers or {}, body, error, "detail", 0.01)


def running(machine: DeliveryMachine, rows: list[Delivery]) -> list[Send]:
    """Feed one claim of ``rows`` and return the sends the machine starts."""
    (claim,) = [a for a in machine.actions(NOW) if isinstance(a, Claim)]
    machine.claimed(rows, None, claim.limit)
    return [a for a in machine.actions(NOW) if isinstance(a, Send)]


def finish(
    machine: DeliveryMachine,
    delivery: Delivery,
    result: AttemptResult,
    verdict: Classification | None = None,
    now: float = NOW,
) -> tuple[Finished, list[Action]]:
    got = machine.attempt_finished(
        delivery,
        result,
        verdict or classify(result, now),
        started=now - 0.01,
        now=now,
        rand=0.5,
    )
    return got, machine.actions(now)


# -- the retry/outcome table of docs/webhooks.md, row by row --------------------------------

RETRY_1S = ("pending", NOW + 1.0, 1)
FINAL = ("failed", None, 1)
WAIT_30 = {"retry-after": "30"}

TABLE: list[tuple[str, AttemptResult, tuple[str, float | None, int], str]] = [
    ("2xx", answer(204), ("delivered", None, 1), "delivered"),
    ("timeout", answer(error="timeout"), RETRY_1S, "retry"),
    ("connection refused", answer(error="connect"), RETRY_1S, "retry"),
    ("connection reset", answer(error="reset"), RETRY_1S, "retry"),
    ("DNS failure", answer(error="dns"), RETRY_1S, "retry"),
    ("malformed answer", answer(error="protocol"), RETRY_1S, "retry"),
    ("5xx", answer(500), RETRY_1S, "retry"),
    ("503 with Retry-After", answer(503, headers=WAIT_30), ("pending", NOW + 30, 1), "retry"),
    ("502 ignores Retry-After", answer(502, headers=WAIT_30), RETRY_1S, "retry"),
    ("429 and Retry-After", answer(429, headers=WAIT_30), ("pending", NOW + 30, 0), "rate_limited"),
    ("429 without Retry-After", answer(429), ("pending", NOW + 1.0, 0), "rate_limited"),
    ("3xx", answer(302, headers={"location": "https://elsewhere"}), FINAL, "failed"),
    ("410 Gone", answer(410), FINAL, "disable"),
    ("other 4xx", answer(404), FINAL, "failed"),
    ("1xx", answer(101), FINAL, "failed"),
    ("SSRF guard", answer(error="unsafe_target"), FINAL, "failed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "result", "expected", "verdict"), TABLE, ids=[t[0] for t in TABLE]
)
def test_every_row_of_the_outcome_table(
    what: str, result: AttemptResult, expected: tuple[str, float | None, int], verdict: str
) -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    (send,) = running(machine, [row(1)])
    finished, actions = finish(machine, send.delivery, result)
    assert (finished.status, finished.next_attempt_at, finished.attempts) == expected
    assert finished.attempt is not None
    assert finished.attempt.verdict == verdict
    assert Record(finished) in actions
    disabled = [a for a in actions if isinstance(a, Disable)]
    if verdict == "disable":  # 410: failed, and the endpoint is disabled
        assert disabled == [Disable("HTTP 410 Gone: the receiver asked to stop")]
        assert machine.stopped
        assert not machine.endpoint.enabled
    else:
        assert not disabled
        assert not machine.stopped


def test_row_event_no_longer_in_the_log_is_final() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    (send,) = running(machine, [row(1)])
    finished, _ = finish(machine, send.delivery, gone_result(send.delivery))
    assert (finished.status, finished.next_attempt_at) == ("failed", None)
    assert finished.attempt is not None
    assert finished.attempt.error == "invalid: event events@1 is no longer in the log"


def test_row_internal_error_of_the_target_kind_retries_by_the_schedule() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    (send,) = running(machine, [row(1)])
    result, verdict = kind_failed("webhook", KeyError("x"), 0.002)
    finished, _ = finish(machine, send.delivery, result, verdict)
    assert (finished.status, finished.next_attempt_at) == ("pending", NOW + 1.0)
    assert finished.attempt is not None
    assert finished.attempt.error == "internal error in the 'webhook' target kind: KeyError"


def test_a_retry_after_the_last_attempt_fails_the_delivery() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    (send,) = running(machine, [row(1, attempts=3)])  # the 4th and last attempt
    finished, _ = finish(machine, send.delivery, answer(500))
    assert (finished.status, finished.attempts, finished.next_attempt_at) == ("failed", 4, None)


def test_a_manual_retry_gives_a_fresh_budget() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    (send,) = running(machine, [row(1, attempts=4, budget_start=4)])
    finished, _ = finish(machine, send.delivery, answer(500))
    assert (finished.status, finished.attempts) == ("pending", 5)


def test_429_waits_are_bounded_and_do_not_use_attempts() -> None:
    policy = RetryPolicy(schedule=(1,), max_rate_limited=2, jitter=0)
    machine = DeliveryMachine(endpoint(retry=policy), unfinished=1)
    (send,) = running(machine, [row(1, rate_limited=2)])
    finished, _ = finish(machine, send.delivery, answer(429))
    assert (finished.status, finished.attempts) == ("pending", 1)  # the wait is spent: a retry


def test_retry_after_is_capped_at_max_retry_after() -> None:
    policy = RetryPolicy(schedule=(1,), max_retry_after=60)
    machine = DeliveryMachine(endpoint(retry=policy), unfinished=1)
    (send,) = running(machine, [row(1)])
    finished, _ = finish(machine, send.delivery, answer(429, headers={"retry-after": "86400"}))
    assert finished.next_attempt_at == NOW + 60


def test_recorded_errors_and_snippets_never_hold_secrets() -> None:
    secret = "whsec_" + "A" * 40
    ep = endpoint(secrets=[SecretEntry(secret=secret, created=NOW)], headers={"X-Key": "k-12345"})
    machine = DeliveryMachine(ep, unfinished=1)
    (send,) = running(machine, [row(1)])
    body = f"bad key k-12345 and {secret}".encode()
    finished, _ = finish(machine, send.delivery, answer(400, body=body))
    assert finished.attempt is not None
    assert finished.attempt.response == "bad key [redacted] and [redacted]"


# -- health: failure streaks and auto-disable ----------------------------------------------


def test_continuous_failure_for_disable_after_disables_the_endpoint() -> None:
    machine = DeliveryMachine(endpoint(disable_after=60.0), unfinished=2)
    first, second = running(machine, [row(1), row(2)])
    _, actions = finish(machine, first.delivery, answer(500))
    assert SetHealth(NOW) in actions
    assert machine.endpoint.failing_since == NOW
    _, actions = finish(machine, second.delivery, answer(500), now=NOW + 61)
    (disable,) = [a for a in actions if isinstance(a, Disable)]
    # It read "for 0.02 h"; an endpoint with disable_after = 3 said "for 0.00 h".
    assert disable.reason == "failing continuously for 61 s (last error: HTTP 500)"
    assert machine.stopped
    assert machine.endpoint.disabled_reason == disable.reason


@pytest.mark.parametrize(
    ("seconds", "said"), [(3.2, "3 s"), (119, "119 s"), (600, "10 min"), (432_000, "120.0 h")]
)
def test_the_disable_reason_says_how_long_in_a_readable_unit(seconds: float, said: str) -> None:
    machine = DeliveryMachine(endpoint(disable_after=1.0), unfinished=2)
    first, second = running(machine, [row(1), row(2)])
    finish(machine, first.delivery, answer(500))
    _, actions = finish(machine, second.delivery, answer(500), now=NOW + seconds)
    (disable,) = [a for a in actions if isinstance(a, Disable)]
    assert disable.reason == f"failing continuously for {said} (last error: HTTP 500)"


def test_a_delivered_attempt_ends_the_streak_and_429s_do_not_count() -> None:
    machine = DeliveryMachine(endpoint(failing_since=NOW - 10), unfinished=2)
    first, second = running(machine, [row(1), row(2)])
    _, actions = finish(machine, first.delivery, answer(429))
    assert not [a for a in actions if isinstance(a, SetHealth | Disable)]
    _, actions = finish(machine, second.delivery, answer(200))
    assert SetHealth(None) in actions
    assert machine.endpoint.failing_since is None


def test_disable_after_none_never_disables() -> None:
    machine = DeliveryMachine(endpoint(disable_after=None, failing_since=NOW - 1e6), unfinished=1)
    (send,) = running(machine, [row(1)])
    _, actions = finish(machine, send.delivery, answer(500))
    assert not [a for a in actions if isinstance(a, SetHealth | Disable)]
    assert not machine.stopped


def test_a_healthy_endpoint_that_delivers_stores_nothing_about_health() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    (send,) = running(machine, [row(1)])
    _, actions = finish(machine, send.delivery, answer(200))
    assert [type(a) for a in actions] == [Record]


# -- claims, the in-flight limit, pacing ----------------------------------------------------


def test_claims_a_window_of_max_in_flight_rows_per_slot_and_sends_max_in_flight() -> None:
    machine = DeliveryMachine(endpoint(max_in_flight=3), unfinished=100)
    window = WINDOW * 3
    assert machine.actions(NOW) == [Claim(window)]
    assert machine.actions(NOW) == []  # one claim at a time
    machine.claimed([row(i) for i in range(window)], None, window)
    sends = machine.actions(NOW)
    assert [a.delivery.seq for a in sends if isinstance(a, Send)] == [0, 1, 2]
    assert not [a for a in sends if isinstance(a, Claim)]  # the window is still full
    for seq in range(window // 2 - 3):  # each finished attempt starts the next one
        _, actions = finish(machine, row(seq), answer(200))
        assert [a.delivery.seq for a in actions if isinstance(a, Send)] == [seq + 3]
        assert not [a for a in actions if isinstance(a, Claim)]
    _, actions = finish(machine, row(window // 2 - 3), answer(200))
    # below half the window: claim what fills it again
    assert Claim(window // 2 + 1) in actions


def test_the_window_doubles_when_slots_run_dry_while_a_claim_is_out() -> None:
    machine = DeliveryMachine(endpoint(max_in_flight=2), unfinished=100)
    window = WINDOW * 2
    assert [a.delivery.seq for a in running(machine, [row(i) for i in range(window)])] == [0, 1]
    claims = []
    for seq in range(window - 1):  # the claim of the 3rd finish is still out at the 7th
        claims += [a for a in finish(machine, row(seq), answer(200))[1] if isinstance(a, Claim)]
    assert claims == [Claim(window - 3)]  # the same window while the slots never wait
    machine.claimed([row(i) for i in range(100, 100 + window - 3)], None, window - 3)
    (again,) = [a for a in machine.actions(NOW) if isinstance(a, Claim)]
    # twice the window, less the rows held (one of the new rows went to the free slot)
    assert again == Claim(2 * window - (window - 4))


def test_a_short_claim_means_nothing_more_until_something_happens() -> None:
    machine = DeliveryMachine(endpoint(max_in_flight=2), unfinished=1)
    (send,) = running(machine, [row(1)])  # asked for a window, got 1
    _, actions = finish(machine, send.delivery, answer(200))
    assert not [a for a in actions if isinstance(a, Claim)]
    machine.recorded([actions[0].finished])  # type: ignore[union-attr]
    assert machine.unfinished == 0
    assert machine.actions(NOW) == [Claim(WINDOW * 2)]  # the outcome is stored: look again


def test_a_row_due_later_wakes_the_machine_at_its_time() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    machine.actions(NOW)
    machine.claimed([], NOW + 5, 20)
    assert machine.wake_at == NOW + 5
    assert machine.actions(NOW + 4) == []
    assert machine.actions(NOW + 5) == [Claim(WINDOW * 10)]


def test_ordered_mode_sends_one_at_a_time() -> None:
    machine = DeliveryMachine(endpoint(ordering="ordered", max_in_flight=10), unfinished=2)
    assert machine.actions(NOW) == [Claim(1)]
    machine.claimed([row(1)], None, 1)
    assert [type(a) for a in machine.actions(NOW)] == [Send]
    machine.enqueued(1)
    assert machine.actions(NOW) == []  # the next row waits for this one's outcome
    finished, actions = finish(machine, row(1), answer(200))
    assert actions == [Record(finished)]  # ... to be stored
    machine.recorded([finished])
    assert machine.actions(NOW) == [Claim(1)]


def test_the_rate_limit_paces_sends_by_the_time_it_is_given() -> None:
    machine = DeliveryMachine(endpoint(rate_limit=2.0, max_in_flight=10), unfinished=5)
    sends = running(machine, [row(i) for i in range(5)])
    assert len(sends) == 2  # the burst
    assert machine.wake_at == pytest.approx(NOW + 0.5)
    assert machine.actions(NOW + 0.25) == []
    assert [type(a) for a in machine.actions(NOW + 0.5)] == [Send]


def test_a_failed_claim_is_tried_again_at_the_time_given() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    machine.actions(NOW)
    machine.claim_failed(NOW + 0.5)
    assert machine.actions(NOW) == []
    assert machine.wake_at == NOW + 0.5
    assert machine.actions(NOW + 0.5) == [Claim(WINDOW * 10)]


def test_the_feeder_pauses_at_max_backlog_and_resumes_when_rows_finish() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=0, max_backlog=2)
    machine.enqueued(2)
    assert not machine.may_feed
    (send, _) = running(machine, [row(1), row(2)])
    finished, _ = finish(machine, send.delivery, answer(200))
    machine.recorded([finished])
    assert machine.may_feed
    machine.counted(5)  # another process enqueued more
    assert not machine.may_feed
    machine.acted("skip")
    machine.acted("skip")
    machine.acted("skip")
    machine.acted("skip")
    assert machine.may_feed
    assert machine.unfinished == 1


def test_stop_releases_claimed_rows_and_cancelled_attempts() -> None:
    machine = DeliveryMachine(endpoint(max_in_flight=1), unfinished=2)
    (send,) = running(machine, [row(1), row(2)])
    machine.stop(NOW + 1)
    machine.attempt_cancelled(send.delivery, NOW + 1)
    records = [a.finished for a in machine.actions(NOW + 1) if isinstance(a, Record)]
    assert [(f.delivery_id, f.status, f.attempt, f.next_attempt_at) for f in records] == [
        ("msg_2", "pending", None, NOW + 1),
        ("msg_1", "pending", None, NOW + 1),
    ]
    machine.enqueued(1)
    assert machine.actions(NOW + 2) == []  # stopped: no claims, no sends
    machine.claimed([row(3)], None, 1)  # a claim that was under way is given back
    assert [a.finished.delivery_id for a in machine.actions(NOW + 2) if isinstance(a, Record)] == [
        "msg_3"
    ]


# -- the row rules the ledgers apply -------------------------------------------------------


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [("concurrent", [2, 3, 4, 5]), ("ordered", []), ("per-key", [3, 5])],
)
def test_the_claim_rule_of_each_ordering(ordering: Ordering, expected: list[int]) -> None:
    rows = [
        row(1, key="a"),  # in flight: blocks "a" (and everything in ordered mode)
        row(2, key="a", status="pending"),
        row(3, key="b", status="pending"),
        row(4, key="b", status="pending"),
        row(5, status="pending"),
        row(6, key="c", status="pending", next_attempt_at=NOW + 9),
    ]
    got = select_claimable(rows, ordering, NOW, 10)
    assert [d.seq for d in got.rows] == expected
    assert got.wake_at == (None if ordering == "ordered" else NOW + 9)


def test_a_recorded_outcome_changes_only_an_in_flight_row() -> None:
    machine = DeliveryMachine(endpoint(), unfinished=1)
    (send,) = running(machine, [row(1)])
    finished, _ = finish(machine, send.delivery, answer(500))
    after = apply_finished(send.delivery, finished)
    assert (after.status, after.attempts, after.last_status, after.last_error) == (
        "pending",
        1,
        500,
        "HTTP 500",
    )
    skipped = row(1, status="failed")
    assert apply_finished(skipped, finished) is skipped
