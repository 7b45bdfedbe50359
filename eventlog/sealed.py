"""Secrets at rest: stored documents that hold secrets, sealed with Fernet.

Webhook endpoints (their ``whsec_`` secrets, extra auth headers, chat
notification URLs with tokens) and ingest sources (their signing secrets) are
stored as JSON documents. Given one or more keys, a :class:`SecretBox` seals
each document as ``fernet:<token>`` (:class:`cryptography.fernet.MultiFernet`:
AES-128-CBC with HMAC-SHA256; the first key encrypts, every key decrypts) and
opens it again on read. Without keys it stores and reads plain JSON, as before.

A sealed document read without keys, or with keys none of which made it, raises
:class:`SecretsKeyError` naming what to fix. Reading every document (with any
of the keys) and writing it back (with the first) is ``eventlog secrets rotate``.

Keys are URL-safe base64 of 32 bytes (:meth:`SecretBox.new_key`), given as
``EVENTLOG_SECRETS_KEY`` (comma-separated, newest first) or a key file (one key
a line), never in the config file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from eventlog.errors import Unavailable

__all__ = ["KEY_ENV", "PREFIX", "SecretBox", "SecretsKeyError"]

#: Marks a sealed document (plain documents are JSON objects: they start with ``{``).
PREFIX = b"fernet:"
#: The environment variable holding the keys.
KEY_ENV = "EVENTLOG_SECRETS_KEY"


class SecretsKeyError(Unavailable):
    """Sealed secrets cannot be opened: no key given, or not the key that sealed them."""

    code = "secrets_key"


class SecretBox:
    """Seals and opens stored documents; a box without keys passes them through."""

    def __init__(self, keys: Sequence[str | bytes] = ()) -> None:
        """Args:
            keys: Fernet keys, the one to encrypt with first.

        Raises:
            SecretsKeyError: A key is not 32 bytes of URL-safe base64.
        """
        fernets = []
        for n, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError) as exc:
                raise SecretsKeyError(
                    f"secrets key {n} is not a Fernet key (32 bytes of URL-safe base64; "
                    "make one with `eventlog secrets keygen`)"
                ) from exc
        self._fernet = MultiFernet(fernets) if fernets else None

    @classmethod
    def from_sources(
        cls, environ: Mapping[str, str], key_file: str | os.PathLike[str] | None = None
    ) -> SecretBox:
        """The keys in ``key_file`` (one a line) if given, else in ``EVENTLOG_SECRETS_KEY``.

        Raises:
            SecretsKeyError: The file is unreadable, or a key is malformed.
        """
        if key_file is not None:
            try:
                text = Path(key_file).read_text()
            except OSError as exc:
                raise SecretsKeyError(
                    f"cannot read secrets key file {key_file}: {exc.strerror}"
                ) from exc
            keys = text.split()
        else:
            keys = [k.strip() for k in environ.get(KEY_ENV, "").split(",") if k.strip()]
        return cls(keys)

    @staticmethod
    def new_key() -> str:
        """A fresh random key."""
        return Fernet.generate_key().decode()

    @property
    def enabled(self) -> bool:
        """True when documents are sealed."""
        return self._fernet is not None

    @staticmethod
    def is_sealed(doc: bytes) -> bool:
        """True if ``doc`` was sealed (else it is plain JSON)."""
        return bytes(doc[: len(PREFIX)]) == PREFIX

    def seal(self, doc: bytes) -> bytes:
        """``doc`` sealed with the first key (unchanged without keys)."""
        if self._fernet is None:
            return doc
        return PREFIX + self._fernet.encrypt(doc)

    def open(self, doc: bytes, what: str = "a stored secret") -> bytes:
        """The plain document (a plain one, stored before keys were given, as it is).

        Raises:
            SecretsKeyError: Sealed, and no key given or none of the keys made it.
        """
        if not self.is_sealed(doc):
            return bytes(doc)
        if self._fernet is None:
            raise SecretsKeyError(
                f"{what} is encrypted at rest but no secrets key is given: "
                f"set {KEY_ENV} or secrets_key_file"
            )
        try:
            return self._fernet.decrypt(bytes(doc[len(PREFIX) :]))
        except InvalidToken:
            raise SecretsKeyError(
                f"{what} is encrypted with another key: the secrets key given "
                f"({KEY_ENV} or secrets_key_file) is wrong"
            ) from None
