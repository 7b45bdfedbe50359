"""The retention part of :class:`~eventlog.log.EventLog`: policies, holds, enforcement.

A mixin of ``EventLog``'s public methods; the decisions themselves are pure
and live in :mod:`eventlog.retention` (what a policy lets go) and
:mod:`eventlog.holds` (what named consumers hold back).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from eventlog.config import LogConfig
from eventlog.holds import HoldPlan, HoldPolicy
from eventlog.model import Retention, StreamInfo, utc_now, validate_stream_name
from eventlog.retention import check_retention, enforce_retention, plan_stream
from eventlog.storage.base import Storage

__all__ = ["RetentionMethods"]


class _Log(Protocol):
    storage: Storage
    config: LogConfig
    _holds: dict[str, HoldPolicy]

    def _check_open(self) -> None: ...

    def hold_policy(self, consumer: str) -> HoldPolicy: ...

    async def notice(self, type: str, data: dict[str, object]) -> None: ...

    async def stream_info(self, stream: str) -> StreamInfo: ...

    async def append(self, stream: str, data: object, *, type: str) -> int: ...


class RetentionMethods:
    """Retention methods of :class:`~eventlog.log.EventLog`."""

    async def set_retention(self: _Log, stream: str, retention: Retention) -> None:
        """Set a stream's retention policy (applied by the next retention pass)."""
        self._check_open()
        check_retention(retention)
        await self.storage.set_retention(validate_stream_name(stream), retention)

    async def enforce_retention(self: _Log, now: datetime | None = None) -> int:
        """Apply every stream's retention policy now, short of what named
        consumers have not read (see :mod:`eventlog.holds`); return events deleted."""
        self._check_open()
        return await enforce_retention(
            self.storage, now or utc_now(), self.hold_policy, self.notice
        )

    def set_hold_policy(self: _Log, consumer: str, policy: HoldPolicy) -> None:
        """How ``consumer`` holds retention in this process (default from the config)."""
        self._holds[validate_stream_name(consumer)] = policy

    def hold_policy(self: _Log, consumer: str) -> HoldPolicy:
        """How ``consumer`` holds retention."""
        policy = self._holds.get(consumer)
        if policy is None:
            return HoldPolicy(protect=self.config.protect_consumers, max_hold=self.config.max_hold)
        return policy

    async def retention_holds(self: _Log, stream: str, now: datetime | None = None) -> HoldPlan:
        """Who holds ``stream``'s retention back, by how many events, and the cutoff.

        Raises:
            StreamNotFound: The stream does not exist.
        """
        info = await self.stream_info(stream)
        consumers = await self.storage.consumers()
        return await plan_stream(self.storage, info, consumers, self.hold_policy, now or utc_now())

    async def notice(self: _Log, type: str, data: dict[str, object]) -> None:
        """Record something the log or a runtime did on its own on the system stream."""
        await self.append(self.config.system_stream, data, type=type)
