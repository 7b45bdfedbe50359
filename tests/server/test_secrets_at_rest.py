"""Secrets at rest: with a key, no stored secret is readable in the database file.

A real ``eventlog serve`` stores a webhook endpoint (signing secret, an
``Authorization`` header), a Discord notification (its token in the URL) and
an ingest source (its HMAC secret); the test then reads the SQLite files
byte by byte. Rotation, a missing key and a wrong key are checked the same way.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken

from eventlog.sealed import PREFIX
from tests import forked
from tests.server.ingest.senders import github_source
from tests.serverproc import ROOT, ServerProcess
from tests.support import scaled

WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="
AUTH_HEADER = "Bearer header-token-7f3a9c"
DISCORD_TOKEN = "discord-token-51b2e8"
INGEST_SECRET = "ingest-hmac-secret-90d4"
SECRETS = (WEBHOOK_SECRET, AUTH_HEADER, DISCORD_TOKEN, INGEST_SECRET)
ENV = {"EVENTLOG_WEBHOOKS": '{"allow_private_targets": true}'}


def _store_secrets(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=scaled(10)) as http:
        hook = {
            "id": "orders",
            "url": "http://127.0.0.1:9/hook",
            "stream": "orders",
            "secret": WEBHOOK_SECRET,
            "headers": {"Authorization": AUTH_HEADER},
        }
        assert http.post("/api/webhooks", json=hook).status_code == 201
        discord = {
            "id": "chat",
            "kind": "discord",
            "url": f"http://127.0.0.1:9/api/webhooks/1234567890/{DISCORD_TOKEN}",
            "stream": "orders",
        }
        reply = http.post("/api/notifications", json=discord)
        assert reply.status_code == 201, reply.text
        source = github_source(INGEST_SECRET)
        reply = http.post("/api/ingest/sources", json=source)
        assert reply.status_code == 201, reply.text


def _status(server: ServerProcess, path: str) -> int:
    with httpx.Client(base_url=server.url, timeout=scaled(10)) as http:
        return http.get(path).status_code


def _database_bytes(db: Path) -> bytes:
    """The database file and whatever its WAL and shared memory hold."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))


def _stored_docs(db: Path) -> Iterator[bytes]:
    with sqlite3.connect(db) as conn:
        for (doc,) in conn.execute("SELECT doc FROM webhook_endpoints"):
            yield bytes(doc)
        for (spec,) in conn.execute("SELECT spec FROM ingest_sources"):
            yield bytes(spec)


def _serve_fails(db: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return forked.text(
        forked.run(
            "server.cli.serve",
            ["serve", "--port", "0", "--db", str(db)],
            cwd=ROOT,
            env={**ServerProcess(db)._environ(), **env},
            timeout=scaled(30),
        )
    )


def test_without_a_key_secrets_are_stored_as_given(tmp_path: Path) -> None:
    """Today's behaviour, and proof that the search below finds a stored secret."""
    db = tmp_path / "events.db"
    with ServerProcess.start(db, env=ENV) as server:
        _store_secrets(server)
    stored = _database_bytes(db)
    assert all(secret.encode() in stored for secret in SECRETS)


def test_with_a_key_no_secret_is_in_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    key = Fernet.generate_key().decode()
    with ServerProcess.start(db, env={**ENV, "EVENTLOG_SECRETS_KEY": key}) as server:
        _store_secrets(server)
        with httpx.Client(base_url=server.url, timeout=scaled(10)) as http:
            endpoint = http.get("/api/webhooks/orders").json()  # still served, opened
        assert endpoint["headers"] == {"Authorization": "[hidden]"}
        during = _database_bytes(db)
    after = _database_bytes(db)
    for secret in SECRETS:
        assert secret.encode() not in during
        assert secret.encode() not in after
    docs = list(_stored_docs(db))
    assert len(docs) == 3
    assert all(doc.startswith(PREFIX) for doc in docs)
    # The key file works the same way and the server starts again on the sealed rows.
    key_file = tmp_path / "secrets.key"
    key_file.write_text(key + "\n")
    with ServerProcess.start(db, env=ENV, extra_args=["--secrets-key-file", str(key_file)]) as s:
        assert _status(s, "/api/ingest/sources/github") == 200


def _rotate(db: Path, keys: str) -> subprocess.CompletedProcess[str]:
    return forked.text(
        forked.run(
            "server.cli",
            ["secrets", "rotate", "--db", str(db)],
            cwd=ROOT,
            env={**ServerProcess(db)._environ(), "EVENTLOG_SECRETS_KEY": keys},
            timeout=scaled(30),
        )
    )


def test_rotation_re_encrypts_every_secret_with_the_new_key(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    old, new = Fernet.generate_key(), Fernet.generate_key()
    with ServerProcess.start(db, env={**ENV, "EVENTLOG_SECRETS_KEY": old.decode()}) as server:
        _store_secrets(server)
    before = list(_stored_docs(db))
    result = _rotate(db, f"{new.decode()},{old.decode()}")
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 2 webhook endpoint(s) and 1 ingest source(s)" in result.stderr
    after = list(_stored_docs(db))
    assert len(after) == len(before) == 3
    for doc in after:
        token = doc[len(PREFIX) :]
        Fernet(new).decrypt(token)  # raises if not sealed with the new key
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(token)
    assert not any(secret.encode() in _database_bytes(db) for secret in SECRETS)
    # The new key alone now opens everything; the old one alone no longer starts.
    with ServerProcess.start(db, env={**ENV, "EVENTLOG_SECRETS_KEY": new.decode()}) as server:
        assert _status(server, "/api/webhooks/orders") == 200
    refused = _serve_fails(db, {"EVENTLOG_SECRETS_KEY": old.decode()})
    assert refused.returncode == 2


def test_rotation_seals_secrets_stored_before_the_key(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with ServerProcess.start(db, env=ENV) as server:
        _store_secrets(server)
    key = Fernet.generate_key()
    assert _rotate(db, key.decode()).returncode == 0
    assert all(doc.startswith(PREFIX) for doc in _stored_docs(db))
    assert not any(secret.encode() in _database_bytes(db) for secret in SECRETS)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (None, "is encrypted at rest but no secrets key is given: set EVENTLOG_SECRETS_KEY"),
        ("wrong", "is encrypted with another key: the secrets key given"),
        ("not-a-key", "secrets key 1 is not a Fernet key"),
    ],
)
def test_missing_or_wrong_key_fails_start_up_with_one_line(
    tmp_path: Path, keys: str | None, message: str
) -> None:
    db = tmp_path / "events.db"
    key = Fernet.generate_key().decode()
    with ServerProcess.start(db, env={**ENV, "EVENTLOG_SECRETS_KEY": key}) as server:
        _store_secrets(server)
    env = {} if keys is None else {"EVENTLOG_SECRETS_KEY": keys}
    if keys == "wrong":
        env["EVENTLOG_SECRETS_KEY"] = Fernet.generate_key().decode()
    result = _serve_fails(db, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("eventlog serve: ")
    assert message in lines[0]


def test_rotation_without_a_key_or_with_a_wrong_one_exits_2(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    key = Fernet.generate_key().decode()
    with ServerProcess.start(db, env={**ENV, "EVENTLOG_SECRETS_KEY": key}) as server:
        _store_secrets(server)
    wrong = _rotate(db, Fernet.generate_key().decode())
    assert wrong.returncode == 2
    assert "encrypted with another key" in wrong.stderr
    assert all(doc.startswith(PREFIX) for doc in _stored_docs(db))  # untouched


def test_rotation_of_a_database_file_that_does_not_exist_exits_2_and_creates_none(
    tmp_path: Path,
) -> None:
    db = tmp_path / "typo.db"
    result = _rotate(db, Fernet.generate_key().decode())
    assert result.returncode == 2
    assert result.stderr == f"eventlog secrets rotate: no database file at {str(db)!r}\n"
    assert list(tmp_path.iterdir()) == []
