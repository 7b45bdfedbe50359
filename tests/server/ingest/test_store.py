"""The source stores behind one contract: memory, SQLite and PostgreSQL; and the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from eventlog import EventLog
from server.ingest.sources import Source
from server.ingest.store import ConfigOwned, SourceRegistry, SourceStore, store_for
from tests.pg import pg_cluster, pg_url

__all__ = ["pg_cluster", "pg_url"]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the log lives, for each backend (a fresh PostgreSQL database per test)."""
    if request.param == "memory":
        return ":memory:"
    if request.param == "sqlite":
        return str(tmp_path / "events.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def log(target: str) -> AsyncIterator[EventLog]:
    """A log on each backend."""
    async with EventLog.open(target, retention_interval=0) as opened:
        yield opened


def source(name: str, stream: str = "s") -> Source:
    return msgspec.convert(
        {"name": name, "stream": stream, "verify": {"scheme": "bearer", "token": "t"}, "type": "x"},
        Source,
    )


async def test_store_contract(log: EventLog) -> None:
    store: SourceStore = store_for(log)
    assert await store.get("a") is None
    assert await store.put("a", b'{"v":1}') is True
    assert await store.put("a", b'{"v":2}') is False
    assert await store.put("b", b'{"v":3}') is True
    assert await store.get("a") == b'{"v":2}'
    assert await store.all() == [("a", b'{"v":2}'), ("b", b'{"v":3}')]
    assert await store.delete("a") is True
    assert await store.delete("a") is False
    assert await store.all() == [("b", b'{"v":3}')]


async def test_two_registries_on_one_database_see_each_others_changes(log: EventLog) -> None:
    if log.storage.__class__.__name__ == "MemoryStorage":
        pytest.skip("an in-memory log has no second process")
    one = SourceRegistry([], store_for(log))
    two = SourceRegistry([], store_for(log))
    await one.put(source("shop", "orders"))
    seen = await two.get("shop")
    assert seen is not None
    assert seen.spec.stream == "orders"
    await one.put(source("shop", "orders-v2"))
    changed = await two.get("shop")
    assert changed is not None
    assert changed.spec.stream == "orders-v2"
    await one.delete("shop")
    assert await two.get("shop") is None


async def test_config_sources_come_first_and_cannot_be_changed(log: EventLog) -> None:
    registry = SourceRegistry([source("gh")], store_for(log))
    await registry.put(source("api"))
    assert [(s.name, s.origin) for s in await registry.all()] == [("gh", "config"), ("api", "api")]
    with pytest.raises(ConfigOwned):
        await registry.put(source("gh"))
    with pytest.raises(ConfigOwned):
        await registry.delete("gh")
