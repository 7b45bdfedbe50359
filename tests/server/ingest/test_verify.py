"""Signature schemes, pure: signed as each sender signs, checked by server.ingest.verify."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook

from server.ingest.verify import (
    SignatureError,
    decode_standard_secret,
    parse_stripe_header,
    verify_bearer,
    verify_github,
    verify_slack,
    verify_standard,
    verify_stripe,
)
from tests.server.ingest.senders import (
    GITHUB_SECRET,
    SLACK_SECRET,
    STRIPE_SECRET,
    SW_SECRET,
    github_headers,
    slack_headers,
    standard_headers,
    stripe_headers,
)

BODY = b'{"id":"evt_1","type":"order.created","data":{"order":{"id":42}}}'
NOW = 1_700_000_000


def code_of(exc: pytest.ExceptionInfo[SignatureError]) -> str:
    return exc.value.code


# -- known answers from the providers' own documentation ----------------------


def test_github_documented_example_verifies() -> None:
    # GitHub docs, "Validating webhook deliveries": secret and payload with the expected header.
    digest = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    headers = {"X-Hub-Signature-256": f"sha256={digest}"}
    verify_github(headers, b"Hello, World!", ["It's a Secret to Everybody"])


def test_slack_documented_example_verifies() -> None:
    # Slack docs, "Verifying requests from Slack": the slash-command example request.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    verify_slack(headers, body, ["8f742231b10e8888abcd99yyyzzz85a5"], now=1531420618 + 10)


def test_standard_webhooks_documented_example_verifies() -> None:
    # The example of the Standard Webhooks / Svix documentation.
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    verify_standard(headers, body, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=1614265330)


def test_standard_webhooks_library_signature_verifies_here_and_in_the_library() -> None:
    now = int(time.time())
    headers = standard_headers(BODY, msg_id="msg_2", timestamp=now)
    verify_standard(headers, BODY, [SW_SECRET], now=now)
    # The library's own verifier (wall clock) accepts the very same request.
    Webhook(SW_SECRET).verify(BODY, headers, json_parse=False)


# -- GitHub -------------------------------------------------------------------


def test_github_accepts_its_signature_and_any_header_case() -> None:
    headers = {k.lower(): v for k, v in github_headers(BODY).items()}
    verify_github(headers, BODY, [GITHUB_SECRET])


def test_github_rejects_a_signature_made_with_another_secret() -> None:
    with pytest.raises(SignatureError) as exc:
        verify_github(github_headers(BODY, secret="other"), BODY, [GITHUB_SECRET])
    assert code_of(exc) == "bad_signature"


def test_github_rejects_a_body_changed_by_one_byte() -> None:
    with pytest.raises(SignatureError) as exc:
        verify_github(github_headers(BODY), BODY + b" ", [GITHUB_SECRET])
    assert code_of(exc) == "bad_signature"


def test_github_missing_and_malformed_signature_headers() -> None:
    with pytest.raises(SignatureError) as exc:
        verify_github({}, BODY, [GITHUB_SECRET])
    assert code_of(exc) == "missing_signature"
    for value in ("sha1=abc", "deadbeef", "sha256=", "sha256=zz\u00e9"):
        with pytest.raises(SignatureError) as exc:
            verify_github({"X-Hub-Signature-256": value}, BODY, [GITHUB_SECRET])
        assert code_of(exc) in {"malformed_signature", "bad_signature"}


def test_github_accepts_either_secret_during_a_rotation() -> None:
    verify_github(github_headers(BODY, secret="new"), BODY, ["old", "new"])
    verify_github(github_headers(BODY, secret="old"), BODY, ["old", "new"])


# -- Stripe -------------------------------------------------------------------


def test_stripe_keys_the_hmac_with_the_whole_whsec_string() -> None:
    verify_stripe(stripe_headers(BODY, timestamp=NOW), BODY, [STRIPE_SECRET], now=NOW)
    # Signed with the part after "whsec_" (the Standard Webhooks habit) it must fail.
    wrong = stripe_headers(BODY, secret=STRIPE_SECRET.removeprefix("whsec_"), timestamp=NOW)
    with pytest.raises(SignatureError) as exc:
        verify_stripe(wrong, BODY, [STRIPE_SECRET], now=NOW)
    assert code_of(exc) == "bad_signature"


def test_stripe_and_stripes_own_library_agree() -> None:
    now = int(time.time())
    headers = stripe_headers(BODY, timestamp=now)
    verify_stripe(headers, BODY, [STRIPE_SECRET], now=now)
    stripe.WebhookSignature.verify_header(
        BODY.decode(), headers["Stripe-Signature"], STRIPE_SECRET, tolerance=300
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            BODY.decode(), headers["Stripe-Signature"], "whsec_other", tolerance=300
        )


def test_stripe_refuses_a_timestamp_older_than_the_tolerance() -> None:
    headers = stripe_headers(BODY, timestamp=NOW - 301)
    with pytest.raises(SignatureError) as exc:
        verify_stripe(headers, BODY, [STRIPE_SECRET], now=NOW, tolerance=300)
    assert code_of(exc) == "timestamp_out_of_tolerance"
    assert "301 s old" in exc.value.message
    verify_stripe(headers, BODY, [STRIPE_SECRET], now=NOW, tolerance=400)


def test_stripe_refuses_a_timestamp_from_the_future_beyond_the_tolerance() -> None:
    headers = stripe_headers(BODY, timestamp=NOW + 1000)
    with pytest.raises(SignatureError) as exc:
        verify_stripe(headers, BODY, [STRIPE_SECRET], now=NOW)
    assert code_of(exc) == "timestamp_out_of_tolerance"


def test_stripe_checks_the_signature_before_the_age() -> None:
    # A forged request with an old timestamp says "bad signature", not "too old".
    headers = stripe_headers(BODY, secret="whsec_forged", timestamp=NOW - 10_000)
    with pytest.raises(SignatureError) as exc:
        verify_stripe(headers, BODY, [STRIPE_SECRET], now=NOW)
    assert code_of(exc) == "bad_signature"


def test_stripe_accepts_any_of_several_v1_signatures_and_ignores_v0() -> None:
    good = stripe_headers(BODY, timestamp=NOW)["Stripe-Signature"]
    ts, v1 = good.split(",")
    header = f"{ts},v0=00ff,v1={'0' * 64},{v1}"
    verify_stripe({"Stripe-Signature": header}, BODY, [STRIPE_SECRET], now=NOW)


@pytest.mark.parametrize(
    "header", ["", "v1=abc", f"t={NOW}", f"t=soon,v1={'a' * 64}", "garbage", f"t=-5,v1={'a' * 64}"]
)
def test_stripe_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureError) as exc:
        verify_stripe({"Stripe-Signature": header}, BODY, [STRIPE_SECRET], now=NOW)
    assert code_of(exc) in {"malformed_signature", "missing_signature"}


def test_parse_stripe_header_collects_every_v1() -> None:
    assert parse_stripe_header(f"t={NOW},v1=AA,v1=bb,v0=cc") == (NOW, ["aa", "bb"])


# -- Standard Webhooks ----------------------------------------------------------


def test_standard_secret_is_base64_after_the_prefix() -> None:
    assert len(decode_standard_secret(SW_SECRET)) == 24
    assert decode_standard_secret(SW_SECRET) == decode_standard_secret(SW_SECRET[6:])
    with pytest.raises(ValueError, match="base64"):
        decode_standard_secret("whsec_not base64!")


def test_standard_accepts_any_of_several_signatures_and_skips_other_versions() -> None:
    headers = standard_headers(BODY, timestamp=NOW)
    headers["webhook-signature"] = "v1a,xyz v1,AAAA " + headers["webhook-signature"]
    verify_standard(headers, BODY, [SW_SECRET], now=NOW)


def test_standard_signature_covers_the_message_id() -> None:
    headers = standard_headers(BODY, msg_id="msg_1", timestamp=NOW)
    headers["webhook-id"] = "msg_2"
    with pytest.raises(SignatureError) as exc:
        verify_standard(headers, BODY, [SW_SECRET], now=NOW)
    assert code_of(exc) == "bad_signature"


def test_standard_refuses_expired_and_future_timestamps() -> None:
    for ts in (NOW - 301, NOW + 301):
        with pytest.raises(SignatureError) as exc:
            verify_standard(standard_headers(BODY, timestamp=ts), BODY, [SW_SECRET], now=NOW)
        assert code_of(exc) == "timestamp_out_of_tolerance"


def test_standard_missing_headers_are_named() -> None:
    headers = standard_headers(BODY, timestamp=NOW)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        partial = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(SignatureError, match=name) as exc:
            verify_standard(partial, BODY, [SW_SECRET], now=NOW)
        assert code_of(exc) == "missing_signature"


def test_standard_rotated_secret() -> None:
    new = "whsec_" + "QUJDREVGR0hJSktMTU5PUA=="
    headers = standard_headers(BODY, secret=new, timestamp=NOW)
    verify_standard(headers, BODY, [SW_SECRET, new], now=NOW)
    with pytest.raises(SignatureError):
        verify_standard(headers, BODY, [SW_SECRET], now=NOW)


# -- Slack --------------------------------------------------------------------


def test_slack_accepts_its_signature_and_refuses_a_stale_one() -> None:
    verify_slack(slack_headers(BODY, timestamp=NOW), BODY, [SLACK_SECRET], now=NOW)
    with pytest.raises(SignatureError) as exc:
        verify_slack(slack_headers(BODY, timestamp=NOW - 600), BODY, [SLACK_SECRET], now=NOW)
    assert code_of(exc) == "timestamp_out_of_tolerance"


def test_slack_and_slacks_own_sdk_agree() -> None:
    now = int(time.time())
    headers = slack_headers(BODY, timestamp=now)
    verify_slack(headers, BODY, [SLACK_SECRET], now=now)
    sdk = SignatureVerifier(SLACK_SECRET)
    assert sdk.is_valid(BODY, str(now), headers["X-Slack-Signature"])
    assert not SignatureVerifier("other").is_valid(BODY, str(now), headers["X-Slack-Signature"])


def test_slack_wrong_secret_and_malformed_signature() -> None:
    with pytest.raises(SignatureError) as exc:
        verify_slack(slack_headers(BODY, secret="x", timestamp=NOW), BODY, [SLACK_SECRET], now=NOW)
    assert code_of(exc) == "bad_signature"
    headers = slack_headers(BODY, timestamp=NOW)
    headers["X-Slack-Signature"] = "v1=" + headers["X-Slack-Signature"][3:]
    with pytest.raises(SignatureError) as exc:
        verify_slack(headers, BODY, [SLACK_SECRET], now=NOW)
    assert code_of(exc) == "malformed_signature"


# -- bearer -------------------------------------------------------------------


def test_bearer_token() -> None:
    verify_bearer({"Authorization": "Bearer t0ken"}, ["other", "t0ken"])
    verify_bearer({"authorization": "bearer   t0ken "}, ["t0ken"])
    for value, code in [
        ("Bearer nope", "bad_signature"),
        ("Basic dDA6a2Vu", "malformed_signature"),
        ("Bearer", "malformed_signature"),
        ("Bearer caf\u00e9", "bad_signature"),
    ]:
        with pytest.raises(SignatureError) as exc:
            verify_bearer({"Authorization": value}, ["t0ken"])
        assert code_of(exc) == code
    with pytest.raises(SignatureError) as exc:
        verify_bearer({}, ["t0ken"])
    assert code_of(exc) == "missing_signature"


def test_error_messages_never_contain_the_secret_or_the_expected_signature() -> None:
    calls: list[Callable[[], None]] = [
        lambda: verify_github(github_headers(BODY, secret="x"), BODY, [GITHUB_SECRET]),
        lambda: verify_stripe(
            stripe_headers(BODY, secret="x"), BODY, [STRIPE_SECRET], now=time.time()
        ),
        lambda: verify_bearer({"Authorization": "Bearer x"}, ["t0ken"]),
    ]
    for call in calls:
        with pytest.raises(SignatureError) as exc:
            call()
        assert GITHUB_SECRET not in str(exc.value)
        assert STRIPE_SECRET not in str(exc.value)
        assert "t0ken" not in str(exc.value)
