"""Transactional handlers: their writes and the consumer's offset commit together."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import asyncpg
import pytest

from consumers import Backoff, ConsumerManager
from eventlog import Event, EventLog, NewEvent, OffsetTransaction, Unsupported
from tests import forked
from tests.consumers.conftest import durable_target
from tests.support import scaled

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 2_500


def insert_sql(tx: OffsetTransaction) -> str:
    return "INSERT INTO projection (o) VALUES (" + ("$1)" if tx.kind == "postgres" else "?)")


async def create_projection(log: EventLog, target: str) -> None:
    if target.startswith("postgresql://"):
        pg = await asyncpg.connect(target)
        try:
            await pg.execute("CREATE TABLE projection (o bigint NOT NULL)")
        finally:
            await pg.close()
    else:
        db = sqlite3.connect(target)
        try:
            db.execute("CREATE TABLE projection (o INTEGER NOT NULL)")
            db.commit()
        finally:
            db.close()


async def projection_and_offset(target: str) -> tuple[list[int], int | None]:
    """Every projected offset (sorted) and the consumer's committed offset."""
    if target.startswith("postgresql://"):
        pg = await asyncpg.connect(target)
        try:
            rows = [r[0] for r in await pg.fetch("SELECT o FROM projection ORDER BY o")]
            offset = await pg.fetchval(
                "SELECT \"offset\" FROM eventlog.consumer_offsets WHERE name = 'projector'"
            )
        finally:
            await pg.close()
        return rows, offset
    db = sqlite3.connect(target)
    try:
        rows = [r[0] for r in db.execute("SELECT o FROM projection ORDER BY o")]
        found = db.execute(
            "SELECT offset FROM consumer_offsets WHERE name = 'projector'"
        ).fetchone()
    finally:
        db.close()
    return rows, None if found is None else found[0]


async def projected(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, events: int
) -> str:
    """A log on ``backend`` with the projection table and ``events`` events; its target."""
    target = await durable_target(backend, tmp_path, request)
    async with EventLog.open(target) as log:
        await create_projection(log, target)
        await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(events)])
    return target


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_failed_transactional_handler_leaves_neither_rows_nor_offset(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = await projected(backend, tmp_path, request, 5)
    async with EventLog.open(target) as log:
        calls = 0

        async def project(events: list[Event], tx: OffsetTransaction) -> None:
            nonlocal calls
            calls += 1
            for event in events:
                await tx.execute(insert_sql(tx), event.offset)
            if calls == 1:
                raise RuntimeError("crash after writing")

        manager = ConsumerManager(log, backoff=Backoff(base=0.01, cap=0.01), poll_timeout=0.1)
        manager.add("projector", "s", project, transactional=True)
        async with manager:
            deadline = time.monotonic() + scaled(10)
            while manager.status()[0].committed != 5:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        assert manager.status()[0].transactional
    assert await projection_and_offset(target) == ([0, 1, 2, 3, 4], 5)


async def test_transactional_handlers_are_refused_in_memory(memory_log: EventLog) -> None:
    async def project(events: list[Event], tx: OffsetTransaction) -> None: ...

    with pytest.raises(Unsupported, match="need the log in a database"):
        ConsumerManager(memory_log).add("p", "s", project, transactional=True)
    with pytest.raises(Unsupported, match="use SQLite or PostgreSQL"):
        await memory_log.consumer("p", "s").transact(project)  # type: ignore[arg-type]


def run_child(target: str, out: Path, *, kill_after: float | None) -> int:
    child = forked.start(
        "tests.consumers.exactly_once_child", [target, str(TOTAL)], cwd=ROOT, stdout=out
    )
    try:
        child.wait_for_line(b"ready", scaled(30))
        if kill_after is None:
            return child.wait(scaled(60))
        time.sleep(kill_after)
        child.kill()
        return child.wait(scaled(10))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# 21 child processes, forked from a preloaded interpreter (tests/forked.py).
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
async def test_projection_has_one_row_per_event_after_20_sigkills(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = await projected(backend, tmp_path, request, TOTAL)
    rng = random.Random(15)
    progress = []
    for n in range(20):
        out, pause = tmp_path / f"child-{n}.out", rng.uniform(0, 0.15)
        assert await asyncio.to_thread(run_child, target, out, kill_after=pause) == -9
        rows, offset = await projection_and_offset(target)
        # Exactly the committed prefix is projected, once: no lost and no doubled rows.
        assert rows == list(range(offset or 0))
        progress.append(offset or 0)
    assert 0 < progress[-1] < TOTAL, progress  # the kills landed while it worked
    assert await asyncio.to_thread(run_child, target, tmp_path / "last.out", kill_after=None) == 0
    assert await projection_and_offset(target) == (list(range(TOTAL)), TOTAL)


async def test_transactional_poison_is_parked_and_its_replay_commits_in_the_transaction(
    tmp_path: Path,
) -> None:
    target = str(tmp_path / "e.db")
    async with EventLog.open(target) as log:
        await create_projection(log, target)
        await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(6)])
        fixed = False

        async def project(events: list[Event], tx: OffsetTransaction) -> None:
            for event in events:
                await tx.execute(insert_sql(tx), event.offset)
                if event.offset == 3 and not fixed:
                    raise ValueError("bad row")

        manager = ConsumerManager(log, backoff=Backoff(base=0.001, cap=0.001), poll_timeout=0.1)
        manager.add("projector", "s", project, transactional=True, max_attempts=2)
        async with manager:
            deadline = time.monotonic() + scaled(10)
            while manager.status()[0].committed != 6:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert (await projection_and_offset(target))[0] == [0, 1, 2, 4, 5]
            fixed = True
            result = await manager.replay_parked("projector")
            assert (result.replayed, result.remaining) == (1, 0)
        assert await log.consumer("projector", "projector.parked").lag() == 0
    assert (await projection_and_offset(target))[0] == [0, 1, 2, 3, 4, 5]


def test_declared_consumer_can_be_transactional(tmp_path: Path) -> None:
    import httpx

    from tests.serverproc import ServerProcess

    db = tmp_path / "e.db"
    asyncio.run(_create_log_with_projection(str(db)))
    config = tmp_path / "eventlog.toml"
    config.write_text(
        '[[consumers]]\nname = "projector"\nkind = "tests.consumers.projection_kind:make"\n'
        'stream = "s"\ntransactional = true\n'
    )
    with (
        ServerProcess.start(db=db, extra_args=["--config", str(config)]) as server,
        httpx.Client(base_url=server.url, timeout=scaled(30)) as http,
    ):
        batch = [{"type": "t", "data": i} for i in range(100)]
        assert http.post("/api/streams/s/events", json=batch).status_code == 201
        deadline = time.monotonic() + scaled(20)
        while True:
            detail = http.get("/api/consumers/projector").json()
            if {s["stream"]: s["offset"] for s in detail["streams"]}.get("s") == 100:
                break
            assert time.monotonic() < deadline, detail
            time.sleep(0.05)
        assert server.stop() == 0
    assert asyncio.run(projection_and_offset(str(db))) == (list(range(100)), 100)


async def _create_log_with_projection(target: str) -> None:
    async with EventLog.open(target) as log:
        await create_projection(log, target)
