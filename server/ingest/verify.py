"""Sender signature schemes for inbound webhooks (sans-I/O).

Each ``verify_*`` function is pure: it takes the request headers (any
mapping; names are matched case-insensitively), the raw body bytes exactly as
received, the accepted secrets (several during a rotation) and, where the
scheme has a timestamp, ``now`` in Unix seconds. It returns ``None`` when the
request is authentic and raises :class:`SignatureError` otherwise. Every
comparison of a secret-derived value is constant-time
(:func:`hmac.compare_digest`), and nothing here parses the body: verification
always runs on the raw bytes before the body is decoded.

The schemes, as each sender documents them:

========== ================================ ==============================================
scheme     headers                          signed bytes / key
========== ================================ ==============================================
github     ``X-Hub-Signature-256:           HMAC-SHA256(secret, body), hex; no timestamp
           sha256=<hex>``                   (replays are de-duplicated on
                                            ``X-GitHub-Delivery`` instead)
stripe     ``Stripe-Signature:              HMAC-SHA256(the whole ``whsec_…`` string,
           t=<ts>,v1=<hex>[,v1=…]``         ``"<ts>." + body``), hex
standard   ``webhook-id``,                  HMAC-SHA256(base64-decode(secret after
           ``webhook-timestamp``,           ``whsec_``), ``"<id>.<ts>." + body``), base64;
           ``webhook-signature: v1,<b64>…`` several space-separated signatures
slack      ``X-Slack-Signature: v0=<hex>``, HMAC-SHA256(signing secret,
           ``X-Slack-Request-Timestamp``    ``"v0:<ts>:" + body``), hex
bearer     ``Authorization: Bearer <token>`` the token itself
========== ================================ ==============================================
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from consumers.delivery.signing import sign
from eventlog.errors import Unauthorized
from server.ingest._headers import get_header

__all__ = [
    "DEFAULT_TOLERANCE",
    "SignatureError",
    "decode_standard_secret",
    "verify_bearer",
    "verify_github",
    "verify_slack",
    "verify_standard",
    "verify_stripe",
]

#: Seconds a signed timestamp may differ from ``now`` (Stripe, Standard
#: Webhooks and Slack all document five minutes).
DEFAULT_TOLERANCE = 300


class SignatureError(Unauthorized):
    """A request failed verification (HTTP 401).

    Attributes:
        code: ``missing_signature``, ``malformed_signature``, ``bad_signature``
            or ``timestamp_out_of_tolerance``.
        message: What failed, naming the header; never a secret or an
            expected signature.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.message = message


def _required(headers: Mapping[str, str], name: str) -> str:
    value = get_header(headers, name)
    if value is None or not value.strip():
        raise SignatureError("missing_signature", f"the {name} header is missing")
    return value.strip()


def _same(a: str, b: str) -> bool:
    # compare_digest refuses non-ASCII str; compare bytes so any header value is safe.
    return hmac.compare_digest(
        a.encode("utf-8", "backslashreplace"), b.encode("utf-8", "backslashreplace")
    )


def _hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _timestamp(value: str, header: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise SignatureError("malformed_signature", f"{header} must be Unix seconds, got {text!r}")
    return int(text)


def _check_age(timestamp: int, now: float, tolerance: float, header: str) -> None:
    age = now - timestamp
    if age > tolerance:
        raise SignatureError(
            "timestamp_out_of_tolerance",
            f"{header} is {age:.0f} s old, more than the tolerance of {tolerance:g} s",
        )
    if -age > tolerance:
        raise SignatureError(
            "timestamp_out_of_tolerance",
            f"{header} is {-age:.0f} s in the future, more than the tolerance of {tolerance:g} s",
        )


def _no_match(header: str) -> SignatureError:
    return SignatureError(
        "bad_signature", f"no signature in {header} matches the configured secret"
    )


def verify_github(headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> None:
    """GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.

    GitHub signs no timestamp, so a captured request can be sent again; the
    ingest route de-duplicates on ``X-GitHub-Delivery`` (the event id).
    """
    name = "X-Hub-Signature-256"
    given = _required(headers, name)
    scheme, sep, digest = given.partition("=")
    if not sep or scheme != "sha256" or not digest:
        raise SignatureError("malformed_signature", f"{name} must look like sha256=<hex>")
    for secret in secrets:
        if _same(_hmac_hex(secret.encode(), body), digest.lower()):
            return
    raise _no_match(name)


def parse_stripe_header(value: str) -> tuple[int, list[str]]:
    """Split ``t=<ts>,v1=<hex>,v1=<hex>,v0=…`` into the timestamp and the v1 signatures.

    Raises:
        SignatureError: No ``t=`` or no ``v1=`` element.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = _timestamp(val, "Stripe-Signature t=")
        elif key == "v1" and val:
            signatures.append(val.strip().lower())
    if timestamp is None or not signatures:
        raise SignatureError(
            "malformed_signature", "Stripe-Signature must hold t=<timestamp> and v1=<signature>"
        )
    return timestamp, signatures


def verify_stripe(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Stripe: ``Stripe-Signature: t=<ts>,v1=<hex>``, HMAC keyed with the whole ``whsec_…`` string.

    The signed payload is ``"<ts>." + body``. The signature is checked first,
    then the timestamp against ``now`` ± ``tolerance`` (Stripe's libraries
    check only the past side; a timestamp from the future beyond the
    tolerance is refused too).
    """
    name = "Stripe-Signature"
    timestamp, signatures = parse_stripe_header(_required(headers, name))
    signed = str(timestamp).encode() + b"." + body
    expected = [_hmac_hex(secret.encode(), signed) for secret in secrets]
    if not any(_same(e, s) for e in expected for s in signatures):
        raise _no_match(name)
    _check_age(timestamp, now, tolerance, "Stripe-Signature t=")


def decode_standard_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 of the part after ``whsec_``.

    Raises:
        ValueError: The secret is empty or not base64.
    """
    text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from exc
    if not key:
        raise ValueError("a Standard Webhooks secret must not be empty")
    return key


def verify_standard(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

    The signed content is ``"<id>.<timestamp>." + body``; the key is the
    base64-decoded part of the secret after ``whsec_``; the header holds one
    or more space-separated ``v1,<base64>`` signatures (other versions are
    ignored), any of which may match.
    """
    msg_id = _required(headers, "webhook-id")
    timestamp = _timestamp(_required(headers, "webhook-timestamp"), "webhook-timestamp")
    given = [
        item
        for item in _required(headers, "webhook-signature").split()
        if item.startswith("v1,") and len(item) > 3
    ]
    if not given:
        raise SignatureError(
            "malformed_signature", "webhook-signature holds no v1,<base64> signature"
        )
    for secret in secrets:
        # The same signing function outgoing webhooks use (``v1,<base64>``).
        expected = sign(decode_standard_secret(secret), msg_id, timestamp, body).encode()
        if any(hmac.compare_digest(expected, g.encode()) for g in given):
            _check_age(timestamp, now, tolerance, "webhook-timestamp")
            return
    raise _no_match("webhook-signature")


def verify_slack(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Slack request signing, version ``v0``.

    ``X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<ts>:" + body)>``
    with ``<ts>`` from ``X-Slack-Request-Timestamp``.
    """
    name = "X-Slack-Signature"
    ts_header = "X-Slack-Request-Timestamp"
    timestamp = _timestamp(_required(headers, ts_header), ts_header)
    given = _required(headers, name)
    version, sep, digest = given.partition("=")
    if not sep or version != "v0" or not digest:
        raise SignatureError("malformed_signature", f"{name} must look like v0=<hex>")
    signed = f"v0:{timestamp}:".encode() + body
    for secret in secrets:
        if _same(_hmac_hex(secret.encode(), signed), digest.lower()):
            _check_age(timestamp, now, tolerance, ts_header)
            return
    raise _no_match(name)


def verify_bearer(headers: Mapping[str, str], tokens: Sequence[str]) -> None:
    """A shared token: ``Authorization: Bearer <token>``."""
    given = _required(headers, "Authorization")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureError("malformed_signature", "Authorization must be 'Bearer <token>'")
    token = token.strip()
    # Compare against every token so the time taken does not tell which matched.
    matched = False
    for expected in tokens:
        matched |= _same(expected, token)
    if not matched:
        raise SignatureError("bad_signature", "the bearer token is not accepted")
