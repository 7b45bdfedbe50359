"""PostgreSQL backend specifics: schema versioning, URL handling, error translation,
and gapless offsets with concurrent writers in several processes.

The behaviour every backend shares is in tests/eventlog/storage/ (the contract suite).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from eventlog import EventLog, InvalidPosition, NewEvent
from eventlog.errors import CorruptDatabase, LogClosed, SchemaTooNew, StorageError
from eventlog.storage.base import Appended, AppendRequest, PendingEvent, Storage
from eventlog.storage.leases import Leases
from eventlog.storage.postgres import PostgresStorage, set_offset
from eventlog.storage.postgres_schema import SCHEMA_VERSION, redact, split_url
from tests.pg import PgCluster
from tests.support import refused_port, scaled, wait_until

CHILD = Path(__file__).with_name("writer_child.py")


def event(event_id: str, *, given: bool = True, data: bytes = b"{}") -> PendingEvent:
    return PendingEvent(id=event_id, id_given=given, type="t", key=None, headers={}, data=data)


def request(stream: str, *ids: str) -> AppendRequest:
    return AppendRequest(stream=stream, events=[event(i) for i in ids])


def test_backend_implements_the_storage_and_leases_protocols() -> None:
    storage = PostgresStorage("postgresql://localhost/db")
    assert isinstance(storage, Storage)
    assert isinstance(storage, Leases)


async def test_schema_is_created_versioned_and_kept_across_reopen(pg_url: str) -> None:
    storage = PostgresStorage(pg_url)
    await storage.open()
    await storage.append([request("orders", "a", "b")], datetime.now(UTC))
    await storage.close()
    conn = await asyncpg.connect(pg_url)
    try:
        version = await conn.fetchval(
            "SELECT version FROM eventlog.schema_version WHERE component = 'eventlog'"
        )
    finally:
        await conn.close()
    assert version == SCHEMA_VERSION
    reopened = PostgresStorage(pg_url)
    await reopened.open()
    try:
        assert [e.id for e in await reopened.read("orders", 0, 10)] == ["a", "b"]
    finally:
        await reopened.close()


async def test_schema_written_by_a_newer_eventlog_is_refused(pg_url: str) -> None:
    storage = PostgresStorage(pg_url)
    await storage.open()
    await storage.close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE eventlog.schema_version SET version = 99")
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew, match="99"):
        await PostgresStorage(pg_url).open()


async def test_schema_holding_someone_elses_tables_is_left_untouched(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE SCHEMA eventlog; CREATE TABLE eventlog.invoices (n int)")
        with pytest.raises(CorruptDatabase, match="invoices"):
            await PostgresStorage(pg_url).open()
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'eventlog'")
    finally:
        await conn.close()
    assert [t["tablename"] for t in tables] == ["invoices"]


async def test_schema_parameter_keeps_two_logs_apart_in_one_database(pg_url: str) -> None:
    a = PostgresStorage(pg_url + "?schema=log_a")
    b = PostgresStorage(pg_url + "?schema=log_b")
    await a.open()
    await b.open()
    try:
        await a.append([request("s", "x")], datetime.now(UTC))
        assert await b.stream_info("s") is None
        assert (await a.stream_info("s")) is not None
        assert a.channel == "log_a_heads"
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("schema", ["Upper", "1digit", "semi;colon", "", "x" * 64])
def test_invalid_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(StorageError, match="invalid schema"):
        PostgresStorage(f"postgresql://localhost/db?schema={schema}")


def test_url_keeps_driver_parameters_and_redacts_passwords() -> None:
    dsn, schema = split_url("postgresql://u:secret@h:5/db?schema=abc&application_name=x")
    assert schema == "abc"
    assert dsn == "postgresql://u:secret@h:5/db?application_name=x"
    assert redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("postgresql://u:secret@h:port/db") == "postgresql://***/db"


async def test_malformed_url_is_a_storage_error_not_a_crash() -> None:
    storage = PostgresStorage("postgresql://u:secret@h:port/db")
    with pytest.raises(StorageError) as info:
        await storage.open()
    assert "secret" not in str(info.value)


async def test_unreachable_server_is_a_storage_error_that_hides_the_password() -> None:
    with refused_port() as port, pytest.raises(StorageError) as info:
        await PostgresStorage(f"postgresql://someone:hunter2@127.0.0.1:{port}/db").open()
    assert "hunter2" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


async def test_closed_storage_raises_log_closed(pg_url: str) -> None:
    storage = PostgresStorage(pg_url)
    await storage.open()
    await storage.close()
    await storage.close()  # idempotent
    with pytest.raises(LogClosed):
        await storage.read("s", 0, 10)
    with pytest.raises(LogClosed):
        await storage.append([request("s", "a")], datetime.now(UTC))


async def test_driver_errors_are_translated_never_escaping(pg_storage: PostgresStorage) -> None:
    await pg_storage.append([request("s", "a")], datetime.now(UTC))
    await pg_storage.query(lambda conn: conn.execute("DROP TABLE eventlog.events"))
    with pytest.raises(StorageError, match="SQLSTATE") as info:
        await pg_storage.read("s", 0, 10)
    assert not isinstance(info.value, asyncpg.PostgresError)
    with pytest.raises(StorageError):
        await pg_storage.append([request("s", "b")], datetime.now(UTC))


async def test_failed_append_reaches_the_producer_as_a_storage_error(pg_url: str) -> None:
    async with EventLog.open(pg_url, retention_interval=0) as log:
        await log.append("s", 1, type="t")
        assert isinstance(log.storage, PostgresStorage)
        await log.storage.query(lambda conn: conn.execute("DROP TABLE eventlog.events"))
        with pytest.raises(StorageError):
            await log.append("s", 2, type="t")


async def test_transact_rolls_back_component_rows_and_offset_together(
    pg_storage: PostgresStorage,
) -> None:
    await pg_storage.ensure_schema(
        "ledger", [["CREATE TABLE {s}.ledger (id text PRIMARY KEY, state text NOT NULL)"]]
    )
    await pg_storage.ensure_schema(  # already at version 1: a no-op
        "ledger", [["CREATE TABLE {s}.ledger (id text PRIMARY KEY, state text NOT NULL)"]]
    )

    async def ok(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO eventlog.ledger VALUES ('d1', 'pending')")
        await set_offset(conn, pg_storage.schema, "hook", "orders", 1)

    async def fails(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO eventlog.ledger VALUES ('d2', 'pending')")
        await set_offset(conn, pg_storage.schema, "hook", "orders", 2)
        await conn.execute("INSERT INTO eventlog.ledger VALUES ('d1', 'again')")  # duplicate

    await pg_storage.transact(ok)
    with pytest.raises(StorageError, match="duplicate key"):
        await pg_storage.transact(fails)
    assert await pg_storage.get_offset("hook", "orders") == 1
    rows = await pg_storage.query(lambda conn: conn.fetch("SELECT id FROM eventlog.ledger"))
    assert [r["id"] for r in rows] == ["d1"]


async def test_storages_racing_to_create_the_same_streams_get_gapless_offsets(
    pg_url: str,
) -> None:
    storages = [PostgresStorage(pg_url) for _ in range(4)]
    for s in storages:
        await s.open()
    try:
        # Every round, each storage appends to the same three brand-new streams.
        now = datetime.now(UTC)
        for round_ in range(5):
            names = [f"r{round_}-{x}" for x in ("a", "b", "c")]
            results = await asyncio.gather(
                *(
                    s.append(
                        [request(n, f"{i}-{n}") for n in (names[::-1] if i % 2 else names)], now
                    )
                    for i, s in enumerate(storages)
                )
            )
            assert all(isinstance(o, Appended) for r in results for o in r)
            for name in names:
                events = await storages[0].read(name, 0, 100)
                assert [e.offset for e in events] == list(range(len(storages)))
    finally:
        for s in storages:
            await s.close()


async def test_concurrent_processes_get_gapless_offsets_and_each_event_once(
    pg_url: str,
) -> None:
    per_process = 120
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), pg_url, str(p), str(per_process)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(3)
    ]
    acks: list[tuple[str, int, str]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=scaled(60))
        assert proc.returncode == 0, err
        for line in out.splitlines():
            stream, offset, event_id = json.loads(line)
            acks.append((stream, offset, event_id))
    storage = PostgresStorage(pg_url)
    await storage.open()
    try:
        stored: dict[str, dict[int, str]] = {}
        for stream in ("s0", "s1", "s2"):
            events = await storage.read(stream, 0, 100_000)
            # Gapless from 0, each id exactly once.
            assert [e.offset for e in events] == list(range(len(events)))
            assert len({e.id for e in events}) == len(events)
            stored[stream] = {e.offset: e.id for e in events}
    finally:
        await storage.close()
    by_id: dict[tuple[str, str], set[int]] = defaultdict(set)
    for stream, offset, event_id in acks:
        assert stored[stream][offset] == event_id  # every acknowledged event, where acked
        by_id[(stream, event_id)].add(offset)
    # The id all three processes appended got one offset, told to all three.
    for stream in ("s0", "s1", "s2"):
        assert len(by_id[(stream, f"shared-{stream}")]) == 1
    assert sum(len(v) for v in stored.values()) == len(by_id)


async def test_log_carries_on_after_a_postgresql_restart(own_cluster: PgCluster) -> None:
    url = await own_cluster.create_database()
    async with (
        EventLog.open(url, retention_interval=0, recheck_interval=None) as writer,
        EventLog.open(url, retention_interval=0, recheck_interval=None) as reader,
    ):
        await writer.append("s", 0, type="t")
        assert [e.offset for e in await reader.read("s", 0)] == [0]
        await reader.consumer("c", "s").commit(1)
        await asyncio.to_thread(own_cluster.restart)
        # Every connection died: appends, reads and offsets reconnect unseen.
        assert await writer.append("s", 1, type="t") == 1
        assert [e.json() for e in await reader.read("s", 0)] == [0, 1]
        assert await reader.consumer("c", "s").poll(10) == (await reader.read("s", 1))
        # And the listener is back: a waiter on the reader wakes on the writer's append.
        assert isinstance(reader.storage, PostgresStorage)
        listener = reader.storage.listener
        assert listener is not None
        await wait_until(lambda: listener.reconnects > 0, what="the listener reconnected")
        waiter = asyncio.create_task(reader.wait("s", 2, timeout=scaled(10)))
        await wait_until(lambda: reader.heads.parked("s") > 0, what="the waiter parked")
        await writer.append("s", 2, type="t")
        assert await asyncio.wait_for(waiter, scaled(5)) is True


async def test_a_commit_checks_the_head_another_process_appended(
    two_logs: tuple[EventLog, EventLog],
) -> None:
    a, b = two_logs
    assert b.known_head("s") is None  # b never saw the stream: the head comes from storage
    await a.append_batch("s", [NewEvent(type="t", data=i) for i in range(3)])
    await b.commit_offset("c", "s", 3)  # a's appends count: caught up, not past the head
    assert await a.committed_offset("c", "s") == 3
    with pytest.raises(InvalidPosition, match=r"offset 4 is beyond the head of 's' \(3\)"):
        await b.commit_offset("c", "s", 4)
    assert await b.committed_offset("c", "s") == 3
