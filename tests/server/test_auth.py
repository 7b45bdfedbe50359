"""API keys and scopes without a server: scope parsing, 401/403 decisions, stored hashes."""

from __future__ import annotations

import pytest

from eventlog import EventLogError
from server.auth import Authenticator, hash_key, new_key, parse_scope
from server.config import ApiKey, ConfigError
from server.errors import status_for


def test_scopes_parse_and_reject_garbage() -> None:
    assert parse_scope("append:orders.*") == ("append", "orders.*")
    assert parse_scope("read:*") == ("read", "*")
    assert parse_scope("admin") == ("admin", "*")
    for bad in ("write:x", "append:", "append", "", "admin:x"):
        with pytest.raises(ConfigError):
            parse_scope(bad)


def test_authenticator_401_403_and_globs() -> None:
    writer, reader = new_key(), new_key()
    assert writer != reader
    auth = Authenticator(
        [
            ApiKey(name="w", hash=hash_key(writer), scopes=["append:orders.*"]),
            ApiKey(name="r", hash=hash_key(reader), scopes=["read:*"]),
        ]
    )
    assert auth.enabled
    grant = auth.check(writer, "append", "orders.eu")
    assert grant is not None
    assert grant.name == "w"
    for token, action, stream, status in [
        (None, "append", "orders.eu", 401),
        ("", "read", None, 401),
        ("wrong", "read", None, 401),
        (writer, "append", "orders", 403),  # glob orders.* needs the dot
        (writer, "read", "orders.eu", 403),
        (reader, "append", "x", 403),
        (reader, "admin", None, 403),
    ]:
        with pytest.raises(EventLogError) as info:
            auth.check(token, action, stream)  # type: ignore[arg-type]
        assert status_for(info.value) == status
    assert auth.check(reader, "read", "anything") is not None
    assert Authenticator([]).check(None, "admin") is None


def test_authenticator_rejects_malformed_hashes() -> None:
    with pytest.raises(ConfigError, match="sha256"):
        Authenticator([ApiKey(name="x", hash="plaintext-key")])
