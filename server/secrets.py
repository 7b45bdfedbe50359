"""Secrets at rest across the server's stores: the start-up check and key rotation.

The webhook ledger's endpoint documents and the ingest sources' definitions
are sealed with the server's :class:`~eventlog.sealed.SecretBox`
(``EVENTLOG_SECRETS_KEY`` or ``secrets_key_file``). :func:`check_secrets`
opens every stored document once before the server starts, so a missing or
wrong key is one line at start-up rather than a failure at the first
delivery; :func:`rotate_secrets` re-seals every document with the first key
(``eventlog secrets rotate``), sealing those stored before a key was given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from consumers.delivery.ledger import LedgerStore
from consumers.delivery.stores import ledger_for
from eventlog import EventLog
from eventlog.sealed import SecretBox, SecretsKeyError
from server.config import ServerConfig
from server.ingest.sealed import SealedSourceStore
from server.ingest.store import store_for

__all__ = ["check_secrets", "rotate_secrets", "sealed_source_store", "secret_box"]


def secret_box(config: ServerConfig, environ: Mapping[str, str] = os.environ) -> SecretBox:
    """The server's box: keys from ``config.secrets_key_file``, else ``EVENTLOG_SECRETS_KEY``.

    Raises:
        SecretsKeyError: The key file is unreadable or a key is malformed.
    """
    return SecretBox.from_sources(environ, config.secrets_key_file)


def sealed_source_store(log: EventLog, secrets: SecretBox) -> SealedSourceStore:
    """The log's ingest source store, sealed with ``secrets``."""
    return SealedSourceStore(store_for(log), secrets)


async def _ledger(log: EventLog, secrets: SecretBox) -> LedgerStore | None:
    try:
        ledger = ledger_for(log, secrets=secrets)
    except ValueError:  # a backend without a ledger keeps no endpoints
        return None
    await ledger.open()
    return ledger


async def check_secrets(log: EventLog, secrets: SecretBox) -> int:
    """Open every stored secret-holding document once; how many there are.

    Raises:
        SecretsKeyError: One is sealed and no key is given, or not with these keys.
    """
    count = 0
    ledger = await _ledger(log, secrets)
    if ledger is not None:
        count += len(await ledger.endpoints())
    count += len(await sealed_source_store(log, secrets).all())
    return count


async def rotate_secrets(log: EventLog, secrets: SecretBox) -> tuple[int, int]:
    """Re-seal every stored document with the first key: ``(endpoints, ingest sources)``.

    Each is opened with any of the keys and written back sealed with the
    first, so after a rotation the older keys can be dropped.

    Raises:
        SecretsKeyError: No key given, or a document sealed with none of the keys.
    """
    if not secrets.enabled:
        raise SecretsKeyError(
            "no secrets key given: set EVENTLOG_SECRETS_KEY or --secrets-key-file"
        )
    endpoints = 0
    ledger = await _ledger(log, secrets)
    if ledger is not None:
        for endpoint in await ledger.endpoints():
            await ledger.put_endpoint(endpoint)
            endpoints += 1
    store = sealed_source_store(log, secrets)
    sources = await store.all()
    for name, spec in sources:
        await store.put(name, spec)
    return endpoints, len(sources)
