"""``eventlog migrate SRC DST``: an SQLite log copied into PostgreSQL, verified."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from consumers.delivery.ledger import ConsumerAdvance
from consumers.delivery.model import Endpoint
from consumers.delivery.postgres_ledger import PostgresLedger
from consumers.delivery.sqlite_ledger import SQLiteLedger
from eventlog import EventLog, NewEvent, Retention
from eventlog.storage.postgres import PostgresStorage
from eventlog.storage.sqlite import SQLiteStorage
from server.cli import build_parser
from server.cli.migrate import Checksum, compare
from tests import forked
from tests.consumers.delivery.calls import claim, enqueue, finish
from tests.consumers.delivery.test_ledger import NOW
from tests.consumers.delivery.test_ledger import done as finished
from tests.consumers.delivery.test_ledger import rows as ledger_rows
from tests.serverproc import ServerProcess
from tests.support import refused_port, scaled

ROOT = Path(__file__).resolve().parents[3]


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return forked.text(forked.run("server.cli", ["migrate", *args], cwd=ROOT, timeout=scaled(60)))


async def sample_log(path: Path) -> None:
    """Streams with keys, headers, given ids, a trimmed prefix, retention, consumers."""
    async with EventLog.open(path, retention_interval=0) as log:
        for i in range(0, 1200, 10):
            batch = [
                NewEvent(
                    type="order.created",
                    data={"i": j},
                    key=f"k{j % 7}" if j % 2 else None,
                    headers={"h": str(j)} if j % 5 else {},
                    id=f"o-{j}" if j % 3 == 0 else None,
                )
                for j in range(i, i + 10)
            ]
            await log.append_batch("orders", batch)
        await log.append_batch(
            "Payments.eu-1", [NewEvent(type="p", data=[1, "é", None]) for _ in range(30)]
        )
        await log.set_retention("orders", Retention(max_count=1000, max_age=86400.0))
        await log.enforce_retention()
        await log.set_retention("empty", Retention(max_bytes=4096))
        await log.consumer("billing", "orders").commit(1100)
        await log.consumer("audit", "Payments.eu-1").commit(3)


async def one_event_log(path: Path) -> Path:
    """A SQLite log at ``path`` holding one event in stream ``s``; ``path``."""
    async with EventLog.open(path) as log:
        await log.append("s", 1, type="t")
    return path


async def snapshot(log: EventLog) -> tuple[object, ...]:
    streams = await log.streams()
    events = {s.name: [e async for e in log.scan(s.name, s.first_offset)] for s in streams}
    consumers = [(c.name, c.stream, c.offset) for c in await log.consumers()]
    return (
        streams,
        {
            n: [(e.offset, e.id, e.type, e.key, e.time, e.headers, bytes(e.data)) for e in es]
            for n, es in events.items()
        },
        consumers,
    )


async def test_migrate_copies_everything_exactly_and_verifies(tmp_path: Path, pg_url: str) -> None:
    src = tmp_path / "events.db"
    await sample_log(src)
    result = migrate(str(src), pg_url)
    assert result.returncode == 0, result.stderr
    assert "counts and checksums verified" in result.stderr
    async with EventLog.open(src, retention_interval=0) as a:
        before = await snapshot(a)
    async with EventLog.open(pg_url, retention_interval=0) as b:
        after = await snapshot(b)
        # The copy is a working log: appends continue from the copied heads.
        assert await b.append("orders", {"after": True}, type="t") == 1200
        assert await b.offset_at_time("orders", datetime.now(UTC) - timedelta(days=1)) == 200
    assert after == before
    streams = before[0]
    assert [s.name for s in streams] == ["Payments.eu-1", "empty", "orders"]  # type: ignore[attr-defined]


async def test_migrate_copies_webhook_endpoints_and_ledger(tmp_path: Path, pg_url: str) -> None:
    src = tmp_path / "events.db"
    async with EventLog.open(src, retention_interval=0) as log:
        assert isinstance(log.storage, SQLiteStorage)
        store = SQLiteLedger(log.storage)
        await store.open()
        await store.put_endpoint(
            Endpoint(id="ep", url="https://example.com/hook", headers={"X-Key": "k"})
        )
        await enqueue(
            store,
            "ep",
            ledger_rows(0, 1, 2),
            consumer=ConsumerAdvance("webhook.ep", "events", 3),
            now=NOW,
        )
        (first,) = (await claim(store, "ep", "ordered", NOW, 1)).rows
        await finish(store, [finished(first.id)])
        before = (
            await store.endpoints(),
            await store.deliveries("ep"),
            await store.delivery("ep", first.id),
        )
    result = migrate(str(src), pg_url)
    assert result.returncode == 0, result.stderr
    assert "webhook_deliveries" in result.stderr
    async with EventLog.open(pg_url, retention_interval=0) as log:
        assert isinstance(log.storage, PostgresStorage)
        pg = PostgresLedger(log.storage)
        await pg.open()
        after = (await pg.endpoints(), await pg.deliveries("ep"), await pg.delivery("ep", first.id))
        assert after == before
        assert await log.storage.get_offset("webhook.ep", "events") == 3
        # The copied ledger keeps working: new rows get later sequence numbers.
        await enqueue(pg, "ep", ledger_rows(3), consumer=None, now=NOW)
        seqs = [d.seq for d in await pg.deliveries("ep")]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 4


async def test_migrate_refuses_a_destination_that_already_holds_a_log(
    tmp_path: Path, pg_url: str
) -> None:
    src = await one_event_log(tmp_path / "events.db")
    async with EventLog.open(pg_url) as log:
        await log.append("other", 1, type="t")
    result = migrate(str(src), pg_url)
    assert result.returncode == 2
    assert "already holds eventlog data" in result.stderr
    async with EventLog.open(pg_url) as log:
        assert [s.name for s in await log.streams()] == ["other"]


async def test_migrate_refuses_sources_that_are_not_eventlog_databases(
    tmp_path: Path, pg_url: str
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    missing = tmp_path / "missing.db"
    for source, message in ((text, "not"), (missing, "does not exist")):
        result = migrate(str(source), pg_url)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert not missing.exists()  # never created


async def test_migrate_refuses_a_destination_that_is_not_a_url(tmp_path: Path) -> None:
    src = await one_event_log(tmp_path / "events.db")
    result = migrate(str(src), str(tmp_path / "copy.db"))
    assert result.returncode == 2
    assert "postgresql://" in result.stderr


async def test_unreachable_destination_fails_cleanly(tmp_path: Path) -> None:
    src = await one_event_log(tmp_path / "events.db")
    with refused_port() as port:
        result = migrate(str(src), f"postgresql://u:pw@127.0.0.1:{port}/db")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    assert "Traceback" not in result.stderr


async def test_source_with_tables_migrate_cannot_copy_is_refused_before_writing(
    tmp_path: Path, pg_url: str
) -> None:
    src = await one_event_log(tmp_path / "events.db")
    async with EventLog.open(src) as log:
        await log.storage.ensure_schema(  # type: ignore[attr-defined]
            "gadgets", [["CREATE TABLE gadgets (id TEXT PRIMARY KEY)"]]
        )
    result = migrate(str(src), pg_url)
    assert result.returncode == 2
    assert "gadgets" in result.stderr
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('eventlog.events') IS NULL")
    finally:
        await conn.close()


def test_checksum_ignores_row_order_but_not_contents() -> None:
    a, b, c = Checksum(), Checksum(), Checksum()
    for row in [("s", 0, b"x"), ("s", 1, b"y")]:
        a.add(row)
    for row in [("s", 1, b"y"), ("s", 0, b"x")]:
        b.add(row)
    for row in [("s", 0, b"y"), ("s", 1, b"x")]:
        c.add(row)
    assert a.hexdigest == b.hexdigest != c.hexdigest
    assert a.count == c.count == 2
    real, whole = Checksum(), Checksum()
    real.add((60.0, None))
    whole.add((60, None))
    assert real.hexdigest == whole.hexdigest


def test_compare_names_every_difference() -> None:
    assert compare({"a": (1, "x")}, {"a": (1, "x")}) == []
    problems = compare(
        {"a": (1, "x"), "b": (2, "y"), "c": (3, "z")},
        {"a": (1, "X"), "b": (1, "y"), "d": (0, "")},
    )
    assert problems == [
        "a: same count (1) but the contents differ",
        "b: 2 rows in the source, 1 in the destination",
        "c: missing from the destination",
        "d: only in the destination",
    ]


@pytest.mark.parametrize("arg", [[], ["only-one"]])
def test_migrate_needs_both_arguments(arg: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["migrate", *arg])
    assert info.value.code == 2
    assert "usage: eventlog migrate" in capsys.readouterr().err


async def test_migrate_copies_scheduled_events_and_checkpoints(tmp_path: Path, pg_url: str) -> None:
    src = tmp_path / "src.db"
    async with EventLog.open(src, retention_interval=0) as log:
        for i in range(3):
            await log.append("later", {"i": i}, type="t", id=f"s{i}", at=timedelta(hours=i + 1))
        async with log.transaction() as txn:
            await txn.append("files", 1, type="t")
            await txn.set_checkpoint("source:app", b'{"offset": 8}')
    result = migrate(str(src), pg_url)
    assert result.returncode == 0, result.stderr
    async with EventLog.open(pg_url, retention_interval=0) as log:
        page = await log.schedules.page()
        assert [s.id for s in page.schedules] == ["s0", "s1", "s2"]
        assert await log.checkpoint("source:app") == b'{"offset": 8}'
        # The copied rows' sequence numbers are behind the sequence: a new one sorts last.
        await log.append("later", {}, type="t", id="s9", at=timedelta(hours=1))
        ids = [s.id for s in (await log.schedules.page(stream="later")).schedules]
        assert ids == ["s0", "s9", "s1", "s2"]


def test_migrate_copies_a_log_eventlog_serve_made_with_its_sources_and_shared_consumers(
    tmp_path: Path, pg_url: str
) -> None:
    """`eventlog serve` makes the ingest tables in every database it opens; a log it
    served must migrate, its API-made ingest sources and shared consumers with it."""
    src = tmp_path / "served.db"
    source = {"stream": "orders", "verify": {"scheme": "bearer", "token": "t0k"}, "type": "o"}
    with ServerProcess.start(db=src) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/api/streams/mail/events", json={"type": "m"}).status_code == 201
        assert client.put("/api/ingest/sources/shop", json=source).status_code == 201
        assert client.put("/api/consumers/mailer/shared", json={"stream": "mail"}).is_success
    result = migrate(str(src), pg_url)
    assert result.returncode == 0, result.stderr
    assert "1 ingest_sources rows" in result.stderr
    assert "1 shared_consumers rows" in result.stderr
    with ServerProcess.start(db=pg_url) as server, httpx.Client(base_url=server.url) as client:
        sent = client.post("/ingest/shop", json={}, headers={"authorization": "Bearer t0k"})
        assert sent.status_code == 202, sent.text
        assert sent.json()["stream"] == "orders"
        assert client.get("/api/consumers/mailer/shared").json()["pending"] == 1
