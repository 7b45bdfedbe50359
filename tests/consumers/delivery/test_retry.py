"""Retry schedules, Retry-After, the outcome table and the token bucket (no event loop).

What a verdict makes of a delivery, and health, are the machine's (test_machine.py)."""

from __future__ import annotations

import email.utils

import pytest

from consumers.delivery.retry import (
    DEFAULT_SCHEDULE,
    AttemptResult,
    ErrorKind,
    RetryPolicy,
    classify,
    parse_retry_after,
)
from eventlog.ratelimit import TokenBucket

NOW = 1_700_000_000.0


def result(
    status: int | None = None, error: ErrorKind | None = None, retry_after: str | None = None
) -> AttemptResult:
    headers = {} if retry_after is None else {"retry-after": retry_after}
    return AttemptResult(status, headers, b"", error, "detail", 0.01)


def test_default_schedule_spans_about_a_day() -> None:
    total = sum(DEFAULT_SCHEDULE)
    assert 20 * 3600 <= total <= 30 * 3600
    assert DEFAULT_SCHEDULE[0] < 60  # seconds first, then minutes, then hours
    assert DEFAULT_SCHEDULE[-1] >= 3600
    assert RetryPolicy().attempts == len(DEFAULT_SCHEDULE) + 1


def test_short_preset_retries_after_1_2_and_4_seconds() -> None:
    policy = RetryPolicy.preset("short")
    assert [policy.delay(n, 0.5) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert policy.attempts == 4


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(schedule=(100,), jitter=0.2)
    assert policy.delay(1, 0.0) == pytest.approx(80)
    assert policy.delay(1, 0.999999) == pytest.approx(120, rel=1e-5)
    assert policy.delay(5, 0.5) == pytest.approx(100)  # past the end: the last step again


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schedule": (-1,)},
        {"schedule": (float("nan"),)},
        {"schedule": (10 * 86400,)},
        {"schedule": tuple([1.0] * 51)},
        {"max_attempts": 0},
        {"max_attempts": 1000},
        {"jitter": 2.0},
        {"schedule": (), "max_attempts": 3},
    ],
)
def test_absurd_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("got", "verdict"),
    [
        (result(200), "delivered"),
        (result(204), "delivered"),
        (result(301), "failed"),
        (result(302), "failed"),
        (result(400), "failed"),
        (result(401), "failed"),
        (result(404), "failed"),
        (result(410), "disable"),
        (result(429), "rate_limited"),
        (result(500), "retry"),
        (result(502), "retry"),
        (result(503), "retry"),
        (result(error="timeout"), "retry"),
        (result(error="connect"), "retry"),
        (result(error="dns"), "retry"),
        (result(error="reset"), "retry"),
        (result(error="protocol"), "retry"),
        (result(error="unsafe_target"), "failed"),
        (result(error="invalid"), "failed"),
    ],
)
def test_outcome_table(got: AttemptResult, verdict: str) -> None:
    assert classify(got, NOW).verdict == verdict


def test_retry_after_is_read_as_seconds_or_http_date() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(email.utils.formatdate(NOW + 30, usegmt=True), NOW) == 30
    assert parse_retry_after(email.utils.formatdate(NOW - 30, usegmt=True), NOW) is None
    assert parse_retry_after("0", NOW) is None  # no wait: the schedule's
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("nan", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert classify(result(503, retry_after="7"), NOW).retry_after == 7
    assert classify(result(500, retry_after="7"), NOW).retry_after is None


def test_token_bucket_paces_to_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=2)
    waits = [bucket.take(NOW) for _ in range(4)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == [pytest.approx(0.1)] * 2  # a refused take takes nothing
    assert bucket.take(NOW + 0.05) == pytest.approx(0.05)
    assert bucket.take(NOW + 0.2) == 0.0
