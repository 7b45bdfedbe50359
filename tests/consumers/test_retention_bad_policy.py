"""A stored policy the API would refuse (written by an older version) skips that stream only.

On each persistent backend: a real SQLite file, and a database of the tests' own
PostgreSQL, with the bad values written by raw SQL as each backend's columns can
hold them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from eventlog import EventLog, NewEvent, Retention
from eventlog.retention import run_retention
from eventlog.storage.postgres import PostgresStorage
from tests import forked
from tests.consumers.conftest import DURABLE, durable_target
from tests.serverproc import ServerProcess, run_cli
from tests.support import TIMEOUT_SCALE, scaled

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
# PostgreSQL's columns are typed (seconds double precision, counts bigint): no float
# count and no text, but NaN, which SQLite stores as NULL.
PG_BAD = [
    ("max_age", 1e300),
    ("max_age", float("inf")),
    ("max_age", float("nan")),
    ("max_count", 0),
    ("max_bytes", -1),
    ("max_hold", -1.0),
]
CASES = [
    *(pytest.param("sqlite", c, v, id=f"sqlite-{c}-{v}") for c, v in BAD),
    *(pytest.param("postgres", c, v, id=f"postgres-{c}-{v}") for c, v in PG_BAD),
]
#: The values that once made GET /api/streams/{stream} answer 500 (SQLite), and
#: PostgreSQL's out-of-range seconds and zero count.
GET_CASES = [CASES[i] for i in (0, 1, 2, 4)] + CASES[len(BAD) : len(BAD) + 4]


async def _fill(log: EventLog, n: int = 10) -> None:
    for stream in ("a-bad", "b-good"):
        await log.append_batch(stream, [NewEvent(type="t", data=i) for i in range(n)])
    await log.set_retention("b-good", Retention(max_count=3))
    await log.set_retention("a-bad", Retention(max_count=3))


async def _store_bad_policy(target: str, column: str, value: object) -> None:
    """A log at ``target`` whose stream ``a-bad`` holds ``column = value``, by raw SQL."""
    async with EventLog.open(target, retention_interval=0) as log:
        await _fill(log)
    if target.startswith("postgresql://"):
        schema = PostgresStorage(target).schema
        conn = await asyncpg.connect(target)
        try:
            await conn.execute(
                f"UPDATE {schema}.streams SET {column} = $1 WHERE name = 'a-bad'", value
            )
        finally:
            await conn.close()
    else:
        with sqlite3.connect(target) as db:
            db.execute(f"UPDATE streams SET {column} = ? WHERE name = 'a-bad'", (value,))
        db.close()


def _skips(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "skipping stream a-bad" in r.getMessage()]


@pytest.mark.parametrize(("backend", "column", "value"), CASES)
async def test_a_bad_stored_policy_is_skipped_with_a_warning_and_the_others_trimmed(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    column: str,
    value: object,
) -> None:
    target = await durable_target(backend, tmp_path, request)
    await _store_bad_policy(target, column, value)
    async with EventLog.open(target, retention_interval=0) as log:
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


@pytest.mark.parametrize("backend", DURABLE)
async def test_the_periodic_task_keeps_trimming_past_a_bad_policy(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    target = await durable_target(backend, tmp_path, request)
    async with EventLog.open(target, retention_interval=0.05) as log:
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


@pytest.mark.parametrize(("backend", "column", "value"), GET_CASES)
def test_get_of_a_stream_with_a_bad_stored_policy_answers(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, column: str, value: Any
) -> None:
    target = asyncio.run(durable_target(backend, tmp_path, request))
    asyncio.run(_store_bad_policy(target, column, value))
    number = isinstance(value, float)
    shown = None if number and not math.isfinite(value) else value  # JSON has no inf, NaN
    with ServerProcess.start(db=target) as server:
        detail = httpx.get(f"{server.url}/api/streams/a-bad")
        assert detail.status_code == 200, detail.text
        assert detail.json()["retention"][column] == shown
        assert detail.json()["holds"] == []
        policy = httpx.get(f"{server.url}/api/streams/a-bad/retention")
        assert policy.status_code == 200, policy.text
        assert policy.json() == detail.json()["retention"]
        assert httpx.get(f"{server.url}/metrics").status_code == 200
        listed = httpx.get(f"{server.url}/api/streams")
        assert listed.status_code == 200, listed.text
        (bad,) = [s for s in listed.json()["streams"] if s["name"] == "a-bad"]
        assert bad["retention"] == detail.json()["retention"]
        # The CLI over the client: the stream list and the policy, said to be refused
        # (an infinity or NaN reaches it as null: JSON has neither).
        for args in (["streams"], ["streams", "retention", "a-bad"]):
            code, out, err = asyncio.run(run_cli(server, *args))
            assert code == 0, err
            assert ("refused, trims nothing" in out) is (shown is not None), out
        # The fix: a valid policy replaces it, and the stream is planned again.
        fixed = httpx.put(f"{server.url}/api/streams/a-bad/retention", json={"max_count": 3})
        assert fixed.status_code == 200, fixed.text
        again = httpx.get(f"{server.url}/api/streams/a-bad").json()
        assert again["retention"]["max_count"] == 3
        assert again["retention"][column] == (3 if column == "max_count" else None)


@pytest.mark.parametrize(("column", "value"), BAD)
def test_the_cli_on_the_file_says_a_bad_stored_policy_is_refused(
    tmp_path: Path, column: str, value: object
) -> None:
    db = str(tmp_path / "events.db")
    asyncio.run(_store_bad_policy(db, column, value))
    for args in (["streams"], ["streams", "retention", "a-bad"]):
        proc = forked.run("server.cli", [*args, "--db", db], timeout=scaled(30))
        assert proc.returncode == 0, proc.stderr.decode()  # was a TypeError for text
        assert b"refused, trims nothing: retention " + column.encode() in proc.stdout
