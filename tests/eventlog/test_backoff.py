"""The one backoff policy: pure, no event loop, randomness passed in."""

from __future__ import annotations

import pytest

from consumers.delivery.pump import SUPERVISE_BACKOFF
from consumers.delivery.recorder import RETRY
from consumers.delivery.retry import DEFAULT_SCHEDULE, RetryPolicy
from eventlog.backoff import Backoff
from eventlog.storage.postgres_listen import RECONNECT_BACKOFF
from server.cli.client import retry_delay


def test_exponential_ceiling_doubles_up_to_the_cap() -> None:
    policy = Backoff(base=0.1, cap=5.0, jitter=0)
    assert [policy.delay(n) for n in range(1, 9)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    )


def test_a_very_long_outage_stays_at_the_cap_without_overflow() -> None:
    assert Backoff(base=0.25, cap=5.0, jitter=0).delay(100_000) == 5.0
    assert Backoff(base=0.25, cap=5.0, factor=10.0, jitter=0).delay(10**9) == 5.0


def test_full_jitter_draws_from_zero_to_the_ceiling() -> None:
    policy = Backoff(base=1.0, cap=8.0)
    assert policy.delay(3, 0.0) == 0.0
    assert policy.delay(3, 0.5) == 2.0
    assert policy.delay(3, lambda: 0.999) == pytest.approx(3.996)


def test_fractional_jitter_spreads_around_the_ceiling() -> None:
    policy = Backoff(steps=(100.0,), jitter=0.2)
    assert policy.delay(1, 0.0) == pytest.approx(80.0)
    assert policy.delay(1, 0.5) == pytest.approx(100.0)
    assert policy.delay(1, 0.999999) == pytest.approx(120.0, rel=1e-5)


def test_steps_repeat_the_last_step_past_their_end() -> None:
    policy = Backoff(steps=(1.0, 2.0, 4.0), jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_zero_or_negative_failures_count_as_the_first() -> None:
    policy = Backoff(steps=(1.0, 2.0), jitter=0)
    assert policy.delay(0) == policy.delay(-3) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": -1.0},
        {"cap": float("nan")},
        {"factor": 0.5},
        {"steps": (1.0, -2.0)},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_every_retry_loop_uses_the_one_policy() -> None:
    """The five waits after a failure are all :class:`Backoff`, each as documented."""
    assert RetryPolicy().backoff == Backoff(steps=DEFAULT_SCHEDULE, jitter=0.2)
    assert RetryPolicy.preset("short").backoff.delay(2, 0.7) == 2.0
    assert [RETRY.delay(n) for n in (1, 2, 50)] == [0.5, 0.5, 0.5]
    assert RECONNECT_BACKOFF.delay(1) == 0.1
    assert RECONNECT_BACKOFF.delay(60) == 5.0
    assert [SUPERVISE_BACKOFF.delay(n) for n in (1, 2, 99)] == pytest.approx([0.1, 0.2, 5.0])
    assert [retry_delay(n) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
