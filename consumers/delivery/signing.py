"""Standard Webhooks signing (sans-I/O): secrets, signatures, headers, masking.

The scheme (https://www.standardwebhooks.com/): a secret is ``whsec_`` plus
base64 of 24-64 random bytes; the signature of a message is
``v1,<base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))>``; the
``webhook-signature`` header carries one space-separated entry per active
secret, so a receiver keeps working while a secret is rotated.

Secrets never leave this module except as the key of an HMAC or as a
:func:`mask_secret` hint.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import secrets as _secrets
from collections.abc import Sequence
from typing import Any

from eventlog.errors import InvalidInput

__all__ = [
    "SECRET_PREFIX",
    "InvalidSecret",
    "decode_secret",
    "generate_secret",
    "mask_secret",
    "sign",
    "signature_header",
    "webhook_headers",
]

SECRET_PREFIX = "whsec_"
_MIN_KEY_BYTES = 24
_MAX_KEY_BYTES = 64


class InvalidSecret(InvalidInput):
    """A webhook secret is not ``whsec_`` + base64 of 24 to 64 bytes."""

    code = "invalid_secret"


def generate_secret() -> str:
    """A new random secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


@functools.lru_cache(maxsize=1024)
def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret.

    Raises:
        InvalidSecret: Missing prefix, not base64, or a key of the wrong size.
            The message never contains the secret.
    """
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("a webhook secret starts with 'whsec_'")
    text = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("a webhook secret is 'whsec_' followed by base64") from exc
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise InvalidSecret(
            f"a webhook secret's key must be {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes, "
            f"got {len(key)}"
        )
    return key


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``{msg_id}.{timestamp}.{body}``.

    ``secret`` is a ``whsec_`` string or an already decoded key.
    """
    inner, outer = _pads(secret)
    h = inner.copy()
    h.update(f"{msg_id}.{timestamp}.".encode())
    h.update(body)
    o = outer.copy()
    o.update(h.digest())
    return "v1," + binascii.b2a_base64(o.digest(), newline=False).decode()


@functools.lru_cache(maxsize=1024)
def _pads(secret: str | bytes) -> tuple[Any, Any]:
    """HMAC-SHA256 (RFC 2104) with the keyed inner and outer states computed once
    per secret: each signature then costs two hash copies, not a fresh HMAC setup."""
    key = decode_secret(secret) if isinstance(secret, str) else secret
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    return inner, outer


def signature_header(
    secrets: Sequence[str | bytes], msg_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    return " ".join([sign(s, msg_id, timestamp, body) for s in secrets])


def webhook_headers(
    secrets: Sequence[str | bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


def mask_secret(secret: str) -> str:
    """A hint that identifies a secret without revealing it: ``whsec_MfKQ…``.

    Shows the prefix and the first four characters of the key, nothing else
    (a few characters of 32+ random bytes give nothing away).
    """
    if not secret.startswith(SECRET_PREFIX):
        return "…"
    return secret[: len(SECRET_PREFIX) + 4] + "…"
