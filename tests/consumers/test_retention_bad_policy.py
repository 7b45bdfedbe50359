"""A stored policy the API would refuse (written by an older version) skips that stream only."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from eventlog import EventLog, NewEvent, Retention
from eventlog.retention import run_retention
from tests.serverproc import ServerProcess
from tests.support import TIMEOUT_SCALE

# (column, value) as an older version could have stored them: every one stopped the pass
# (OverflowError, TypeError) or, for 0 and below, would have emptied the stream.
BAD = [
    ("max_age", 1e300),
    ("max_age", float("inf")),
    ("max_count", 1e30),
    ("max_count", 0),
    ("max_bytes", "lots"),
    ("max_hold", -1.0),
]


async def _fill(log: EventLog, n: int = 10) -> None:
    for stream in ("a-bad", "b-good"):
        await log.append_batch(stream, [NewEvent(type="t", data=i) for i in range(n)])
    await log.set_retention("b-good", Retention(max_count=3))
    await log.set_retention("a-bad", Retention(max_count=3))


async def _file_with_bad_policy(db: Path, column: str, value: object) -> None:
    async with EventLog.open(db, retention_interval=0) as log:
        await _fill(log)
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE streams SET {column} = ? WHERE name = 'a-bad'", (value,))
    conn.close()


def _skips(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "skipping stream a-bad" in r.getMessage()]


@pytest.mark.parametrize(("column", "value"), BAD)
async def test_a_bad_stored_policy_is_skipped_with_a_warning_and_the_others_trimmed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, column: str, value: object
) -> None:
    db = tmp_path / "e.db"
    await _file_with_bad_policy(db, column, value)
    async with EventLog.open(db, retention_interval=0) as log:
        for _ in range(2):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="eventlog"):
                assert await log.enforce_retention() in (7, 0)  # the second pass: nothing left
            (record,) = _skips(caplog)
            assert record.levelno == logging.WARNING
            assert record.exc_info is None
            assert f"retention {column} must be" in record.getMessage()
            assert (await log.stream_info("b-good")).first_offset == 7
            assert (await log.stream_info("a-bad")).first_offset == 0
        # What GET /api/streams/{stream} computes: nothing to trim, nobody holds.
        plan = await log.retention_holds("a-bad")
        assert (plan.cutoff, plan.holds) == (0, [])


async def test_the_periodic_task_keeps_trimming_past_a_bad_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with EventLog.open(tmp_path / "e.db", retention_interval=0.05) as log:
        with caplog.at_level(logging.WARNING, logger="eventlog"):
            await _fill(log)
            # The storage-level call skips EventLog.set_retention's check, as old versions did.
            await log.storage.set_retention("a-bad", Retention(max_age=1e300))
            await log.append_batch("b-good", [NewEvent(type="t", data=i) for i in range(10)])
            deadline = time.monotonic() + 10 * TIMEOUT_SCALE
            while (await log.stream_info("b-good")).first_offset < 17:
                assert time.monotonic() < deadline, "the retention task stopped"
                await asyncio.sleep(0.02)
            skips = len(_skips(caplog))
            await log.append_batch("b-good", [NewEvent(type="t", data=i) for i in range(10)])
            while (await log.stream_info("b-good")).first_offset < 27:  # later passes run
                assert time.monotonic() < deadline, "the retention task stopped"
                await asyncio.sleep(0.02)
        assert (await log.stream_info("a-bad")).first_offset == 0
    assert skips >= 1
    assert len(_skips(caplog)) > skips
    assert all(r.exc_info is None for r in caplog.records)


async def test_the_retention_loop_survives_a_pass_that_raises_anything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[int] = []
    done = asyncio.Event()

    async def enforce() -> int:
        passes.append(1)
        if len(passes) == 1:
            raise OverflowError("date value out of range")
        done.set()
        return 0

    with caplog.at_level(logging.WARNING, logger="eventlog"):
        task = asyncio.create_task(run_retention(enforce, 0.01))
        await asyncio.wait_for(done.wait(), 10 * TIMEOUT_SCALE)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    (failed,) = [r for r in caplog.records if r.getMessage() == "retention pass failed"]
    assert failed.exc_info is not None
    assert failed.exc_info[0] is OverflowError
    assert len(passes) >= 2


@pytest.mark.parametrize(("column", "value"), [BAD[0], BAD[1], BAD[2], BAD[4]])
def test_get_of_a_stream_with_a_bad_stored_policy_answers(
    tmp_path: Path, column: str, value: object
) -> None:
    db = tmp_path / "e.db"
    asyncio.run(_file_with_bad_policy(db, column, value))
    shown = None if value == float("inf") else value  # JSON has no infinity
    with ServerProcess.start(db=db) as server:
        detail = httpx.get(f"{server.url}/api/streams/a-bad")
        assert detail.status_code == 200, detail.text
        assert detail.json()["retention"][column] == shown
        assert detail.json()["holds"] == []
        policy = httpx.get(f"{server.url}/api/streams/a-bad/retention")
        assert policy.status_code == 200, policy.text
        assert policy.json() == detail.json()["retention"]
        assert httpx.get(f"{server.url}/metrics").status_code == 200
