"""Standard Webhooks signing: the reference vector, rotation, and the reference verifier."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from consumers.delivery.signing import (
    InvalidSecret,
    decode_secret,
    generate_secret,
    mask_secret,
    sign,
    signature_header,
    webhook_headers,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == EXPECTED


def test_rotation_sends_one_signature_per_active_secret() -> None:
    new = generate_secret()
    header = signature_header([new, SECRET], MSG_ID, TIMESTAMP, BODY)
    entries = header.split(" ")
    assert len(entries) == 2
    assert entries[1] == EXPECTED
    assert entries[0] == sign(new, MSG_ID, TIMESTAMP, BODY)
    assert entries[0] != EXPECTED


def test_reference_verifier_accepts_either_secret_during_rotation() -> None:
    import time

    new = generate_secret()
    now = int(time.time())
    headers = webhook_headers([new, SECRET], MSG_ID, now, BODY)
    assert Webhook(new).verify(BODY, headers) == {"test": 2432232314}
    assert Webhook(SECRET).verify(BODY, headers) == {"test": 2432232314}
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_generated_secrets_are_random_32_byte_keys() -> None:
    a, b = generate_secret(), generate_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(decode_secret(a)) == 32


@pytest.mark.parametrize(
    "bad", ["", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!notbase64!!!", "whsec_YWJj"]
)
def test_malformed_secrets_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(InvalidSecret) as info:
        decode_secret(bad)
    if len(bad) > 8:
        assert bad[6:] not in str(info.value)


def test_mask_reveals_only_a_short_hint() -> None:
    hint = mask_secret(SECRET)
    assert hint == "whsec_MfKQ…"
    assert "LaLaSw" not in hint


def test_a_stored_event_that_is_not_utf8_is_delivered_repaired_and_signed_as_sent() -> None:
    import time
    from datetime import UTC, datetime

    import msgspec

    from consumers.webhook import EndpointSpec, build_endpoint, format_webhook
    from tests.support import stored_event

    now = time.time()
    ep = build_endpoint(EndpointSpec(url="https://example.com/hook", stream="s"), now=now, head=0)
    bad = stored_event(b'{"note": "caf\xe9"}', offset=2, time=datetime.now(UTC))
    request = format_webhook(ep, bad, "msg_1", now)
    body = msgspec.json.decode(request.body.decode("utf-8"))
    assert body["data"] == {"note": "caf\ufffd"}
    assert body["headers"]["eventlog-repaired"] == "utf-8"
    secret = ep.active_secrets(now)[0]
    Webhook(secret).verify(request.body, {k.lower(): v for k, v in request.headers.items()})
