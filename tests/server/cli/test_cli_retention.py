"""``eventlog streams retention STREAM``: show, set and clear a stream's retention, over
``--url`` and ``--db``, as a subprocess."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from eventlog import EventLog, Retention
from tests.server.cli.conftest import eventlog
from tests.serverthread import ServerThread


def test_streams_retention_sets_shows_and_clears_over_url(server: ServerThread) -> None:
    url = ("--url", server.url)
    eventlog("append", *url, "cr-orders", "-t", "t", input="1\n2\n3\n")
    set_ = eventlog(
        "streams", "retention", "cr-orders", *url, "--max-age", "7d", "--max-count", "1000"
    )
    assert (set_.returncode, set_.stdout) == (0, "cr-orders: retention age 7d, count 1000\n")
    shown = eventlog("streams", "retention", "cr-orders", *url, "--json")
    assert shown.returncode == 0, shown.stderr
    assert msgspec.json.decode(shown.stdout) == {
        "max_age": 604800.0,
        "max_count": 1000,
        "max_bytes": None,
        "protect": True,
        "max_hold": None,
    }
    replaced = eventlog(
        "streams", "retention", *url, "cr-orders", "--max-bytes", "500", "--max-hold", "1h"
    )
    assert replaced.stdout == "cr-orders: retention bytes 500 bytes, held 1h at most\n"
    listed = eventlog("streams", *url)
    assert "bytes 500 bytes, held 1h at most" in listed.stdout
    cleared = eventlog("streams", "retention", "cr-orders", *url, "--clear")
    assert cleared.stdout == "cr-orders: retention none (keeps every event)\n"


async def test_streams_retention_on_a_db_file_is_what_the_log_reads(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    eventlog("append", "--db", str(db), "orders", "-t", "t", input="1\n2\n3\n4\n")
    r = eventlog("streams", "retention", "orders", "--db", str(db), "--max-count", "2")
    assert (r.returncode, r.stdout) == (0, "orders: retention count 2\n")
    async with EventLog.open(db) as log:
        assert (await log.stream_info("orders")).retention == Retention(max_count=2)
        assert await log.enforce_retention() == 2
    tail = eventlog("tail", "--db", str(db), "orders", "--from", "beginning")
    assert tail.returncode == 0, tail.stderr
    assert [msgspec.json.decode(line)["data"] for line in tail.stdout.splitlines()] == [3, 4]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-count", "0"), "max_count must be an integer above 0"),
        (("--max-age", "soon"), "not a duration: 'soon'"),
        (("--clear", "--max-count", "3"), "--clear takes no other retention option"),
    ],
)
def test_bad_retention_options_exit_nonzero_with_the_reason(
    server: ServerThread, args: tuple[str, ...], message: str
) -> None:
    eventlog("append", "--url", server.url, "cr-bad", "-t", "t", "1")
    r = eventlog("streams", "retention", "cr-bad", "--url", server.url, *args)
    assert r.returncode in (1, 2)
    assert message in r.stderr
    assert r.stdout == ""
    shown = eventlog("streams", "retention", "cr-bad", "--url", server.url)
    assert shown.stdout == "cr-bad: retention none (keeps every event)\n"


def test_retention_options_without_the_action_or_stream_are_usage_errors(
    server: ServerThread,
) -> None:
    plain = eventlog("streams", "--url", server.url, "--max-count", "5")
    assert plain.returncode == 2
    assert "need `streams retention STREAM`" in plain.stderr
    no_stream = eventlog("streams", "retention", "--url", server.url)
    assert no_stream.returncode == 2
    assert "needs a STREAM" in no_stream.stderr
    missing = eventlog("streams", "retention", "cr-nope", "--url", server.url)
    assert missing.returncode == 1
    assert "cr-nope" in missing.stderr
