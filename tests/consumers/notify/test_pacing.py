"""The pacer (pure): when a target may be sent to next, from 429s and X-RateLimit headers."""

from __future__ import annotations

from consumers.delivery.retry import AttemptResult
from consumers.notify.pacing import Pacer, target_of

T = "https://discord.com/api/webhooks/1/tok"
OTHER = "https://discord.com/api/webhooks/2/tok"


def answer(status: int, body: bytes = b"", **headers: str) -> AttemptResult:
    return AttemptResult(
        status, {k.replace("_", "-"): v for k, v in headers.items()}, body, None, "", 0.0
    )


def test_target_ignores_the_query() -> None:
    assert target_of(T + "?wait=true&thread_id=5") == T


def test_a_429_holds_the_target_for_the_json_retry_after_exactly() -> None:
    pacer = Pacer()
    pacer.observe(T, answer(429, b'{"retry_after": 0.75, "global": false}', retry_after="1"), 100.0)
    assert pacer.delay(T, 100.0) == 0.75
    assert pacer.delay(T, 100.5) == 0.25
    assert pacer.delay(T, 100.75) == 0.0
    assert pacer.delay(OTHER, 100.0) == 0.0


def test_a_429_without_a_body_uses_retry_after_and_a_bare_429_backs_off() -> None:
    pacer = Pacer()
    pacer.observe(T, answer(429, retry_after="3"), 10.0)
    assert pacer.delay(T, 10.0) == 3.0
    bare = Pacer()
    bare.observe(T, answer(429), 10.0)
    assert bare.delay(T, 10.0) == 1.0


def test_a_global_limit_holds_every_target_on_the_host() -> None:
    pacer = Pacer()
    pacer.observe(T, answer(429, b'{"retry_after": 2, "global": true}'), 0.0)
    assert pacer.delay(OTHER, 1.0) == 1.0
    assert pacer.delay("https://hooks.slack.com/services/x", 1.0) == 0.0


def test_an_exhausted_bucket_waits_for_its_reset() -> None:
    pacer = Pacer()
    pacer.observe(T, answer(200, x_ratelimit_remaining="1", x_ratelimit_reset_after="0.5"), 0.0)
    assert pacer.delay(T, 0.0) == 0.0
    pacer.observe(T, answer(200, x_ratelimit_remaining="0", x_ratelimit_reset_after="0.5"), 0.0)
    assert pacer.delay(T, 0.1) == 0.4


def test_nonsense_headers_are_ignored_and_waits_are_capped() -> None:
    pacer = Pacer()
    pacer.observe(T, answer(200, x_ratelimit_remaining="0", x_ratelimit_reset_after="nan"), 0.0)
    assert pacer.delay(T, 0.0) == 0.0
    pacer.observe(T, answer(429, b'{"retry_after": 1e12}'), 0.0)
    assert pacer.delay(T, 0.0) == 6 * 3600.0
