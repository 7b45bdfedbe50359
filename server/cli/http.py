"""``HttpBackend``: the client commands over the server's HTTP API, with httpx.

One keep-alive :class:`httpx.AsyncClient`; an API key goes out as
``Authorization: Bearer``. Error answers ``{"error": {"code", "message"}}``
become :class:`~server.cli.backend.CliError` quoting the server's message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from eventlog import Event, StreamInfo
from eventlog.closing import AsyncClosing
from eventlog.schedule import Scheduled, ScheduledEvent, SchedulePage
from server.cli.backend import Appended, CliError, ConsumerRow, OutOfRange, Unavailable
from server.cli.events import OutEvent, encode_out

__all__ = ["HttpBackend", "server_error"]


class _ErrorBody(msgspec.Struct):
    code: str = "error"
    message: str = ""
    path: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody


class _ScheduleAnswer(msgspec.Struct):
    scheduled: list[Scheduled]


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
    """A :class:`CliError` from an error response, quoting the server's message.

    A 503 (the server is stopping or its storage failed) becomes
    :class:`Unavailable`, an ``offset_out_of_range`` answer :class:`OutOfRange`.
    """
    status = f"HTTP {response.status_code}"
    try:
        body = msgspec.json.decode(response.content, type=_ErrorEnvelope).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = " ".join(response.text.split())[:300] or response.reason_phrase
        body = _ErrorBody(code="", message=f"server answered {status}: {text}")
        message = body.message
    else:
        message = f"{body.message} ({body.code}, {status})"
    if response.status_code == 503:
        return Unavailable(message)
    if body.code == "offset_out_of_range":
        return OutOfRange(message, None)
    return CliError(message, path=body.path)


def transport_error(exc: httpx.TransportError, method: str, url: str, path: str) -> Unavailable:
    """The :class:`Unavailable` for a request that got no answer (timeout, refused, reset)."""
    if isinstance(exc, httpx.TimeoutException):
        return Unavailable(f"{method} {url}{path} timed out ({type(exc).__name__})")
    return Unavailable(
        f"cannot reach the server at {url}: {exc or type(exc).__name__} "
        "(is `eventlog serve` running? set --url or EVENTLOG_URL)"
    )


class HttpBackend(AsyncClosing):
    """The HTTP API of an eventlog server, through one keep-alive httpx client."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Args: the server's base URL, an optional API key, the request timeout in
        seconds, and (for tests) an httpx transport to use instead of the network."""
        headers = {"User-Agent": "eventlog-cli"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    async def _exit(self) -> None:
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
        except httpx.TransportError as exc:
            raise transport_error(exc, method, self.url, path) from exc
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

    async def schedule(
        self, stream: str, events: Sequence[OutEvent], at: datetime | timedelta
    ) -> list[Scheduled]:
        """POST the events with ``deliver_at`` (a time) or ``delay`` (seconds)."""
        content = encode_out(events[0] if len(events) == 1 else list(events))
        params: dict[str, str | int | float] = (
            {"delay": at.total_seconds()}
            if isinstance(at, timedelta)
            else {"deliver_at": at.isoformat()}
        )
        response = await self._request(
            "POST", self._path(stream) + "/events", params=params, content=content
        )
        answer: _ScheduleAnswer = self._decode(response, _ScheduleAnswer, "a scheduled append")
        return answer.scheduled

    async def schedules(self, stream: str | None) -> list[ScheduledEvent]:
        """GET /api/schedules, every page."""
        out: list[ScheduledEvent] = []
        params: dict[str, str | int | float] = {"limit": 1000}
        if stream is not None:
            params["stream"] = stream
        while True:
            response = await self._request("GET", "/api/schedules", params=params)
            page: SchedulePage = self._decode(response, SchedulePage, "the schedule list")
            out += page.schedules
            if page.next is None:
                return out
            params["after"] = page.next

    async def cancel_schedule(self, stream: str, event_id: str) -> None:
        """DELETE /api/schedules/{stream}/{id}."""
        path = f"/api/schedules/{quote(stream, safe='')}/{quote(event_id, safe='')}"
        await self._request("DELETE", path)

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

    async def consumer(self, name: str) -> dict[str, Any]:
        """GET /api/consumers/{name}."""
        response = await self._request("GET", f"/api/consumers/{quote(name, safe='')}")
        answer: dict[str, Any] = self._decode(response, dict[str, Any], "a consumer query")
        return answer

    async def replay_parked(self, name: str) -> dict[str, Any]:
        """POST /api/consumers/{name}/replay-parked (the handler runs in the server)."""
        path = f"/api/consumers/{quote(name, safe='')}/replay-parked"
        response = await self._request("POST", path, timeout=600.0)
        answer: dict[str, Any] = self._decode(response, dict[str, Any], "a replay")
        return answer
