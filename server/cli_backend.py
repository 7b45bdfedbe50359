"""Where the client CLI's commands run: a server over HTTP, or a database file in-process.

Both implement one narrow :class:`Backend` contract, so every command is
written once. :class:`HttpBackend` speaks the HTTP API with httpx (a bearer
API key if given); :class:`DbBackend` opens the SQLite file with
:class:`eventlog.EventLog` in this process, for when no server runs.

Failures surface as :class:`CliError` carrying the exit code: 1 for what the
server or the log refused (with the server's own error message), 2 for usage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import quote

import httpx
import msgspec

from eventlog import (
    ConsumerInfo,
    Event,
    EventLog,
    EventLogError,
    LogConfig,
    NewEvent,
    OffsetOutOfRange,
    StreamInfo,
    StreamNotFound,
)
from server.cli_events import OutEvent, encode_out

__all__ = [
    "Appended",
    "Backend",
    "CliError",
    "ConsumerRow",
    "DbBackend",
    "HttpBackend",
    "OutOfRange",
    "Unavailable",
]


class CliError(Exception):
    """A failure to report on stderr and exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        #: The JSON path the server named in a validation error, e.g. ``$[3].type``.
        self.path = path


class OutOfRange(CliError):
    """A read started before the stream's first retained offset."""

    def __init__(self, message: str, first: int | None) -> None:
        super().__init__(message, 1)
        self.first = first


class Unavailable(CliError):
    """The server could not be reached, timed out, or answered 503: worth retrying."""


class Appended(msgspec.Struct, frozen=True, kw_only=True):
    """What an append answered: each event's offset, and how many were new (if known)."""

    offsets: list[int]
    written: int | None = None


class ConsumerRow(msgspec.Struct, frozen=True, kw_only=True):
    """One consumer's committed position on one stream, with its lag."""

    name: str
    stream: str
    offset: int
    lag: int | None = None
    updated: datetime | None = None


class Backend(Protocol):
    """What a client command needs from a log, local or remote."""

    async def append(self, stream: str, events: Sequence[OutEvent]) -> Appended:
        """Append events atomically; return their offsets."""
        ...

    async def read(self, stream: str, start: int, limit: int, wait: float) -> list[Event]:
        """Up to ``limit`` events from ``start``, waiting up to ``wait`` s for the first."""
        ...

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's shape, or None if it does not exist."""
        ...

    async def streams(self) -> list[StreamInfo]:
        """Every stream."""
        ...

    async def consumers(self) -> list[ConsumerRow]:
        """Every consumer position."""
        ...

    async def aclose(self) -> None:
        """Release connections / close the log."""
        ...


# -- HTTP ---------------------------------------------------------------------------------


class _ErrorBody(msgspec.Struct):
    code: str = "error"
    message: str = ""
    path: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody


class _Page(msgspec.Struct):
    events: list[Event]


class _Streams(msgspec.Struct):
    streams: list[StreamInfo]


class _Consumers(msgspec.Struct):
    consumers: list[ConsumerRow]


class _AppendAnswer(msgspec.Struct):
    offsets: list[int] | None = None
    offset: int | None = None
    written: int | None = None


def server_error(response: httpx.Response) -> CliError:
    """A :class:`CliError` from an error response, quoting the server's message."""
    status = f"HTTP {response.status_code}"
    try:
        body = msgspec.json.decode(response.content, type=_ErrorEnvelope).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = response.text.strip()[:300] or response.reason_phrase
        return CliError(f"server answered {status}: {text}")
    if body.code == "offset_out_of_range":
        return OutOfRange(f"{body.message} ({body.code}, {status})", None)
    if response.status_code == 503:
        return Unavailable(f"{body.message} ({body.code}, {status})")
    return CliError(f"{body.message} ({body.code}, {status})", path=body.path)


class HttpBackend:
    """The HTTP API of an eventlog server, through one keep-alive httpx client."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"User-Agent": "eventlog-cli"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int | float] | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
        allow_404: bool = False,
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"} if content is not None else None
        limits = self._client.timeout if timeout is None else httpx.Timeout(timeout, connect=10.0)
        try:
            response = await self._client.request(
                method, path, params=params, content=content, headers=headers, timeout=limits
            )
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"{method} {self.url}{path} timed out ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the server at {self.url}: {exc or type(exc).__name__} "
                "(is `eventlog serve` running? set --url or EVENTLOG_URL)"
            ) from exc
        if response.is_error and not (allow_404 and response.status_code == 404):
            raise server_error(response)
        return response

    @staticmethod
    def _decode(response: httpx.Response, type: Any, what: str) -> Any:
        try:
            return msgspec.json.decode(response.content, type=type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CliError(f"unexpected answer to {what}: {exc}") from exc

    @staticmethod
    def _path(stream: str) -> str:
        return f"/api/streams/{quote(stream, safe='')}"

    async def append(self, stream: str, events: Sequence[OutEvent]) -> Appended:
        """POST the events: one event as an object, several as one JSON array (atomic)."""
        content = encode_out(events[0] if len(events) == 1 else list(events))
        response = await self._request("POST", self._path(stream) + "/events", content=content)
        answer: _AppendAnswer = self._decode(response, _AppendAnswer, "an append")
        offsets = answer.offsets if answer.offsets is not None else [answer.offset or 0]
        if len(offsets) != len(events):
            raise CliError(f"the server returned {len(offsets)} offsets for {len(events)} events")
        return Appended(offsets=offsets, written=answer.written)

    async def read(self, stream: str, start: int, limit: int, wait: float) -> list[Event]:
        """GET one page of events, long-polling up to ``wait`` seconds."""
        params: dict[str, str | int | float] = {"from": start, "limit": limit}
        if wait > 0:
            params["wait"] = wait
        response = await self._request(
            "GET", self._path(stream) + "/events", params=params, timeout=wait + 30.0
        )
        page = self._decode(response, _Page | list[Event], "a read")
        return page.events if isinstance(page, _Page) else page

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """GET /api/streams/{stream}; None on 404."""
        response = await self._request("GET", self._path(stream), allow_404=True)
        if response.status_code == 404:
            return None
        info: StreamInfo = self._decode(response, StreamInfo, "a stream query")
        return info

    async def streams(self) -> list[StreamInfo]:
        """GET /api/streams."""
        response = await self._request("GET", "/api/streams")
        answer = self._decode(response, _Streams | list[StreamInfo], "the stream list")
        return answer.streams if isinstance(answer, _Streams) else answer

    async def consumers(self) -> list[ConsumerRow]:
        """GET /api/consumers."""
        response = await self._request("GET", "/api/consumers")
        answer = self._decode(response, _Consumers | list[ConsumerRow], "the consumer list")
        return answer.consumers if isinstance(answer, _Consumers) else answer


# -- database file ------------------------------------------------------------------------


class DbBackend:
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

    async def __aenter__(self) -> Self:
        try:
            self._log = await EventLog.open(self.path, config=self._config)
        except EventLogError as exc:
            raise CliError(f"cannot open {str(self.path)!r}: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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

    async def append(self, stream: str, events: Sequence[OutEvent]) -> Appended:
        """``append_batch_result`` on the log."""
        batch = [
            NewEvent(type=e.type, data=e.data, key=e.key, id=e.id, headers=e.headers)
            for e in events
        ]
        try:
            result = await self.log.append_batch_result(stream, batch)
        except EventLogError as exc:
            raise CliError(f"{exc} ({exc.code})") from exc
        return Appended(offsets=result.offsets, written=result.written)

    async def read(self, stream: str, start: int, limit: int, wait: float) -> list[Event]:
        """``read`` on the log, waiting for an append if empty and ``wait`` > 0."""
        try:
            events = await self.log.read(stream, start, limit)
            if not events and wait > 0 and await self.log.wait(stream, start, wait):
                events = await self.log.read(stream, start, limit)
        except OffsetOutOfRange as exc:
            raise OutOfRange(f"{exc} ({exc.code})", exc.first) from exc
        except EventLogError as exc:
            raise CliError(f"{exc} ({exc.code})") from exc
        return events

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's info, None if it does not exist."""
        try:
            return await self.log.stream_info(stream)
        except StreamNotFound:
            return None

    async def streams(self) -> list[StreamInfo]:
        """Every stream."""
        return await self.log.streams()

    async def consumers(self) -> list[ConsumerRow]:
        """Every consumer position, with lag against its stream's head."""
        heads = {info.name: info.next_offset for info in await self.log.streams()}
        return [_row(c, heads.get(c.stream)) for c in await self.log.consumers()]


def _row(info: ConsumerInfo, head: int | None) -> ConsumerRow:
    lag = None if head is None else max(head - info.offset, 0)
    return ConsumerRow(
        name=info.name, stream=info.stream, offset=info.offset, lag=lag, updated=info.updated
    )
