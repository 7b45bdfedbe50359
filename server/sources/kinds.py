"""The built-in kinds: ``ndjson-tail``, ``json-file``, ``directory``.

Each keeps its position as a small JSON document committed with its appends
(:meth:`~server.sources.runtime.SourceContext.commit`), so a crash at any
moment neither loses nor repeats a line. Blocking file reads run in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import os
import shutil
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

import msgspec

from eventlog import NewEvent
from server.sources.lines import Line, error_event, line_events, split_lines, too_large
from server.sources.runtime import FileSource, SourceContext

__all__ = ["Directory", "JsonFile", "NdjsonTail", "source_kinds"]

#: Most bytes read (and committed in one transaction) per step.
READ_BYTES = 1 << 20
#: A directory's file is read once unchanged for this long (it may still be written).
SETTLE_S = 0.2
_validate = msgspec.json.Decoder().decode


class TailPosition(msgspec.Struct, kw_only=True):
    """Where an ``ndjson-tail`` source is: which file (device, inode), byte, line;
    ``skip``: inside a line too long for an event, already parked (read on to its end)."""

    dev: int = 0
    ino: int = 0
    offset: int = 0
    line: int = 0
    skip: bool = False


def _read_at(
    ctx: SourceContext, path: Path, pos: TailPosition, final: bool
) -> tuple[list[Line], list[NewEvent], TailPosition] | None:
    """Complete lines from ``pos``, the error of a line too long to read whole, and
    the position after them (None if ``path`` is no longer that file). With
    ``final`` (a rotated file: nothing more will come) a last unterminated line counts."""
    with ctx.open(path) as f:
        st = os.fstat(f.fileno())
        if (st.st_dev, st.st_ino) != (pos.dev, pos.ino):
            return None
        f.seek(pos.offset)
        chunk = f.read(READ_BYTES)
    at_end = pos.offset + len(chunk) >= st.st_size  # not a read cut short by READ_BYTES
    skipped = 0
    if pos.skip:
        end = chunk.find(b"\n")
        if end < 0:
            skip = not (final and at_end)
            return [], [], msgspec.structs.replace(pos, offset=pos.offset + len(chunk), skip=skip)
        skipped = end + 1
    lines, used = split_lines(chunk[skipped:], pos.offset + skipped, pos.line)
    used += skipped
    errors: list[NewEvent] = []
    if used < len(chunk) and final and at_end:  # the rotated file's last line
        lines.append(Line(pos.line + len(lines) + 1, pos.offset + used, chunk[used:]))
        used = len(chunk)
    elif not lines and skipped == 0 and len(chunk) == READ_BYTES:
        # One line longer than a read (and so than an event): parked once, the
        # rest of it skipped, also across a restart.
        why = f"line longer than {READ_BYTES} bytes, the most a source reads as one line"
        errors.append(error_event(ctx.spec.name, str(path), pos.line + 1, pos.offset, why, chunk))
        moved = TailPosition(
            dev=pos.dev, ino=pos.ino, offset=pos.offset + len(chunk), line=pos.line + 1, skip=True
        )
        return [], errors, moved
    moved = TailPosition(
        dev=pos.dev, ino=pos.ino, offset=pos.offset + used, line=pos.line + len(lines)
    )
    return lines, errors, moved


class _OneFile:
    """The spec's one file, watched through its directory (a rotation or a rewrite
    by rename shows there)."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.path = Path(ctx.spec.path)

    def watch_paths(self) -> list[Path]:
        return [self.path.parent]


class NdjsonTail(_OneFile):
    """Each new line of a growing NDJSON file is an event; follows rotation and truncation.

    Rotation (the file renamed away, a new one created at the path): the old
    file is found again in the same directory by its identity and read to its
    end, then the file written after it (a later rotated one, or the new one)
    from its start, even across a restart. Truncation in place
    (``copytruncate``): read again from the start.
    """

    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        self._pos: TailPosition | None = None

    async def catch_up(self) -> None:
        if self._pos is None:
            self._pos = await self.ctx.position_as(TailPosition) or TailPosition()
        while await self._step(self._pos):
            pass

    async def _commit(
        self, lines: list[Line], file: Path, pos: TailPosition, parked: Sequence[NewEvent] = ()
    ) -> None:
        spec = self.ctx.spec
        limit = self.ctx.log.config.max_event_bytes
        events, errors = line_events(spec.name, str(file), lines, spec.event_type, limit)
        await self.ctx.commit(events, [*parked, *errors], msgspec.json.encode(pos))
        self._pos = pos

    async def _read(self, file: Path, pos: TailPosition, final: bool) -> bool:
        try:
            got = await asyncio.to_thread(_read_at, self.ctx, file, pos, final)
        except FileNotFoundError:  # deleted between the look and the read
            return False
        if got is None or got[2] == pos:
            return False
        lines, parked, moved = got
        await self._commit(lines, file, moved, parked)
        return True

    async def _step(self, pos: TailPosition) -> bool:
        """Read one chunk (or switch files); True if anything moved."""
        self.ctx.confine(self.path)
        try:
            st = await asyncio.to_thread(os.stat, self.path)
        except FileNotFoundError:
            st = None
        if st is not None and pos.ino == 0:  # a new source starts at the file's start
            pos = self._pos = TailPosition(dev=st.st_dev, ino=st.st_ino)
        if st is None or (st.st_dev, st.st_ino) != (pos.dev, pos.ino):
            old = await asyncio.to_thread(_find, self.path.parent, pos.dev, pos.ino)
            if old is not None and await self._read(old, pos, final=True):
                return True
            # Several rotations may have happened since: the next file is the
            # rotated one written after this one, not necessarily the current.
            after = None if old is None else await asyncio.to_thread(_next, self.path, old)
            if after is not None:
                file, st = after
            elif st is None:
                return False
            else:
                file = self.path
            await self._commit([], file, TailPosition(dev=st.st_dev, ino=st.st_ino))
            return True
        if st.st_size < pos.offset:  # truncated in place
            await self._commit([], self.path, TailPosition(dev=st.st_dev, ino=st.st_ino))
            return True
        if st.st_size == pos.offset:
            return False
        return await self._read(self.path, pos, final=False)


def _find(directory: Path, dev: int, ino: int) -> Path | None:
    """The file in ``directory`` with that identity (a rotated file), if any."""
    if ino == 0:
        return None
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (dev, ino):
            return Path(entry.path)
    return None


def _next(path: Path, old: Path) -> tuple[Path, os.stat_result] | None:
    """The file written after ``old`` (a rotated file): of ``path`` and its rotated
    siblings (``path.name`` and a suffix), the first in the order of last write,
    the current file last among equals, then by name. None if there is none."""

    def order(file: Path, st: os.stat_result) -> tuple[int, bool, str]:
        return (st.st_mtime_ns, file == path, file.name)

    try:
        entries = list(os.scandir(path.parent))
        done = order(old, os.stat(old))
    except OSError:
        return None
    later: list[tuple[tuple[int, bool, str], Path, os.stat_result]] = []
    for entry in entries:
        if not entry.name.startswith(path.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        file = Path(entry.path)
        if order(file, st) > done:
            later.append((order(file, st), file, st))
    return min(later, key=lambda c: c[0])[1:] if later else None


class FilePosition(msgspec.Struct, kw_only=True):
    """A ``json-file`` source's last content hash; a ``directory``'s files already read."""

    hash: str = ""
    seen: list[str] = []


def _document(
    spec_name: str, file: Path, content: bytes, type: str, max_bytes: int
) -> tuple[list[NewEvent], list[NewEvent]]:
    """One file as one event (``id``: its SHA-256), or its parked error."""
    body = content.strip()
    digest = hashlib.sha256(content).hexdigest()
    if (why := too_large(spec_name, body, max_bytes)) is not None:
        return [], [error_event(spec_name, str(file), None, 0, why, body)]
    try:
        body.decode("utf-8")
        _validate(body)
    except (UnicodeDecodeError, msgspec.DecodeError) as exc:
        return [], [error_event(spec_name, str(file), None, 0, f"not UTF-8 JSON: {exc}", body)]
    event = NewEvent(type=type, data=msgspec.Raw(body), id=digest, headers={"source": spec_name})
    return [event], []


def _read_file(ctx: SourceContext, path: Path) -> bytes | None:
    try:
        with ctx.open(path) as f:
            return f.read()
    except FileNotFoundError:  # deleted between the change and the read
        return None


class JsonFile(_OneFile):
    """The whole document, each time the file is rewritten; its SHA-256 is the event id,
    so a rewrite with the same content appends nothing."""

    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        self._last: str | None = None

    async def catch_up(self) -> None:
        if self._last is None:
            stored = await self.ctx.position_as(FilePosition)
            self._last = "" if stored is None else stored.hash
        content = await asyncio.to_thread(_read_file, self.ctx, self.path)
        if not content or not content.strip():
            return
        digest = hashlib.sha256(content).hexdigest()
        if digest == self._last:
            return
        spec = self.ctx.spec
        limit = self.ctx.log.config.max_event_bytes
        events, errors = _document(spec.name, self.path, content, spec.event_type, limit)
        await self.ctx.commit(events, errors, msgspec.json.encode(FilePosition(hash=digest)))
        self._last = digest


class Directory:
    """Each new file in a directory: one event (``mode = "event"``) or one per line
    (``"lines"``); moved to ``done`` afterwards if set, else remembered as read."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.path = Path(ctx.spec.path)
        self.done = None if ctx.spec.done is None else Path(ctx.spec.done)
        self._seen: set[str] | None = None

    def watch_paths(self) -> list[Path]:
        return [self.path]

    async def catch_up(self) -> None:
        if self._seen is None:
            stored = await self.ctx.position_as(FilePosition)
            self._seen = set() if stored is None else set(stored.seen)
        self.ctx.confine(self.path)
        if self.done is not None:
            self.ctx.confine(self.done, "done")
        while True:
            files = await asyncio.to_thread(_listing, self.path, self.ctx.spec.pattern, self.done)
            present = {key for key, _, _ in files}
            settling = False
            for key, path, age in files:
                if key in self._seen:
                    await self._finish(path)
                    continue
                if age < SETTLE_S:
                    settling = True
                    continue
                await self._take(key, path, present)
            if not settling:
                return
            await asyncio.sleep(SETTLE_S)

    async def _take(self, key: str, path: Path, present: set[str]) -> None:
        content = await asyncio.to_thread(_read_file, self.ctx, path)
        if content is None:
            return
        spec = self.ctx.spec
        limit = self.ctx.log.config.max_event_bytes
        if spec.mode == "event":
            events, errors = _document(spec.name, path, content, spec.event_type, limit)
        else:
            lines, _ = split_lines(content + (b"" if content.endswith(b"\n") else b"\n"), 0, 0)
            events, errors = line_events(spec.name, str(path), lines, spec.event_type, limit)
        assert self._seen is not None
        seen = (self._seen & present) | {key}
        await self.ctx.commit(events, errors, msgspec.json.encode(FilePosition(seen=sorted(seen))))
        self._seen = seen
        await self._finish(path)

    async def _finish(self, path: Path) -> None:
        if self.done is None:
            return
        done = self.done

        def move() -> None:
            self.ctx.makedirs(done, "done")
            if self.ctx.dirs is None:
                shutil.move(path, done / path.name)
            else:  # API source: rename between the directories checked, no symlink
                self.ctx.dirs.move(path, done)

        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(move)


def _listing(directory: Path, pattern: str, done: Path | None) -> list[tuple[str, Path, float]]:
    """Regular files matching ``pattern``, oldest first: ``(name:inode, path, age in s)``."""
    import time

    now = time.time()
    out: list[tuple[float, str, str, Path, float]] = []
    for entry in os.scandir(directory):
        if not fnmatch.fnmatch(entry.name, pattern) or not entry.is_file(follow_symlinks=False):
            continue
        if done is not None and Path(entry.path) == done:
            continue
        st = entry.stat(follow_symlinks=False)
        out.append(
            (
                st.st_mtime,
                entry.name,
                f"{entry.name}:{st.st_ino}",
                Path(entry.path),
                now - st.st_mtime,
            )
        )
    out.sort()
    return [(key, path, age) for _, _, key, path, age in out]


def source_kinds() -> dict[str, type[FileSource]]:
    """The built-in kinds and every ``eventlog.sources`` entry point, by kind name."""
    kinds: dict[str, type[FileSource]] = {
        "ndjson-tail": NdjsonTail,
        "json-file": JsonFile,
        "directory": Directory,
    }
    for entry in entry_points(group="eventlog.sources"):
        kinds.setdefault(entry.name, entry.load())
    return kinds
