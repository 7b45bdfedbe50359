"""``eventlog append --at/--delay`` and ``eventlog schedules``, over --db and over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.server.cli.conftest import eventlog, lines_json
from tests.serverproc import ServerProcess
from tests.support import scaled


@pytest.fixture(params=["db", "url"])
def target(request: pytest.FixtureRequest, db: Path) -> list[str]:
    """Connection options: a database file, or the module's server."""
    if request.param == "db":
        return ["--db", str(db)]
    server: ServerProcess = request.getfixturevalue("server")
    return ["--url", server.url]


def test_append_at_schedules_and_schedules_lists_and_cancels(target: list[str]) -> None:
    stream = f"cli-{target[0][2:]}"
    done = eventlog("append", *target, stream, '{"n":1}', "-t", "r", "--id", "a", "--delay", "3600")
    assert done.returncode == 0, done.stderr
    [scheduled] = lines_json(done.stdout)
    assert (scheduled["id"], scheduled["new"]) == ("a", True)
    piped = eventlog(
        "append", *target, stream, "-t", "r", "--at", "2099-01-01T00:00:00Z", input="1\n2\n"
    )
    assert piped.returncode == 1  # beyond the default 366-day horizon
    assert "horizon" in piped.stderr
    listed = eventlog("schedules", "list", *target, "--stream", stream, "--json")
    assert [s["id"] for s in lines_json(listed.stdout)] == ["a"]
    table = eventlog("schedules", "list", *target)
    assert "a" in table.stdout.split()
    assert eventlog("schedules", "cancel", *target, stream, "a").returncode == 0
    again = eventlog("schedules", "cancel", *target, stream, "a")
    assert again.returncode == 1
    assert "schedule_not_found" in again.stderr


def test_append_delay_zero_appends_at_once(target: list[str]) -> None:
    stream = f"now-{target[0][2:]}"
    lines = '{"a":1}\n{"a":2}\n'
    done = eventlog("append", *target, stream, "-t", "r", "--delay", "0", input=lines)
    assert done.returncode == 0, done.stderr
    ids = [s["id"] for s in lines_json(done.stdout)]
    assert len(ids) == 2
    deadline = time.monotonic() + scaled(10)
    while True:  # appended by the schedule's task, a moment later
        tail = eventlog("tail", *target, stream, "--from", "beginning")
        if len(tail.stdout.splitlines()) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [e["id"] for e in lines_json(tail.stdout)] == ids


@pytest.mark.parametrize(
    "flags",
    [["--at", "tomorrow"], ["--at", "2026-12-06T14:00"], ["--delay", "-3"], ["--delay", "x"]],
)
def test_bad_due_times_are_usage_errors(db: Path, flags: list[str]) -> None:
    done = eventlog("append", "--db", str(db), "s", "1", "-t", "r", *flags)
    assert done.returncode == 2
    assert "--at" in done.stderr or "--delay" in done.stderr


def test_a_delay_too_large_says_the_range_not_just_non_negative(db: Path) -> None:
    done = eventlog("append", "--db", str(db), "s", "1", "-t", "r", "--delay", "99999999999")
    assert done.returncode == 2
    assert "from 0 to 10000000000, not '99999999999'" in done.stderr
