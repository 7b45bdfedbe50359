"""``AsyncClient``: a remote eventlog server with the methods of the embedded ``EventLog``.

::

    async with AsyncClient.open("http://127.0.0.1:7432") as log:   # or EventLog.open("events.db")
        offset = await log.append("orders", {"id": 7}, type="order.created")
        events = await log.read("orders", 0, 100)

Where the operation is the same, the name, the arguments, the return type and
the errors are the embedded log's (``read`` returns :class:`~eventlog.Event`
objects, a missing stream raises :class:`~eventlog.StreamNotFound`, ...), so
code moves between a file and a server with one line changed. Following the
WebSocket firehose is :mod:`eventlog.client.follow`; shared-consumer workers
are :mod:`eventlog.client.shared`.
"""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from ssl import SSLContext
from typing import Any, overload

import msgspec

from eventlog._opener import Opener
from eventlog.backoff import Backoff
from eventlog.client import wire
from eventlog.client.cursor import CursorMethods
from eventlog.client.follow import follow as follow_stream
from eventlog.client.offsets import OffsetMethods
from eventlog.client.schedules import RemoteSchedules, schedule
from eventlog.client.shared import SharedMethods
from eventlog.client.transport import DEFAULT_RETRY, Transport
from eventlog.closing import AsyncClosing
from eventlog.consumer import ConsumerMethods
from eventlog.errors import (
    EventLogError,
    InvalidInput,
    InvalidParameter,
    InvalidPosition,
    StreamNotFound,
)
from eventlog.model import Event, NewEvent, Retention, StreamInfo, validate_stream_name
from eventlog.paging import scan_pages
from eventlog.retention import check_retention
from eventlog.schedule import Scheduled
from eventlog.storage.base import Appended

__all__ = ["DEFAULT_URL", "AsyncClient"]

DEFAULT_URL = "http://127.0.0.1:7432"

#: Longest wait one long-poll request asks for (the server caps it at its ``max_wait``).
LONG_POLL = 30.0

_appended = msgspec.json.Decoder(wire.AppendAnswer)
_page = msgspec.json.Decoder(wire.Page)


def _path(*parts: str) -> str:
    return "/api/" + "/".join(parts)


class AsyncClient(AsyncClosing, OffsetMethods, CursorMethods, SharedMethods, ConsumerMethods):
    """An eventlog server over HTTP and WebSocket, for asyncio programs.

    Args:
        url: The server's base URL (default ``http://127.0.0.1:7432``).
        api_key: Sent as ``Authorization: Bearer KEY`` (and on the firehose).
        timeout: Seconds one request may take (a long-poll adds its wait).
        retry: Delays between retries (:class:`~eventlog.backoff.Backoff`).
        retry_for: Seconds to keep retrying an append or a read through 503s
            and connection errors before raising :class:`~eventlog.Unavailable`
            (0: raise at once).
        ssl: The TLS context for an ``https://`` server, HTTP and firehose
            (default: the system's trust store, or the file in ``SSL_CERT_FILE``).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: Backoff = DEFAULT_RETRY,
        retry_for: float = 30.0,
        ssl: SSLContext | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidParameter(f"the server URL must start with http:// or https://: {url!r}")
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.ssl = ssl
        self.http = Transport(
            self.url, api_key=api_key, timeout=timeout, retry=retry, retry_for=retry_for, ssl=ssl
        )
        self._closed = False
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    def open(cls, url: str = DEFAULT_URL, **options: Any) -> Opener[AsyncClient]:
        """``async with AsyncClient.open(url) as log:``, as ``EventLog.open(path)``."""
        return Opener(cls(url, **options))

    async def start(self) -> None:
        """Nothing to start: connections open on first use."""

    async def close(self) -> None:
        """Close the connections (after background appends finish). Idempotent."""
        self._closed = True
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.http.aclose()

    async def _exit(self) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    # -- appends -------------------------------------------------------------------------

    @overload
    async def append(
        self,
        stream: str,
        data: object,
        *,
        type: str,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        expected_offset: int | None = None,
        at: None = None,
    ) -> int: ...

    @overload
    async def append(
        self,
        stream: str,
        data: object,
        *,
        type: str,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        at: datetime | timedelta,
    ) -> Scheduled: ...

    async def append(
        self,
        stream: str,
        data: object,
        *,
        type: str,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        expected_offset: int | None = None,
        at: datetime | timedelta | None = None,
    ) -> int | Scheduled:
        """Append one event; return its offset once the server made it durable.

        The event gets an id (its idempotency key) here when ``id`` is None,
        so a retry after a lost answer writes nothing twice. With ``at``
        (a timezone-aware time, or a delay) the server schedules it and this
        returns a :class:`~eventlog.schedule.Scheduled`. Arguments and errors
        are :meth:`EventLog.append <eventlog.EventLog.append>`'s.
        """
        event = NewEvent(type=type, data=data, key=key, id=id, headers=dict(headers or {}))
        if at is not None:
            return (await self._scheduled(stream, [event], at, expected_offset))[0]
        result = await self._append(stream, [event], expected_offset, one=True)
        return result.offsets[0]

    @overload
    async def append_batch(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        expected_offset: int | None = None,
        at: None = None,
    ) -> list[int]: ...

    @overload
    async def append_batch(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        at: datetime | timedelta,
    ) -> list[Scheduled]: ...

    async def append_batch(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        expected_offset: int | None = None,
        at: datetime | timedelta | None = None,
    ) -> list[int] | list[Scheduled]:
        """Append events atomically (all or none, consecutive offsets); return their offsets.

        Events are :class:`~eventlog.NewEvent` objects or mappings with the
        same fields. With ``at``, schedule them all instead.
        """
        if at is not None:
            return await self._scheduled(stream, events, at, expected_offset)
        result = await self.append_batch_result(stream, events, expected_offset=expected_offset)
        return result.offsets

    async def _scheduled(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        at: datetime | timedelta,
        expected_offset: int | None,
    ) -> list[Scheduled]:
        if expected_offset is not None:
            raise InvalidInput("expected_offset cannot be combined with a scheduled append")
        return await schedule(self.http, stream, events, at)

    async def append_batch_result(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        expected_offset: int | None = None,
    ) -> Appended:
        """Like :meth:`append_batch`, also telling how many events were new."""
        return await self._append(stream, events, expected_offset, one=False)

    async def _append(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        expected_offset: int | None,
        *,
        one: bool,
    ) -> Appended:
        validate_stream_name(stream)
        body, _ = wire.append_body(events, one=one)
        params: dict[str, str | int | float] = {}
        if expected_offset is not None:
            params["expected_offset"] = expected_offset
        _, data = await self.http.request(
            "POST",
            _path("streams", stream, "events"),
            params=params,
            body=body,
            context={"stream": stream, "expected_offset": expected_offset},
        )
        answer = wire.answer(_appended, data, "an append")
        if len(answer.offsets) != len(events):
            raise EventLogError(
                f"the server returned {len(answer.offsets)} offsets for {len(events)} events",
                code=wire.BAD_ANSWER,
            )
        return Appended(
            offsets=answer.offsets, written=answer.written, next_offset=answer.next_offset
        )

    @property
    def schedules(self) -> RemoteSchedules:
        """The server's scheduled appends: ``page``, ``get`` and ``cancel``, as the
        embedded log's :attr:`EventLog.schedules <eventlog.EventLog.schedules>`."""
        return RemoteSchedules(self.http)

    async def call(
        self, method: str, path: str, body: object = None, **params: str | int | float | None
    ) -> Any:
        """One request to any route of the API (``/api/webhooks``, ...), for what has
        no method here; the JSON answer, None for ``204``. Retried like a read when
        ``method`` is GET, PUT or DELETE.

        Raises:
            EventLogError: The server's error answer, as the class it names.
        """
        query = {k: v for k, v in params.items() if v is not None}
        content = None if body is None else wire.encode(body)
        status, data = await self.http.request(
            method, path, params=query, body=content, idempotent=method in ("GET", "PUT", "DELETE")
        )
        return None if status == 204 or not data else wire.answer(wire.ANY, data, path)

    # -- reads ---------------------------------------------------------------------------

    async def read(self, stream: str, from_offset: int = 0, limit: int = 1000) -> list[Event]:
        """Up to ``limit`` events of ``stream`` from ``from_offset`` on, in order.

        Returns an empty list at the head (or for a stream that does not exist).

        Raises:
            OffsetOutOfRange: ``from_offset`` is before the first retained offset.
        """
        return await self._read(stream, from_offset, limit, 0.0)

    async def _read(self, stream: str, start: int, limit: int, wait: float) -> list[Event]:
        validate_stream_name(stream)
        if not isinstance(start, int) or start < 0:
            raise InvalidPosition("from_offset must be a non-negative integer")
        if not isinstance(limit, int) or limit < 1:
            raise InvalidPosition("limit must be a positive integer")
        params: dict[str, str | int | float] = {"from": start, "limit": limit}
        if wait > 0:
            params["wait"] = round(wait, 3)
        data = await self._get(
            _path("streams", stream, "events"),
            params,
            timeout=self.http.timeout + wait,
            context={"stream": stream, "offset": start},
        )
        return wire.answer(_page, data, "a read").events

    async def read_wait(
        self, stream: str, from_offset: int, limit: int = 1000, timeout: float = LONG_POLL
    ) -> list[Event]:
        """:meth:`read`, but when nothing is there yet, long-poll up to ``timeout``
        seconds for the first append (one request when ``timeout`` is within the
        server's ``max_wait``); ``[]`` if none came."""
        deadline = _time.monotonic() + timeout
        while True:
            left = deadline - _time.monotonic()
            events = await self._read(stream, from_offset, limit, max(min(left, LONG_POLL), 0))
            if events or left <= LONG_POLL:
                return events

    def scan(self, stream: str, start: int = 0, stop: int | None = None) -> AsyncIterator[Event]:
        """Iterate events from ``start`` up to (not including) ``stop`` or the
        current head, one page (1,000 events) at a time."""
        return scan_pages(self.read, stream, start, stop, 1000)

    async def wait(self, stream: str, offset: int, timeout: float | None = None) -> bool:
        """Wait until ``stream`` has an event at ``offset``; False on timeout."""
        deadline = None if timeout is None else _time.monotonic() + timeout
        while True:
            left = LONG_POLL if deadline is None else deadline - _time.monotonic()
            if await self._read(stream, offset, 1, max(min(left, LONG_POLL), 0)):
                return True
            if deadline is not None and _time.monotonic() >= deadline:
                return False

    #: Events of a stream from ``start`` on, forever, over the WebSocket firehose,
    #: resuming after disconnects: :func:`eventlog.client.follow.follow`.
    follow = follow_stream

    # -- streams -------------------------------------------------------------------------

    async def stream_info(self, stream: str) -> StreamInfo:
        """Head, low watermark, count, bytes and retention of a stream.

        Raises:
            StreamNotFound: The stream does not exist.
        """
        validate_stream_name(stream)
        data = await self._get(_path("streams", stream), context={"stream": stream})
        return wire.stream_answer(data, "a stream query")

    async def bounds(self, stream: str) -> tuple[int, int]:
        """``(first_offset, next_offset)``; ``(0, 0)`` for a stream that does not exist."""
        try:
            info = await self.stream_info(stream)
        except StreamNotFound:
            return (0, 0)
        return (info.first_offset, info.next_offset)

    async def streams(self) -> list[StreamInfo]:
        """Every stream (the API key may read), ordered by name."""
        return wire.streams_answer(await self._get("/api/streams"), "the stream list")

    async def set_retention(self, stream: str, retention: Retention) -> None:
        """Set a stream's retention policy (needs ``admin``; applied by the server's next
        retention pass), as :meth:`EventLog.set_retention <eventlog.EventLog.set_retention>`.

        Raises:
            InvalidField: A limit that is not above 0 or out of range (422).
        """
        validate_stream_name(stream)
        check_retention(retention)  # here too: JSON would carry a NaN limit as null
        await self.http.request(
            "PUT",
            _path("streams", stream, "retention"),
            body=wire.encode(retention),
            idempotent=True,
            context={"stream": stream},
        )

    async def delete_stream(self, stream: str) -> None:
        """Delete a stream, its events and its consumers' offsets (needs ``admin``).

        Raises:
            StreamNotFound: The stream does not exist.
        """
        validate_stream_name(stream)
        await self.http.request("DELETE", _path("streams", stream), context={"stream": stream})
