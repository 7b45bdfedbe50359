"""The row shape the SQLite and PostgreSQL schedule stores share."""

from __future__ import annotations

from typing import Any

from eventlog.storage.schedule import ScheduleRow

__all__ = ["ROW_COLUMNS", "schedule_row"]

#: The columns the SQL schedule stores select, in :func:`schedule_row`'s order.
ROW_COLUMNS = "stream, id, due_us, created_us, type, key, headers, data, seq"


def schedule_row(r: Any) -> ScheduleRow:
    """A :class:`~eventlog.storage.schedule.ScheduleRow` from a row of :data:`ROW_COLUMNS`."""
    stream, event_id, due_us, created_us, type_, key, headers, data, seq = r
    headers = None if headers is None else bytes(headers)
    return ScheduleRow(
        stream=stream, id=event_id, due_us=due_us, created_us=created_us, type=type_, key=key,
        headers=headers, data=bytes(data), seq=seq,
    )  # fmt: skip
