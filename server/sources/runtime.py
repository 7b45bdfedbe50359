"""How a file source runs: its context (commit = appends + position in one transaction)
and the watch loop (``watchfiles``); the registry of kinds (``eventlog.sources``) is
:func:`server.sources.kinds.source_kinds`.

A kind is a class built with a :class:`SourceContext` that says which
directories to watch (:meth:`FileSource.watch_paths`) and reads what is new
(:meth:`FileSource.catch_up`), committing each batch of events together with
its position through :meth:`SourceContext.commit`. The loop calls
``catch_up`` at start and on every change ``watchfiles`` reports (and every
few seconds, to recover from errors); an error is shown in the source's
status and logged, and the source keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import msgspec
import watchfiles

from eventlog import CheckpointMoved, EventLog, EventLogError, NewEvent
from eventlog.model import utc_now
from server.sources.confine import SourceDirs
from server.sources.spec import SourceSpec

P = TypeVar("P")

__all__ = ["FileSource", "SourceContext", "run_source"]

logger = logging.getLogger("eventlog.sources")
# watchfiles logs every change it sees at INFO: one line per appended batch.
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)

#: Events per append call (the log's default batch limit is 10,000).
APPEND_CHUNK = 5_000
#: Seconds between looks even without a change (recovers from errors).
RECHECK_MS = 5_000


class SourceContext:
    """What a source kind gets: its spec, its last position, and commit.

    ``dirs`` confines a source made over the API (None: a config-file source,
    not confined); a kind opens files with :meth:`open` and creates directories
    with :meth:`makedirs` (or calls :meth:`confine` before it opens a path itself).
    """

    def __init__(self, spec: SourceSpec, log: EventLog, dirs: SourceDirs | None = None) -> None:
        self.spec = spec
        self.log = log
        self.dirs = dirs
        self.key = f"source:{spec.name}"
        #: The last error (None while healthy), for the API.
        self.error: str | None = None
        self.appended = 0
        self.parked = 0
        self.last_commit: datetime | None = None
        self._committed: bytes | None = None

    def confine(self, path: Path, field: str = "path") -> None:
        """Refuse to open ``path`` if the source is confined and it resolves outside
        ``source_dirs`` (a symlink or a rotation may have moved it since creation).

        Raises:
            SourceError: Outside (the source's status shows it; it is retried).
        """
        if self.dirs is not None:
            self.dirs.check(path, field)

    def open(self, path: Path, field: str = "path") -> BinaryIO:
        """``path`` opened for reading in binary; if the source is confined,
        :meth:`~server.sources.confine.SourceDirs.open` (exactly the path checked,
        no symlink swapped in since followed). Blocking: call it in a thread.

        Raises:
            SourceError: Confined and outside, or swapped for a symlink.
            OSError: The open failed (``FileNotFoundError``: gone).
        """
        if self.dirs is None:
            return open(path, "rb")
        return self.dirs.open(path, field)

    def makedirs(self, path: Path, field: str = "done") -> None:
        """Create the directory ``path`` and its missing parents; if the source is
        confined, :meth:`~server.sources.confine.SourceDirs.makedirs` (exactly the
        path checked, nothing made through a symlink). Blocking: call it in a thread.

        Raises:
            SourceError: Confined and outside, or a parent swapped for a symlink.
            OSError: The creation failed.
        """
        if self.dirs is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            self.dirs.makedirs(path, field)

    async def position(self) -> bytes | None:
        """The position committed last (None before the first commit)."""
        self._committed = await self.log.checkpoint(self.key)
        return self._committed

    async def position_as(self, type_: type[P]) -> P | None:
        """:meth:`position` decoded from JSON as ``type_`` (None before the first commit)."""
        raw = await self.position()
        return None if raw is None else msgspec.json.decode(raw, type=type_)

    async def commit(
        self, events: Sequence[NewEvent], errors: Sequence[NewEvent], position: bytes
    ) -> None:
        """Append ``events`` to the source's stream and ``errors`` to its error
        stream, and store ``position``: one transaction, all or nothing."""
        async with self.log.transaction(timeout=60) as txn:
            for i in range(0, len(events), APPEND_CHUNK):
                await txn.append_batch(self.spec.stream, events[i : i + APPEND_CHUNK])
            for i in range(0, len(errors), APPEND_CHUNK):
                await txn.append_batch(self.spec.error_stream, errors[i : i + APPEND_CHUNK])
            # Compare-and-set: a second runner of this source (another process)
            # that read from the same position cannot commit the same lines.
            await txn.set_checkpoint(self.key, position, expected=self._committed)
        self._committed = position
        self.appended += len(events)
        self.parked += len(errors)
        self.last_commit = utc_now()
        for error in errors:
            # Where and why only: the line's text may be anything the file holds
            # (a password hash); it is in the error stream, not in the server log.
            where = error.data if isinstance(error.data, dict) else {}
            logger.warning(
                "source %s: parked %s line %s (byte %s) to %s: %s",
                self.spec.name,
                where.get("file"),
                where.get("line"),
                where.get("offset"),
                self.spec.error_stream,
                where.get("error"),
            )


class FileSource(Protocol):
    """A kind of source (built-in, or a plugin's under ``eventlog.sources``)."""

    def __init__(self, ctx: SourceContext) -> None: ...

    def watch_paths(self) -> list[Path]:
        """Directories whose changes call :meth:`catch_up`."""
        ...

    async def catch_up(self) -> None:
        """Read what is new and commit it (with its position)."""


async def run_source(
    make: Callable[[SourceContext], FileSource], ctx: SourceContext, stop: asyncio.Event
) -> None:
    """Catch up, then on every change, until ``stop``; errors are reported and retried."""
    failures = 0
    source = make(ctx)
    while not stop.is_set():
        try:
            await source.catch_up()
            ctx.error = None
            async for _ in watchfiles.awatch(
                *source.watch_paths(),
                stop_event=stop,
                debounce=20,
                step=10,
                recursive=False,
                yield_on_timeout=True,
                rust_timeout=RECHECK_MS,
                ignore_permission_denied=True,
            ):
                await source.catch_up()
                ctx.error = None
                failures = 0
        except CheckpointMoved:
            # Another runner committed from the same position: start again
            # from the position it committed (a fresh reader loads it).
            logger.info("source %s: its position moved; reloading", ctx.spec.name)
            source = make(ctx)
        except (OSError, EventLogError, RuntimeError, ValueError) as exc:
            failures += 1
            ctx.error = f"{type(exc).__name__}: {exc}"
            logger.warning("source %s: %s (retrying)", ctx.spec.name, ctx.error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(30.0, 0.5 * 2 ** min(failures, 6))):
                    await stop.wait()
