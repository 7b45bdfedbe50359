"""Secrets at rest on PostgreSQL: the same sealed documents in the shared database."""

from __future__ import annotations

import asyncpg
from cryptography.fernet import Fernet

from eventlog.sealed import PREFIX
from tests.server.test_secrets_at_rest import ENV, SECRETS, _store_secrets
from tests.serverproc import ServerProcess


async def _rows(url: str) -> list[bytes]:
    conn = await asyncpg.connect(url)
    try:
        docs = await conn.fetch("SELECT doc FROM eventlog.webhook_endpoints")
        specs = await conn.fetch("SELECT spec FROM eventlog.ingest_sources")
    finally:
        await conn.close()
    return [bytes(row[0]) for row in [*docs, *specs]]


async def test_with_a_key_no_secret_is_stored_in_plaintext_in_postgres(pg_url: str) -> None:
    key = Fernet.generate_key()
    with ServerProcess.start(db=pg_url, env={**ENV, "EVENTLOG_SECRETS_KEY": key.decode()}) as s:
        _store_secrets(s)
    docs = await _rows(pg_url)
    assert len(docs) == 3
    for doc in docs:
        assert not any(secret.encode() in doc for secret in SECRETS)
        assert doc.startswith(PREFIX)
        Fernet(key).decrypt(doc[len(PREFIX) :])
