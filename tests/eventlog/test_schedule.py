"""Scheduled appends: the pure rules, restarts on SQLite, and several processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventlog import EventLog, InvalidInput, InvalidSchedule, LogConfig, NewEvent
from eventlog.schedule import decode_cursor, due_time
from tests.pg import PgCluster, pg_cluster  # noqa: F401 - the session's PostgreSQL
from tests.support import scaled

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_due_time_counts_a_delay_from_now() -> None:
    assert due_time(timedelta(seconds=90), NOW, 3600) == NOW + timedelta(seconds=90)


def test_due_time_in_the_past_is_now() -> None:
    assert due_time(NOW - timedelta(days=3), NOW, 3600) == NOW
    assert due_time(timedelta(seconds=-5), NOW, 3600) == NOW


def test_due_time_beyond_the_horizon_is_refused() -> None:
    assert due_time(NOW + timedelta(seconds=3600), NOW, 3600) == NOW + timedelta(hours=1)
    with pytest.raises(InvalidSchedule, match="horizon"):
        due_time(NOW + timedelta(seconds=3601), NOW, 3600)


def test_horizon_refusal_names_the_option_and_the_span() -> None:
    with pytest.raises(InvalidSchedule, match=r"horizon \(schedule_horizon: 366 days\)$"):
        due_time(NOW + timedelta(days=400), NOW, 366 * 86400)
    with pytest.raises(InvalidSchedule, match=r"horizon \(schedule_horizon: 1:30:00\)$"):
        due_time(NOW + timedelta(hours=2), NOW, 5400)


def test_due_time_must_be_aware() -> None:
    with pytest.raises(InvalidSchedule, match="timezone-aware"):
        due_time(datetime(2026, 12, 6, 14, 0), NOW, 3600)
    with pytest.raises(InvalidSchedule):
        due_time("2026-12-06T14:00:00Z", NOW, 3600)  # type: ignore[arg-type]


def test_cursor_rejects_what_the_log_did_not_make() -> None:
    assert decode_cursor("1765000000000000.12") == (1765000000000000, 12)
    for bad in ("", "12", "a.b", "1.-2", "9" * 25 + ".1", "8419.9799346099012717360"):
        with pytest.raises(InvalidInput):
            decode_cursor(bad)


async def test_events_due_while_closed_are_appended_at_start_in_due_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    now = datetime.now(UTC)
    async with EventLog.open(path) as log:
        for ms in (300, 100, 200):
            await log.append("r", ms, type="t", id=f"d{ms}", at=now + timedelta(milliseconds=ms))
        await log.append("r", 0, type="t", id="later", at=timedelta(hours=1))
    await asyncio.sleep(0.4)  # all three fall due while no log is open
    async with EventLog.open(path) as log:
        async with asyncio.timeout(scaled(5)):
            while not await log.wait("r", 2, 0.5):
                pass
        events = await log.read("r")
        assert [e.id for e in events] == ["d100", "d200", "d300"]
        assert all(e.time >= now + timedelta(milliseconds=int(e.id[1:])) for e in events)
        async with asyncio.timeout(scaled(5)):  # until the dispatch is done
            while len((await log.schedules.page()).schedules) > 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert [s.id for s in (await log.schedules.page()).schedules] == ["later"]


async def test_crash_between_append_and_delete_appends_nothing_twice(tmp_path: Path) -> None:
    """A due row whose append committed but whose delete did not (the process died
    between them) is dispatched again at start: the append finds its id, so the
    stream keeps one copy, and the row goes."""
    path = tmp_path / "events.db"
    async with EventLog.open(path) as log:
        await log.append("r", 1, type="t", id="once", at=timedelta(seconds=0.3))
        await log.append("r", 1, type="t", id="once")  # the append of the dying dispatch
    await asyncio.sleep(0.4)
    async with EventLog.open(path) as log:
        async with asyncio.timeout(scaled(5)):
            while log.schedules.dispatched == 0:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.02)
        assert [e.id for e in await log.read("r")] == ["once"]


@pytest.mark.postgres
async def test_several_processes_on_postgres_append_each_due_event_once(
    pg_cluster: PgCluster,  # noqa: F811 - the fixture imported above
) -> None:
    pg_url = await pg_cluster.create_database()
    config = LogConfig(retention_interval=0, schedule_poll=0.05)
    logs = [await EventLog.open(pg_url, config=config) for _ in range(3)]
    try:
        due = datetime.now(UTC) + timedelta(seconds=0.5)
        for n in range(6):  # each log schedules some: every log sees all of them
            events = [NewEvent(type="t", data=i, id=f"p{n}-{i}") for i in range(100)]
            await logs[n % 3].append_batch("s", events, at=due + timedelta(milliseconds=n * 20))
        async with asyncio.timeout(scaled(20)):
            while not await logs[0].wait("s", 599, 0.5):
                pass
            while (await logs[0].schedules.page()).schedules:  # noqa: ASYNC110 - polls storage
                await asyncio.sleep(0.05)
        stored = [e async for e in logs[0].scan("s")]
        ids = [e.id for e in stored]
        assert len(ids) == 600
        assert len(set(ids)) == 600
        assert all(e.time >= due for e in stored)
        assert sum(log.schedules.dispatched for log in logs) == 600
    finally:
        for log in logs:
            await log.close()


def test_an_sqlite_log_never_loads_the_postgres_driver(tmp_path: Path) -> None:
    """The schedule and held transactions pick their backend without importing
    PostgreSQL's: an SQLite program (and the CLI) starts without asyncpg."""
    code = (
        "import asyncio, sys\n"
        "from eventlog import EventLog\n"
        "async def main():\n"
        f"    async with EventLog.open({str(tmp_path / 'e.db')!r}) as log:\n"
        "        await log.append('s', 1, type='t', at=__import__('datetime').timedelta(0))\n"
        "        async with log.transaction() as txn:\n"
        "            await txn.append('s', 2, type='t')\n"
        "asyncio.run(main())\n"
        "print('asyncpg' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
