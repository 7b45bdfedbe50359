"""Workers of a shared consumer: claim events, then ack, nack or extend them.

A shared consumer (``docs/consumers.md``) hands each event to one worker at a
time under a claim that expires after its ``ack_wait``::

    async for claim in client.claims("mailer", worker="w1"):
        await send_mail(claim.event.json())
        await claim.ack()          # or: await claim.nack(delay=30); await claim.in_progress()

:class:`Claims` long-polls ``POST /api/consumers/{name}/claim`` for up to
``max`` claims at a time and yields them one by one; while the server cannot
be reached it waits and asks again (claims it handed out before are redelivered
after their ``ack_wait``). Acks, nacks and extensions are retried through
connection errors and 503s; an ack whose answer was lost and that the retry
finds ``already_acked`` counts as done. Error codes (``claim_expired``,
``claim_not_held``, ``already_acked``, ...) arrive as the error of the branch
their status belongs to (:class:`~eventlog.Conflict`, :class:`~eventlog.NotFound`)
with ``exc.code`` set; docs/consumers.md lists them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from eventlog.backoff import Backoff
from eventlog.client import wire
from eventlog.errors import Unavailable
from eventlog.model import Event, validate_stream_name

if TYPE_CHECKING:
    from eventlog.client.transport import Transport

__all__ = ["Claim", "Claims", "SharedConsumerInfo", "SharedMethods"]

logger = logging.getLogger("eventlog.client")

#: Asking again for claims while the server is unreachable.
CLAIM_BACKOFF = Backoff(base=0.25, cap=5.0, jitter=0.2)


class SharedConsumerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A shared consumer's spec and progress (``GET /api/consumers/{name}/shared``).

    Attributes:
        ack_floor: Everything below this offset is acked (the committed offset).
        head: The stream's next offset.
        pending: Events waiting to be claimed; ``claimed``: held by workers now;
            ``parked``: given up on after ``max_deliver`` attempts.
        oldest_unacked_age: Seconds since the oldest unacked event was appended.
    """

    name: str
    stream: str
    types: list[str] | None = None
    key: str | None = None
    ack_wait: float
    max_deliver: int | None = None
    ordered_by_key: bool = False
    ack_floor: int = 0
    head: int = 0
    pending: int = 0
    claimed: int = 0
    parked: int = 0
    oldest_unacked_age: float | None = None


class _ClaimWire(msgspec.Struct):
    id: str
    offset: int
    stream: str
    attempt: int
    expires: datetime
    event: Event


class _ClaimAnswer(msgspec.Struct):
    claims: list[_ClaimWire]


_claims = msgspec.json.Decoder(_ClaimAnswer)
_info = msgspec.json.Decoder(SharedConsumerInfo)
_expires = msgspec.json.Decoder(dict[str, datetime])


class Claim:
    """One event handed to this worker until :attr:`expires`.

    Attributes:
        id: The claim's opaque id.
        offset, stream: Where the event is.
        attempt: 1 on the first delivery, more on redeliveries.
        expires: When the claim lapses and the event may go to another worker.
        event: The event.
    """

    __slots__ = (
        "_methods",
        "attempt",
        "consumer",
        "event",
        "expires",
        "id",
        "offset",
        "stream",
        "worker",
    )

    def __init__(
        self, methods: SharedMethods, consumer: str, worker: str, wire: _ClaimWire
    ) -> None:
        self._methods = methods
        self.consumer = consumer
        self.worker = worker
        self.id = wire.id
        self.offset = wire.offset
        self.stream = wire.stream
        self.attempt = wire.attempt
        self.expires = wire.expires
        self.event = wire.event

    async def ack(self) -> None:
        """Done with the event: it will not be handed out again."""
        await self._methods.ack(self.consumer, [self.id], worker=self.worker)

    async def nack(self, delay: float = 0.0) -> None:
        """Give the event back, to be handed out again after ``delay`` seconds."""
        await self._methods.nack(self.consumer, [self.id], worker=self.worker, delay=delay)

    async def in_progress(self) -> datetime:
        """Still working on it: extend the claim by its ``ack_wait``; the new expiry."""
        self.expires = await self._methods.in_progress(self.consumer, [self.id], worker=self.worker)
        return self.expires

    def __repr__(self) -> str:
        where = f"offset={self.offset}, attempt={self.attempt}"
        return f"Claim({self.consumer!r}, {where}, id={self.id!r})"


def _ids(claims: Sequence[Claim | str]) -> list[str]:
    return [c if isinstance(c, str) else c.id for c in claims]


def _path(name: str, action: str) -> str:
    return f"/api/consumers/{validate_stream_name(name)}/{action}"


class SharedMethods:
    """The shared-consumer methods of :class:`~eventlog.client.AsyncClient`."""

    http: Transport

    async def declare_shared(
        self,
        name: str,
        stream: str,
        *,
        types: Sequence[str] | None = None,
        key: str | None = None,
        ack_wait: float | None = None,
        max_deliver: int | None = None,
        ordered_by_key: bool | None = None,
        start: str | int | None = None,
    ) -> SharedConsumerInfo:
        """Declare (or update) a shared consumer of ``stream``; idempotent (needs ``admin``)."""
        spec: dict[str, Any] = {"stream": validate_stream_name(stream)}
        for field, value in (
            ("types", list(types) if types is not None else None),
            ("key", key),
            ("ack_wait", ack_wait),
            ("max_deliver", max_deliver),
            ("ordered_by_key", ordered_by_key),
            ("start", start),
        ):
            if value is not None:
                spec[field] = value
        _, data = await self.http.request(
            "PUT", _path(name, "shared"), body=wire.encode(spec), context={"name": name}
        )
        return wire.answer(_info, data, "a shared consumer query")

    async def shared_info(self, name: str) -> SharedConsumerInfo:
        """A shared consumer's spec, ack floor and pending / claimed / parked counts."""
        _, data = await self.http.request("GET", _path(name, "shared"), context={"name": name})
        return wire.answer(_info, data, "a shared consumer query")

    async def delete_shared(self, name: str) -> None:
        """Delete a shared consumer (needs ``admin``)."""
        await self.http.request("DELETE", _path(name, "shared"), context={"name": name})

    async def claim(
        self, consumer: str, *, worker: str, max: int = 10, wait: float = 5.0
    ) -> list[Claim]:
        """Up to ``max`` claims for ``worker``; waits up to ``wait`` seconds for the
        first, ``[]`` if none came."""
        body = wire.encode({"worker": worker, "max": max, "wait": wait})
        _, data = await self.http.request(
            "POST",
            _path(consumer, "claim"),
            body=body,
            timeout=self.http.timeout + wait,
            idempotent=False,
            context={"name": consumer},
        )
        return [
            Claim(self, consumer, worker, c) for c in wire.answer(_claims, data, "a claim").claims
        ]

    async def ack(self, consumer: str, claims: Sequence[Claim | str], *, worker: str) -> int:
        """Ack claims (all or none); how many were acked."""
        body = wire.encode({"worker": worker, "claims": _ids(claims)})
        _, data = await self.http.request(
            "POST",
            _path(consumer, "ack"),
            body=body,
            context={"name": consumer},
            done_on_retry=frozenset({"already_acked"}),
        )
        return int(wire.answer(wire.OBJECT, data, "an ack").get("acked", len(claims)))

    async def nack(
        self, consumer: str, claims: Sequence[Claim | str], *, worker: str, delay: float = 0.0
    ) -> int:
        """Give claims back, to be handed out again after ``delay`` seconds; how many."""
        body = wire.encode({"worker": worker, "claims": _ids(claims), "delay": delay})
        _, data = await self.http.request(
            "POST",
            _path(consumer, "nack"),
            body=body,
            context={"name": consumer},
            done_on_retry=frozenset({"claim_not_found", "claim_not_held"}),
        )
        return int(wire.answer(wire.OBJECT, data, "a nack").get("nacked", len(claims)))

    async def in_progress(
        self, consumer: str, claims: Sequence[Claim | str], *, worker: str
    ) -> datetime:
        """Extend claims by their ``ack_wait``; their new expiry."""
        body = wire.encode({"worker": worker, "claims": _ids(claims)})
        _, data = await self.http.request(
            "POST", _path(consumer, "in-progress"), body=body, context={"name": consumer}
        )
        return wire.answer(_expires, data, "an in-progress")["expires"]

    def claims(self, consumer: str, *, worker: str, max: int = 10, wait: float = 5.0) -> Claims:
        """Claims for ``worker``, forever: ``async for claim in client.claims(...)``."""
        return Claims(self, consumer, worker=worker, max=max, wait=wait)


class Claims:
    """An endless async iterator of claims for one worker (see the module docstring).

    ``max`` claims are fetched per request: each must be acked before it
    expires, so keep ``max`` small when handling an event is slow.
    """

    def __init__(
        self, methods: SharedMethods, consumer: str, *, worker: str, max: int, wait: float
    ) -> None:
        self._methods = methods
        self.consumer = validate_stream_name(consumer)
        self.worker = worker
        self.max = max
        self.wait = wait
        self._buffer: deque[Claim] = deque()
        self._failures = 0

    def __aiter__(self) -> Claims:
        return self

    async def __anext__(self) -> Claim:
        while not self._buffer:
            try:
                got = await self._methods.claim(
                    self.consumer, worker=self.worker, max=self.max, wait=self.wait
                )
            except Unavailable as exc:
                if not wire.worth_retrying(exc):
                    raise
                self._failures += 1
                if self._failures == 1:
                    logger.warning("claims for %s: %s; asking again", self.consumer, exc)
                await asyncio.sleep(CLAIM_BACKOFF.delay(self._failures))
                continue
            self._failures = 0
            self._buffer.extend(got)
        return self._buffer.popleft()
