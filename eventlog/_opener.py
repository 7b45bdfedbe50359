"""What :meth:`EventLog.open <eventlog.log.EventLog.open>` returns: await it, or use it
with ``async with``."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Opener"]


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


S = TypeVar("S", bound=_Startable)


class Opener(Generic[S]):
    """Starts ``target`` when awaited or entered; ``async with`` also closes it."""

    def __init__(self, target: S) -> None:
        self._target = target

    def __await__(self) -> Generator[Any, None, S]:
        return self._start().__await__()

    async def _start(self) -> S:
        await self._target.start()
        return self._target

    async def __aenter__(self) -> S:
        return await self._start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._target.close()
