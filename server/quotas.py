"""Per-tenant quotas: append rate, stored bytes, connections (docs/tenants.md).

Configured per tenant under ``[tenants.<name>]``; a request over a quota is
refused with 429, a ``Retry-After`` header and one of three codes:

=============================  ==============================================  ===============
code                           when                                            Retry-After
=============================  ==============================================  ===============
``append_rate_exceeded``       the tenant's token bucket holds fewer events    when enough
                               than the append carries                         tokens are back
``storage_quota_exceeded``     the tenant's streams hold ``max_bytes`` or more  ``retry_after``
``connection_quota_exceeded``  ``max_connections`` WebSocket, SSE and          ``retry_after``
                               long-poll requests are open already
=============================  ==============================================  ===============

:class:`~eventlog.ratelimit.TokenBucket` (the one delivery's rate
limit uses) is sans-I/O (``now`` is passed in). The rate limit is a
token bucket rather than the ``limits`` package: its in-memory storage expires
keys on a timer thread, and a bucket of a few lines gives the exact
``Retry-After`` for a batch of any size. Quotas are kept per server process:
with several processes on PostgreSQL each enforces its own share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from starlette.requests import HTTPConnection

from eventlog import EventLog
from eventlog.errors import EventLogError
from eventlog.ratelimit import TokenBucket
from server.config import TenantQuota
from server.tenancy import SEP, namespace_of

__all__ = ["QuotaExceeded", "Quotas", "TenantQuota", "TokenBucket", "quotas_of"]


class QuotaExceeded(EventLogError):
    """A tenant's quota refuses the request (429 with ``Retry-After``)."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, code: str, retry_after: int) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Quotas:
    """Every tenant's quotas and what each has used, in one server process.

    Args:
        quotas: Tenant name -> its limits.
        log: The log (stored bytes are its streams' sizes).
        clock: Monotonic seconds (tests pass their own).
        refresh: Seconds a tenant's stored-bytes figure is reused before the
            log is asked again (appends in between are added to it).
    """

    def __init__(
        self,
        quotas: Mapping[str, TenantQuota],
        log: EventLog,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh: float = 1.0,
    ) -> None:
        self.quotas = dict(quotas)
        self.log = log
        self.clock = clock
        self.refresh = refresh
        self._buckets: dict[str, TokenBucket] = {}
        self._bytes: dict[str, tuple[float, int]] = {}
        self._connections: dict[str, int] = {}

    async def admit_append(self, tenant: str | None, events: int, size: int) -> None:
        """Check an append of ``events`` events, ``size`` bytes, against the tenant's quotas.

        Raises:
            QuotaExceeded: Over the append rate or the stored bytes (429).
        """
        quota = self.quotas.get(tenant) if tenant is not None else None
        if quota is None or tenant is None:
            return
        if quota.max_bytes is not None:
            used = await self._stored(tenant)
            if used >= quota.max_bytes:
                raise QuotaExceeded(
                    f"tenant {tenant!r} stores {used} bytes, its quota is {quota.max_bytes}: "
                    "delete streams or set retention",
                    code="storage_quota_exceeded",
                    retry_after=quota.retry_after,
                )
        if quota.append_rate is not None:
            bucket = self._buckets.get(tenant)
            if bucket is None:
                burst = quota.append_burst or max(1, math.ceil(quota.append_rate))
                bucket = self._buckets[tenant] = TokenBucket(quota.append_rate, burst)
            wait = bucket.take(self.clock(), events)
            if wait > 0:
                over = events > bucket.burst
                raise QuotaExceeded(
                    f"tenant {tenant!r} may append {quota.append_rate:g} events a second"
                    + (f" and at most {bucket.burst:g} at once" if over else ""),
                    code="append_rate_exceeded",
                    retry_after=max(1, math.ceil(wait)),
                )
        if quota.max_bytes is not None:
            at, used = self._bytes[tenant]
            self._bytes[tenant] = (at, used + size)

    async def _stored(self, tenant: str) -> int:
        now = self.clock()
        cached = self._bytes.get(tenant)
        if cached is not None and now - cached[0] < self.refresh:
            return cached[1]
        prefix = tenant + SEP
        used = sum(
            info.bytes
            for info in await self.log.streams()
            if info.name.startswith(prefix) or namespace_of(info.name)[0] == tenant
        )
        self._bytes[tenant] = (now, used)
        return used

    def open(self, tenant: str | None) -> bool:
        """Count one more open connection of the tenant; True if counted (then
        :meth:`close` it), False when the tenant has no connection quota.

        Raises:
            QuotaExceeded: ``max_connections`` are open already (429).
        """
        quota = self.quotas.get(tenant) if tenant is not None else None
        if quota is None or quota.max_connections is None or tenant is None:
            return False
        open_now = self._connections.get(tenant, 0)
        if open_now >= quota.max_connections:
            raise QuotaExceeded(
                f"tenant {tenant!r} has {open_now} firehose, SSE and long-poll connections "
                f"open, its quota is {quota.max_connections}",
                code="connection_quota_exceeded",
                retry_after=quota.retry_after,
            )
        self._connections[tenant] = open_now + 1
        return True

    def close(self, tenant: str) -> None:
        """One of the tenant's counted connections closed."""
        self._connections[tenant] -= 1

    @contextmanager
    def connection(self, tenant: str | None) -> Iterator[None]:
        """Hold one of the tenant's connections while the block runs (:meth:`open`)."""
        counted = self.open(tenant)
        try:
            yield
        finally:
            if counted and tenant is not None:
                self.close(tenant)


def quotas_of(conn: HTTPConnection) -> Quotas:
    """The app's :class:`Quotas` (``app.state.quotas``, set by ``create_app``)."""
    quotas: Quotas = conn.app.state.quotas
    return quotas
