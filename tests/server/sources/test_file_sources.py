"""File sources against a real SQLite log: each kind, rotation, truncation, bad input."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventlog import EventLog
from server.sources import kinds as kinds_module
from server.sources.kinds import Directory, JsonFile, NdjsonTail, source_kinds
from server.sources.lines import split_lines
from server.sources.runtime import SourceContext, run_source
from server.sources.spec import SourceError, parse_spec
from tests.pg import PgCluster, pg_cluster  # noqa: F401 - the session's PostgreSQL
from tests.support import scaled


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    async with EventLog.open(tmp_path / "events.db", retention_interval=0) as opened:
        yield opened


def _ctx(log: EventLog, **spec: Any) -> SourceContext:
    return SourceContext(parse_spec({"name": "src", "stream": "s", **spec}), log)


def _tail(log: EventLog, path: Path) -> NdjsonTail:
    """A new ``ndjson-tail`` reader of ``path``, as after a restart."""
    return NdjsonTail(_ctx(log, kind="ndjson-tail", path=str(path)))


async def _tailed_file(log: EventLog, tmp_path: Path) -> Path:
    """``app.ndjson`` holding the line ``{"n":1}``, read by a tail."""
    path = tmp_path / "app.ndjson"
    path.write_bytes(b'{"n":1}\n')
    await _tail(log, path).catch_up()
    return path


async def _data(log: EventLog, stream: str = "s") -> list[Any]:
    return [msgspec.json.decode(e.data) async for e in log.scan(stream)]


def test_split_lines_keeps_an_unterminated_line_for_later() -> None:
    lines, used = split_lines(b'{"a":1}\n{"b":2}\r\n{"c"', 100, 4)
    assert [(n, o, r) for n, o, r in lines] == [(5, 100, b'{"a":1}'), (6, 108, b'{"b":2}')]
    assert used == 17


def test_specs_are_checked() -> None:
    spec = parse_spec({"name": "a", "kind": "json-file", "path": "/x", "stream": "s"})
    assert (spec.event_type, spec.error_stream) == ("a.file", "s.errors")
    for bad in (
        {"name": "a", "kind": "nope", "path": "/x", "stream": "s"},
        {"name": "", "kind": "json-file", "path": "/x", "stream": "s"},
        {"name": "a", "kind": "json-file", "path": "/x", "stream": "bad/stream"},
        {"name": "a", "kind": "json-file", "path": "/x", "stream": "s", "color": "red"},
        {"name": "a", "kind": "json-file", "stream": "s"},
    ):
        with pytest.raises(SourceError):
            parse_spec(bad)


async def test_tail_appends_new_lines_and_parks_bad_ones_with_their_line(
    log: EventLog, tmp_path: Path
) -> None:
    path = tmp_path / "app.ndjson"
    path.write_bytes(b'{"n":1}\nnot json\n{"n":2}\n\xff\xfe\n\n{"n":3')
    tail = _tail(log, path)
    await tail.catch_up()
    assert await _data(log) == [{"n": 1}, {"n": 2}]  # {"n":3 has no newline yet
    errors = await _data(log, "s.errors")
    assert [(e["line"], e["error"][:8]) for e in errors] == [(2, "not JSON"), (4, "not UTF-")]
    assert errors[0]["file"] == str(path)
    with open(path, "ab") as f:
        f.write(b"}\n")
    await tail.catch_up()
    assert await _data(log) == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_tail_follows_rotation_and_truncation_across_restarts(
    log: EventLog, tmp_path: Path
) -> None:
    path = await _tailed_file(log, tmp_path)
    with open(path, "ab") as f:
        f.write(b'{"n":2}\n{"n":3}')  # the last line never gets its newline
    path.rename(tmp_path / "app.ndjson.1")
    path.write_bytes(b'{"n":4}\n{"n":5}\n')
    # A new reader (a restart) finds the rotated file by its identity and finishes it.
    await _tail(log, path).catch_up()
    assert await _data(log) == [{"n": i} for i in range(1, 6)]
    os.truncate(path, 0)  # copytruncate
    path.write_bytes(b'{"n":6}\n')
    await _tail(log, path).catch_up()
    assert await _data(log) == [{"n": i} for i in range(1, 7)]


async def test_tail_reads_every_file_of_two_rotations_while_it_was_down(
    log: EventLog, tmp_path: Path
) -> None:
    # The crash test's failure under load (66,500 of 100,000 lines: the first and
    # last files, not the middle one): the source, still in the first file,
    # missed two rotations and went from the first file straight to the current one.
    path = await _tailed_file(log, tmp_path)
    with open(path, "ab") as f:
        f.write(b'{"n":2}\n')
    path.rename(tmp_path / "app.ndjson.1")
    path.write_bytes(b'{"n":3}\n{"n":4}\n')
    path.rename(tmp_path / "app.ndjson.2")
    path.write_bytes(b'{"n":5}\n')
    await _tail(log, path).catch_up()
    assert await _data(log) == [{"n": i} for i in range(1, 6)]


async def test_tail_reads_a_rotated_file_longer_than_one_read_line_by_line(
    log: EventLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds_module, "READ_BYTES", 10)
    path = tmp_path / "app.ndjson"
    path.touch()
    tail = _tail(log, path)
    await tail.catch_up()
    path.write_bytes(b'{"n":1}\n{"n":22}\n{"n":3}')  # a read ends inside {"n":22}
    path.rename(tmp_path / "app.ndjson.1")
    path.write_bytes(b'{"n":4}\n')
    await tail.catch_up()
    assert await _data(log) == [{"n": 1}, {"n": 22}, {"n": 3}, {"n": 4}]
    assert await _data(log, "s.errors") == []


def _big(size: int) -> bytes:
    """A JSON line of exactly ``size`` bytes (no newline)."""
    return b'{"big":"' + b"x" * (size - 10) + b'"}'


async def test_tail_parks_a_line_over_the_event_limit_and_goes_on(
    log: EventLog, tmp_path: Path
) -> None:
    # A whole line that fits one read, but whose event (data plus the source
    # header) is over max_event_bytes: once it wedged the source ("EventTooLarge
    # ... (retrying)" for ever), and no later line was appended.
    limit = log.config.max_event_bytes
    path = tmp_path / "app.ndjson"
    path.write_bytes(b'{"n":1}\n' + _big(limit - 5) + b'\n{"n":2}\n')
    tail = _tail(log, path)
    await tail.catch_up()
    assert await _data(log) == [{"n": 1}, {"n": 2}]
    errors = await _data(log, "s.errors")
    assert [(e["line"], e["offset"]) for e in errors] == [(2, 8)]
    assert "max_event_bytes" in errors[0]["error"]
    assert len(errors[0]["text"]) == 200


async def test_tail_parks_a_line_longer_than_a_read_once_with_its_number(
    log: EventLog, tmp_path: Path
) -> None:
    # A line of 2.5 MiB was parked as three "lines" (1 MiB pieces, lines 2, 3
    # and 4), and every later line got a number two too high.
    path = tmp_path / "app.ndjson"
    path.write_bytes(b'{"n":1}\n' + _big(5 << 19) + b'\n{"n":2}\nnot json\n')
    tail = _tail(log, path)
    await tail.catch_up()
    assert await _data(log) == [{"n": 1}, {"n": 2}]
    errors = await _data(log, "s.errors")
    assert [(e["line"], e["offset"]) for e in errors] == [(2, 8), (4, 8 + (5 << 19) + 9)]
    assert errors[0]["error"].startswith("line longer than 1048576 bytes")
    with open(path, "ab") as f:  # a restart in the middle of a long line skips it too
        f.write(_big(3 << 20)[: 2 << 20])
    await _tail(log, path).catch_up()
    with open(path, "ab") as f:
        f.write(b'"}\n{"n":3}\n')
    await _tail(log, path).catch_up()
    assert await _data(log) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert [e["line"] for e in await _data(log, "s.errors")] == [2, 4, 5]


async def test_json_file_and_directory_park_a_document_over_the_event_limit(
    log: EventLog, tmp_path: Path
) -> None:
    path = tmp_path / "stats.json"
    path.write_bytes(_big(log.config.max_event_bytes + 1))
    source = JsonFile(_ctx(log, kind="json-file", path=str(path)))
    await source.catch_up()
    path.write_bytes(b'{"cpu": 1}')
    await source.catch_up()
    assert await _data(log) == [{"cpu": 1}]
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "big.json").write_bytes(_big(log.config.max_event_bytes + 1))
    old = os.path.getmtime(inbox / "big.json") - 5
    os.utime(inbox / "big.json", (old, old))
    await Directory(_ctx(log, kind="directory", path=str(inbox))).catch_up()
    assert await _data(log) == [{"cpu": 1}]
    assert ["max_event_bytes" in e["error"] for e in await _data(log, "s.errors")] == [True] * 2


async def test_tail_of_a_missing_file_waits(log: EventLog, tmp_path: Path) -> None:
    tail = NdjsonTail(_ctx(log, kind="ndjson-tail", path=str(tmp_path / "later.ndjson")))
    await tail.catch_up()
    (tmp_path / "later.ndjson").write_bytes(b'{"n":1}\n')
    await tail.catch_up()
    assert await _data(log) == [{"n": 1}]


async def test_json_file_appends_each_new_content_once(log: EventLog, tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    source = JsonFile(_ctx(log, kind="json-file", path=str(path)))
    await source.catch_up()  # no file yet
    for content in (b'{"cpu": 1}', b'{"cpu": 1}', b'{"cpu": 2}', b"{broken", b'{"cpu": 3}'):
        path.write_bytes(content)
        await source.catch_up()
    await JsonFile(_ctx(log, kind="json-file", path=str(path))).catch_up()  # a restart
    assert await _data(log) == [{"cpu": 1}, {"cpu": 2}, {"cpu": 3}]
    assert [e["error"][:4] for e in await _data(log, "s.errors")] == ["not "]
    events = await log.read("s")
    assert len(events[0].id) == 64  # the content's SHA-256


async def test_directory_takes_each_new_file_and_moves_it_to_done(
    log: EventLog, tmp_path: Path
) -> None:
    inbox, done = tmp_path / "in", tmp_path / "done"
    inbox.mkdir()
    (inbox / "a.json").write_bytes(b'{"f": "a"}')
    (inbox / "skip.txt").write_bytes(b"not matched")
    old = os.path.getmtime(inbox / "a.json") - 5
    os.utime(inbox / "a.json", (old, old))
    source = Directory(
        _ctx(log, kind="directory", path=str(inbox), pattern="*.json", done=str(done))
    )
    await source.catch_up()
    (inbox / "b.json").write_bytes(b'{"f": "b"}')
    await source.catch_up()  # waits for b.json to settle
    assert await _data(log) == [{"f": "a"}, {"f": "b"}]
    assert sorted(p.name for p in done.iterdir()) == ["a.json", "b.json"]
    assert [p.name for p in inbox.iterdir()] == ["skip.txt"]


async def test_directory_lines_mode_without_done_remembers_files(
    log: EventLog, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "x.ndjson").write_bytes(b'{"l": 1}\nbad\n{"l": 2}')
    ctx = {"kind": "directory", "path": str(inbox), "mode": "lines"}
    await Directory(_ctx(log, **ctx)).catch_up()
    await Directory(_ctx(log, **ctx)).catch_up()  # a restart: nothing again
    assert await _data(log) == [{"l": 1}, {"l": 2}]
    assert [e["line"] for e in await _data(log, "s.errors")] == [2]


async def test_a_missing_directory_is_an_error_the_source_recovers_from(
    log: EventLog, tmp_path: Path
) -> None:
    inbox = tmp_path / "not-yet"
    ctx = _ctx(log, kind="directory", path=str(inbox))
    stop = asyncio.Event()
    task = asyncio.create_task(run_source(Directory, ctx, stop))
    try:
        async with asyncio.timeout(scaled(5)):
            while ctx.error is None:  # noqa: ASYNC110 - the status is what we watch
                await asyncio.sleep(0.02)
        assert "FileNotFoundError" in ctx.error
        inbox.mkdir()
        (inbox / "late.json").write_bytes(b'{"late": true}')
        async with asyncio.timeout(scaled(10)):
            while not await log.wait("s", 0, 0.2):
                pass
        assert await _data(log) == [{"late": True}]
    finally:
        stop.set()
        await asyncio.wait_for(task, scaled(10))


def test_plugin_kinds_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    class Entry:
        name = "mine"

        @staticmethod
        def load() -> type:
            return JsonFile

    def fake(group: str) -> list[Entry]:
        assert group == "eventlog.sources"
        return [Entry()]

    monkeypatch.setattr(kinds_module, "entry_points", fake)
    kinds = source_kinds()
    assert kinds["mine"] is JsonFile
    assert {"ndjson-tail", "json-file", "directory"} <= set(kinds)


@pytest.mark.postgres
async def test_tail_on_postgres_commits_position_with_appends(
    pg_cluster: PgCluster,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    url = await pg_cluster.create_database()
    path = tmp_path / "app.ndjson"
    path.write_bytes(b'{"n":1}\n{"n":2}\n')
    async with EventLog.open(url, retention_interval=0) as pg:
        await NdjsonTail(_ctx(pg, kind="ndjson-tail", path=str(path))).catch_up()
        with open(path, "ab") as f:
            f.write(b'{"n":3}\n')
        await NdjsonTail(_ctx(pg, kind="ndjson-tail", path=str(path))).catch_up()
        assert await _data(pg) == [{"n": 1}, {"n": 2}, {"n": 3}]
        position = await pg.checkpoint("source:src")
        assert position is not None
        assert msgspec.json.decode(position)["line"] == 3


async def test_two_runners_of_one_source_append_each_line_once(
    log: EventLog, tmp_path: Path
) -> None:
    """Two readers of the same file and position (two processes running one source):
    the checkpoint's compare-and-set lets one commit each batch; the other reloads."""
    path = tmp_path / "app.ndjson"
    stop = asyncio.Event()
    spec = {"kind": "ndjson-tail", "path": str(path)}
    contexts = [_ctx(log, **spec), _ctx(log, **spec)]
    tasks = [asyncio.create_task(run_source(NdjsonTail, c, stop)) for c in contexts]
    try:
        with open(path, "ab") as f:
            for i in range(200):
                f.write(b'{"n":%d}\n' % i)
                f.flush()
                if i % 20 == 0:
                    await asyncio.sleep(0.02)
        async with asyncio.timeout(scaled(10)):
            while not await log.wait("s", 199, 0.2):
                pass
        await asyncio.sleep(0.3)  # let a late duplicate show if there were one
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert await _data(log) == [{"n": i} for i in range(200)]
    assert sum(c.appended for c in contexts) == 200
