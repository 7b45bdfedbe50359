"""A server's scheduled appends, as the embedded log's ``log.schedules`` offers them.

``client.schedules.page(...)``, ``.get(stream, id)`` and ``.cancel(stream, id)``
take the arguments and return the types of
:class:`eventlog.schedule.Scheduler`'s methods of the same names, over
``/api/schedules`` (``docs/producers.md``). Scheduling itself is
``append(..., at=)`` / ``append_batch(..., at=)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import msgspec

from eventlog.client import wire
from eventlog.client.transport import Transport
from eventlog.model import NewEvent, validate_stream_name
from eventlog.schedule import Scheduled, ScheduledEvent, SchedulePage, check_at

__all__ = ["RemoteSchedules", "schedule"]


class _ScheduleAnswer(msgspec.Struct):
    scheduled: list[Scheduled]


_page = msgspec.json.Decoder(SchedulePage)
_event = msgspec.json.Decoder(ScheduledEvent)
_scheduled = msgspec.json.Decoder(_ScheduleAnswer)


async def schedule(
    http: Transport,
    stream: str,
    events: Sequence[NewEvent | Mapping[str, Any]],
    at: datetime | timedelta,
) -> list[Scheduled]:
    """POST ``events`` to be appended at ``at`` (a timezone-aware time, or a delay);
    as the embedded log, a time in the past means now."""
    validate_stream_name(stream)
    check_at(at)
    if isinstance(at, timedelta):
        params: dict[str, str | int | float] = {"delay": max(at.total_seconds(), 0.0)}
    else:
        params = {"deliver_at": at.isoformat()}
    body, _ = wire.append_body(events)
    _, data = await http.request("POST", f"/api/streams/{stream}/events", params=params, body=body)
    return wire.answer(_scheduled, data, "a scheduled append").scheduled


def _one(stream: str, event_id: str) -> str:
    return f"/api/schedules/{validate_stream_name(stream)}/{quote(event_id, safe='')}"


class RemoteSchedules:
    """The server's scheduled events: :class:`eventlog.schedule.Scheduler`'s
    ``page``, ``get`` and ``cancel``."""

    def __init__(self, http: Transport) -> None:
        self._http = http

    async def get(self, stream: str, event_id: str) -> ScheduledEvent:
        """One scheduled event.

        Raises:
            ScheduleNotFound: Nothing with that id waits for ``stream``.
        """
        _, data = await self._http.request(
            "GET", _one(stream, event_id), context={"stream": stream, "id": event_id}
        )
        return wire.answer(_event, data, "a schedule query")

    async def cancel(self, stream: str, event_id: str) -> None:
        """Remove a scheduled event before it is appended.

        Raises:
            ScheduleNotFound: Nothing with that id waits for ``stream``.
        """
        await self._http.request(
            "DELETE", _one(stream, event_id), context={"stream": stream, "id": event_id}
        )

    async def page(
        self,
        *,
        stream: str | None = None,
        type: str | None = None,
        until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> SchedulePage:
        """Scheduled events in due order, a page at a time (``next`` is the cursor)."""
        params: dict[str, str | int | float] = {"limit": limit}
        for name, value in (("stream", stream), ("type", type), ("after", after)):
            if value is not None:
                params[name] = value
        if until is not None:
            params["until"] = until.isoformat()
        _, data = await self._http.request("GET", "/api/schedules", params=params)
        return wire.answer(_page, data, "the schedule list")
