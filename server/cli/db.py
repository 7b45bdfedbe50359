"""``DbBackend``: the client commands on an SQLite database file, in this process.

Safe next to a running server on the same file (SQLite WAL).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec

from consumers.delivery.stores import ledger_for
from consumers.parking import PARKED_SUFFIX, parked_counts
from consumers.shared import SharedConsumers
from eventlog import (
    ConsumerInfo,
    Event,
    EventLog,
    EventLogError,
    LogConfig,
)
from server.cli.backend import CliError, ConsumerRow, LogApiBackend, translated

__all__ = ["DbBackend"]


class DbBackend(LogApiBackend):
    """An SQLite database file opened in this process with :class:`EventLog`.

    Safe next to a running server on the same file (SQLite WAL); waits notice
    the other process's appends within ``recheck`` seconds.
    """

    def __init__(self, path: str | Path, *, must_exist: bool, recheck: float = 0.2) -> None:
        self.path = Path(path)
        if must_exist and not self.path.is_file():
            raise CliError(f"no database file at {str(self.path)!r}", exit_code=2)
        self._config = LogConfig(retention_interval=0, recheck_interval=recheck)
        self._log: EventLog | None = None

    async def _enter(self) -> None:
        try:
            self._log = await EventLog.open(self.path, config=self._config)
        except EventLogError as exc:
            raise CliError(f"cannot open {str(self.path)!r}: {exc}") from exc

    async def _exit(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the log (writes everything queued first)."""
        if self._log is not None:
            log, self._log = self._log, None
            await asyncio.shield(log.close())

    @property
    def log(self) -> EventLog:
        """The open log."""
        assert self._log is not None, "use DbBackend with async with"
        return self._log

    @property
    def api(self) -> EventLog:
        """The open log."""
        return self.log

    async def read(self, stream: str, start: int, limit: int, wait: float) -> list[Event]:
        """``read`` on the log, waiting for an append if empty and ``wait`` > 0."""
        async with translated():
            events = await self.log.read(stream, start, limit)
            if not events and wait > 0 and await self.log.wait(stream, start, wait):
                events = await self.log.read(stream, start, limit)
        return events

    async def consumers(self) -> list[ConsumerRow]:
        """Every consumer position, with lag against its stream's head."""
        heads = {info.name: info.next_offset for info in await self.log.streams()}
        return [_row(c, heads.get(c.stream)) for c in await self.log.consumers()]

    async def consumer(self, name: str) -> dict[str, Any]:
        """The consumer's positions, parked count and, if shared, its claim state (the
        runtime state of a handler consumer lives in a server)."""
        streams = await self.log.streams()
        heads = {info.name: info.next_offset for info in streams}
        offsets = await self.log.consumers()
        rows = [_row(c, heads.get(c.stream)) for c in offsets if c.name == name]
        if not rows:
            raise CliError(f"consumer {name!r} does not exist")
        return {
            "name": name,
            "streams": [msgspec.to_builtins(r) for r in rows],
            "parked": parked_counts(streams, offsets).get(name, 0),
            "parked_stream": name + PARKED_SUFFIX,
            "runtime": None,
            "shared": await self._shared(name, {c.name for c in offsets}),
        }

    async def _shared(self, name: str, names: set[str]) -> dict[str, Any] | None:
        """A shared consumer's spec and claim state, as ``GET .../shared`` gives it."""
        if f"{name}.feed" not in names:  # never shared: leave its tables uncreated
            return None
        shared = SharedConsumers(self.log, ledger_for(self.log))
        await shared.open()
        try:
            info = await (await shared.get(name)).info()
        except EventLogError:  # deleted since, or not shared
            return None
        builtins: dict[str, Any] = msgspec.to_builtins(info)
        return builtins

    async def replay_parked(self, name: str) -> dict[str, Any]:
        """Refused: replay runs the consumer's handler, which lives in the server."""
        raise CliError(
            "replay-parked runs the consumer's handler, which lives in the server: "
            "use --url (not --db)",
            2,
        )


def _row(info: ConsumerInfo, head: int | None) -> ConsumerRow:
    lag = None if head is None else max(head - info.offset, 0)
    return ConsumerRow(
        name=info.name, stream=info.stream, offset=info.offset, lag=lag, updated=info.updated
    )
