"""Sign requests exactly as each sender does, for the ingest tests.

* GitHub: ``X-Hub-Signature-256: sha256=`` + hex HMAC-SHA256 of the body with
  the webhook secret (GitHub docs, "Validating webhook deliveries"; GitHub
  ships no Python library, and ``test_verify`` checks GitHub's own example).
* Stripe: signed by Stripe's library, ``stripe.WebhookSignature.generate_signature_header``:
  ``Stripe-Signature: t=<ts>,v1=<hex>``, the HMAC keyed with the endpoint
  secret *as a string, ``whsec_`` included*, over ``"<ts>.<body>"``.
* Standard Webhooks: signed with the ``standardwebhooks`` library.
* Slack: signed by Slack's SDK, ``slack_sdk.signature.SignatureVerifier``:
  ``X-Slack-Signature: v0=`` + hex HMAC-SHA256 of ``"v0:<ts>:<body>"``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook

__all__ = [
    "github_headers",
    "github_source",
    "slack_headers",
    "standard_headers",
    "stripe_headers",
]

#: A Standard Webhooks secret: whsec_ + base64 of 24 bytes.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STRIPE_SECRET = "whsec_test_5f1e7d0c3b2a4e6f8a9b"
GITHUB_SECRET = "It's a Secret to Everybody"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def github_source(secret: str = GITHUB_SECRET) -> dict[str, object]:
    """The body of ``POST /api/ingest/sources`` for source ``github`` into stream ``gh``."""
    return {"name": "github", "stream": "gh", "verify": {"scheme": "github", "secret": secret}}


def github_headers(
    body: bytes, *, secret: str = GITHUB_SECRET, event: str = "push", delivery: str = "d-1"
) -> dict[str, str]:
    """Headers of a GitHub webhook delivery."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def stripe_headers(
    body: bytes, *, secret: str = STRIPE_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Headers of a Stripe event delivery."""
    ts = int(time.time()) if timestamp is None else timestamp
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, ts)
    return {"Content-Type": "application/json", "Stripe-Signature": header}


def standard_headers(
    body: bytes, *, msg_id: str = "msg_1", secret: str = SW_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Headers of a Standard Webhooks delivery, signed by the ``standardwebhooks`` library."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
    }


def slack_headers(
    body: bytes,
    *,
    secret: str = SLACK_SECRET,
    timestamp: int | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """Headers of a Slack request (Events API or slash command)."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    assert signature is not None
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature,
    }
