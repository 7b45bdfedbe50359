"""A confined source opens exactly the path it checked: a symlink swapped in
between the check and the open (the race) is refused, never followed.

Real files under tmp_path and a real SQLite log; the swap happens right after
:meth:`SourceDirs.check` returns, the moment the old open-by-path would race.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventlog import EventLog
from server.sources.confine import SourceDirs
from server.sources.kinds import Directory, JsonFile, NdjsonTail
from server.sources.runtime import SourceContext
from server.sources.spec import SourceError, parse_spec

SECRET = b'{"secret": "root:$6$SECRETHASH"}\n'


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    async with EventLog.open(tmp_path / "events.db", retention_interval=0) as opened:
        yield opened


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """``allowed/`` (the confined source's directory) and ``outside/`` holding secrets."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "shadow").write_bytes(SECRET)
    return allowed, outside


def _ctx(log: EventLog, allowed: Path, **spec: Any) -> SourceContext:
    return SourceContext(
        parse_spec({"name": "src", "stream": "s", **spec}), log, SourceDirs([allowed])
    )


def _swap_after_check(
    monkeypatch: pytest.MonkeyPatch, target: Path, swap: Callable[[], None], at: int
) -> list[str]:
    """Run ``swap`` right after ``target`` passes its ``at``-th check (the one just
    before the open or the move); the paths checked."""
    check = SourceDirs.check
    checked: list[str] = []

    def racing(self: SourceDirs, path: str | Path, field: str = "path") -> str:
        real = check(self, path, field)
        checked.append(str(path))
        if checked.count(str(target)) == at and Path(path) == target:
            swap()
        return real

    monkeypatch.setattr(SourceDirs, "check", racing)
    return checked


def _to_symlink(path: Path, to: Path) -> Callable[[], None]:
    def swap() -> None:
        os.rename(path, path.with_name(path.name + ".old"))
        path.symlink_to(to)

    return swap


async def _streams(log: EventLog) -> list[Any]:
    """Everything the source appended: its stream, then its error stream."""
    got = [e async for e in log.scan("s")] + [e async for e in log.scan("s.errors")]
    return [msgspec.json.decode(e.data) for e in got]


async def test_tail_refuses_its_file_swapped_for_a_symlink_after_the_check(
    log: EventLog, tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, outside = tree
    path = allowed / "app.ndjson"
    path.write_bytes(b'{"n": 1}\n')
    source = NdjsonTail(_ctx(log, allowed, kind="ndjson-tail", path=str(path)))
    checked = _swap_after_check(monkeypatch, path, _to_symlink(path, outside / "shadow"), at=2)
    with pytest.raises(SourceError, match="changed into a symlink after it was checked"):
        await source.catch_up()
    assert checked.count(str(path)) == 2
    assert path.is_symlink()
    assert await _streams(log) == []
    # The path stays a symlink to outside: every later look is refused too.
    with pytest.raises(SourceError, match="outside the directories"):
        await source.catch_up()
    assert await _streams(log) == []


async def test_json_file_refuses_a_parent_directory_swapped_for_a_symlink(
    log: EventLog, tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, outside = tree
    (allowed / "sub").mkdir()
    path = allowed / "sub" / "doc.json"
    path.write_bytes(b'{"ok": true}')
    (outside / "doc.json").write_bytes(SECRET)
    source = JsonFile(_ctx(log, allowed, kind="json-file", path=str(path)))

    def swap() -> None:
        os.rename(allowed / "sub", allowed / "sub.old")
        (allowed / "sub").symlink_to(outside)

    _swap_after_check(monkeypatch, path, swap, at=1)
    with pytest.raises(SourceError, match="changed into a symlink"):
        await source.catch_up()
    assert await _streams(log) == []


async def test_directory_does_not_move_into_a_done_swapped_for_a_symlink(
    log: EventLog, tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, outside = tree
    inbox, done = allowed / "in", allowed / "done"
    inbox.mkdir()
    done.mkdir()
    (inbox / "a.json").write_bytes(b'{"f": "a"}')
    old = os.path.getmtime(inbox / "a.json") - 5
    os.utime(inbox / "a.json", (old, old))
    source = Directory(
        _ctx(log, allowed, kind="directory", path=str(inbox), pattern="*.json", done=str(done))
    )
    # Checks of done: the pass's first look, its creation, the move (swapped after).
    _swap_after_check(monkeypatch, done, _to_symlink(done, outside), at=3)
    with pytest.raises(SourceError, match="not moved to"):
        await source.catch_up()
    assert sorted(os.listdir(outside)) == ["shadow"]
    assert os.listdir(inbox) == ["a.json"]


async def test_confined_sources_read_and_move_as_before_without_a_swap(
    log: EventLog, tree: tuple[Path, Path]
) -> None:
    allowed, _ = tree
    path = allowed / "app.ndjson"
    path.write_bytes(b'{"n": 1}\n{"n": 2}\n')
    await NdjsonTail(_ctx(log, allowed, kind="ndjson-tail", path=str(path))).catch_up()
    inbox, done = allowed / "in", allowed / "done"
    inbox.mkdir()
    (inbox / "a.json").write_bytes(b'{"f": "a"}')
    old = os.path.getmtime(inbox / "a.json") - 5
    os.utime(inbox / "a.json", (old, old))
    ctx = _ctx(log, allowed, kind="directory", path=str(inbox), done=str(done))
    await Directory(ctx).catch_up()
    got = [msgspec.json.decode(e.data) async for e in log.scan("s")]
    assert got == [{"n": 1}, {"n": 2}, {"f": "a"}]
    assert os.listdir(done) == ["a.json"]
    assert os.listdir(inbox) == []


def _directory(log: EventLog, allowed: Path, done: Path) -> tuple[Directory, Path]:
    """A confined directory source on ``allowed/in`` (one settled file, ``a.json``)."""
    inbox = allowed / "in"
    inbox.mkdir()
    (inbox / "a.json").write_bytes(b'{"f": "a"}')
    old = os.path.getmtime(inbox / "a.json") - 5
    os.utime(inbox / "a.json", (old, old))
    spec = {"kind": "directory", "path": str(inbox), "pattern": "*.json", "done": str(done)}
    return Directory(_ctx(log, allowed, **spec)), inbox


async def test_directory_refuses_a_done_under_a_symlinked_parent(
    log: EventLog, tree: tuple[Path, Path]
) -> None:
    allowed, outside = tree
    (allowed / "link").symlink_to(outside)
    source, inbox = _directory(log, allowed, allowed / "link" / "done")
    with pytest.raises(SourceError, match=r"^done .* resolves to .* is outside the directories"):
        await source.catch_up()
    assert sorted(os.listdir(outside)) == ["shadow"]
    assert os.listdir(inbox) == ["a.json"]


@pytest.mark.parametrize(
    ("at", "refusal"),
    [
        # After the pass's first look: the creation's own check sees outside.
        (1, r"^done .* resolves to .* is outside the directories"),
        # After the creation's check: the no-follow walk meets the symlink.
        (2, r"^done .* changed into a symlink after it was checked .*; not created$"),
    ],
)
async def test_directory_makes_no_done_through_a_parent_swapped_for_a_symlink(
    log: EventLog,
    tree: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    at: int,
    refusal: str,
) -> None:
    allowed, outside = tree
    parent = allowed / "archive"
    parent.mkdir()
    done = parent / "done"
    source, inbox = _directory(log, allowed, done)
    _swap_after_check(monkeypatch, done, _to_symlink(parent, outside), at=at)
    with pytest.raises(SourceError, match=refusal):
        await source.catch_up()
    assert sorted(os.listdir(outside)) == ["shadow"]
    assert os.listdir(allowed / "archive.old") == []
    # Appended (the commit comes first), not moved: the next pass retries the move.
    assert await _streams(log) == [{"f": "a"}]
    assert os.listdir(inbox) == ["a.json"]


async def test_confined_directory_creates_a_missing_done_and_its_parents(
    log: EventLog, tree: tuple[Path, Path]
) -> None:
    allowed, outside = tree
    # Through a symlink that stays inside: created at its real path.
    (allowed / "real").mkdir()
    (allowed / "alias").symlink_to(allowed / "real")
    source, inbox = _directory(log, allowed, allowed / "alias" / "x" / "done")
    await source.catch_up()
    assert os.listdir(allowed / "real" / "x" / "done") == ["a.json"]
    assert os.listdir(inbox) == []
    assert sorted(os.listdir(outside)) == ["shadow"]
