"""``SourceManager``: the server's file sources, declared (``[[sources]]``) and made at run time.

Sources from the config file cannot be changed over the API (409); sources
created with ``POST /api/sources`` are stored in the log's database (a
checkpoint, ``sources``) and start again with the server. Each source runs
as one task (:func:`server.sources.runtime.run_source`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Literal

import msgspec

from eventlog import EventLog
from eventlog.errors import Conflict, NotFound
from server.sources.confine import SourceDirs
from server.sources.kinds import source_kinds
from server.sources.runtime import FileSource, SourceContext, run_source
from server.sources.spec import SourceError, SourceSpec, parse_spec

__all__ = ["ConfigOwned", "SourceManager", "SourceStatus", "SourceView", "UnknownSource"]

_STORE = "sources"


class ConfigOwned(Conflict):
    """The source is declared in the config file; the API cannot change it."""

    code = "config_source"

    def __init__(self, name: str) -> None:
        super().__init__(f"source {name} is declared in the config file")
        self.name = name


class UnknownSource(NotFound):
    """No source of that name."""

    code = "unknown_source"

    def __init__(self, name: str) -> None:
        super().__init__(f"no source {name!r}")
        self.name = name


class SourceStatus(msgspec.Struct, kw_only=True):
    """How a source is doing."""

    running: bool
    error: str | None
    appended: int
    parked: int
    last_commit: datetime | None


class SourceView(msgspec.Struct, kw_only=True):
    """A source as the API shows it."""

    spec: SourceSpec
    origin: Literal["config", "api"]
    status: SourceStatus


class _Running:
    def __init__(self, spec: SourceSpec, kind: type[FileSource], ctx: SourceContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_source(kind, ctx, self.stop), name=f"source-{spec.name}"
        )


class SourceManager:
    """Runs file sources over one log.

    Args:
        log: The open log.
        declared: The config file's ``[[sources]]`` (raw tables).
        dirs: Where sources made over the API may read (``source_dirs``); those
            of the config file are not confined. None: nowhere.

    Raises:
        SourceError: A declared source is invalid (at construction).
    """

    def __init__(
        self, log: EventLog, declared: list[dict[str, object]], dirs: SourceDirs | None = None
    ) -> None:
        self._log = log
        self._dirs = dirs or SourceDirs([])
        self._kinds = source_kinds()
        names = tuple(self._kinds)
        self._config = [parse_spec(raw, names) for raw in declared]
        if len({s.name for s in self._config}) != len(self._config):
            raise SourceError("two [[sources]] share a name")
        self._api: dict[str, SourceSpec] = {}
        self._running: dict[str, _Running] = {}

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every kind a source may have."""
        return tuple(self._kinds)

    async def start(self) -> None:
        """Start the declared sources and the stored ones."""
        stored = await self._log.checkpoint(_STORE)
        if stored is not None:
            for spec in msgspec.json.decode(stored, type=list[SourceSpec]):
                if spec.name not in {s.name for s in self._config} and spec.kind in self._kinds:
                    self._api[spec.name] = spec
        for spec in [*self._config, *self._api.values()]:
            self._start(spec)

    def _start(self, spec: SourceSpec) -> None:
        confined = None if self._origin(spec.name) == "config" else self._dirs
        ctx = SourceContext(spec, self._log, confined)
        self._running[spec.name] = _Running(spec, self._kinds[spec.kind], ctx)

    async def _stop(self, name: str) -> None:
        running = self._running.pop(name, None)
        if running is None:
            return
        running.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(running.task), 5)
        except TimeoutError:
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.task

    async def close(self) -> None:
        """Stop every source (what each committed stays committed)."""
        for name in list(self._running):
            await self._stop(name)

    def _origin(self, name: str) -> Literal["config", "api"] | None:
        if any(s.name == name for s in self._config):
            return "config"
        return "api" if name in self._api else None

    def view(self, name: str) -> SourceView:
        """One source with its status.

        Raises:
            UnknownSource: No such source.
        """
        origin = self._origin(name)
        if origin is None:
            raise UnknownSource(name)
        spec = (
            next(s for s in self._config if s.name == name)
            if origin == "config"
            else self._api[name]
        )
        running = self._running.get(name)
        ctx = running.ctx if running else None
        status = SourceStatus(
            running=running is not None and not running.task.done(),
            error=ctx.error if ctx else None,
            appended=ctx.appended if ctx else 0,
            parked=ctx.parked if ctx else 0,
            last_commit=ctx.last_commit if ctx else None,
        )
        return SourceView(spec=spec, origin=origin, status=status)

    def views(self) -> list[SourceView]:
        """Every source, config ones first, then by name."""
        names = [s.name for s in self._config] + sorted(self._api)
        return [self.view(n) for n in names]

    async def put(self, raw: object, name: str | None = None) -> tuple[SourceView, bool]:
        """Create (``name`` None) or replace a source made over the API; the view and
        whether it is new.

        Raises:
            SourceError: Invalid.
            Conflict: Creating, and the name is taken (``source_exists``).
            ConfigOwned: The config file declares it.
            SourceError: Its ``path`` or ``done`` is outside ``source_dirs``.
        """
        spec = parse_spec(raw, self.kinds)
        if name is not None and spec.name != name:
            raise SourceError(f"the body's name {spec.name!r} differs from the path's {name!r}")
        if self._origin(spec.name) == "config":
            raise ConfigOwned(spec.name)
        self._dirs.check_spec(spec)
        created = spec.name not in self._api
        if name is None and not created:
            raise Conflict(f"a source named {spec.name!r} exists", code="source_exists")
        specs = {**self._api, spec.name: spec}
        await self._save(specs)
        await self._stop(spec.name)
        self._api = specs
        self._start(spec)
        return self.view(spec.name), created

    async def delete(self, name: str) -> None:
        """Stop and forget a source made over the API (its position is kept).

        Raises:
            UnknownSource, ConfigOwned.
        """
        origin = self._origin(name)
        if origin is None:
            raise UnknownSource(name)
        if origin == "config":
            raise ConfigOwned(name)
        specs = {n: s for n, s in self._api.items() if n != name}
        await self._save(specs)
        self._api = specs
        await self._stop(name)

    async def _save(self, specs: dict[str, SourceSpec]) -> None:
        async with self._log.transaction() as txn:
            await txn.set_checkpoint(
                _STORE, msgspec.json.encode(sorted(specs.values(), key=lambda s: s.name))
            )
