"""Scheduled appends over the client take what the embedded log takes and refuse
the same way: a past due time is now, a naive one ``InvalidSchedule``, and
``expected_offset`` with ``at=`` ``InvalidInput``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventlog import EventLog, InvalidInput, InvalidSchedule
from eventlog.client import AsyncClient
from tests.support import scaled


@pytest.mark.parametrize(
    "at", [timedelta(seconds=-5), datetime(2000, 1, 1, tzinfo=UTC)], ids=["delay", "time"]
)
async def test_a_due_time_in_the_past_is_appended_at_once(
    log: EventLog | AsyncClient, at: datetime | timedelta
) -> None:
    before = datetime.now(UTC)
    scheduled = await log.append("late", {"n": 1}, type="t", id="late-1", at=at)
    assert scheduled.deliver_at >= before - timedelta(seconds=1)
    assert await log.wait("late", 0, timeout=scaled(5))
    assert [e.id for e in await log.read("late", 0)] == ["late-1"]


@pytest.mark.parametrize(
    ("options", "error", "code"),
    [
        ({"at": datetime(2027, 1, 1)}, InvalidSchedule, "invalid_schedule"),
        ({"at": timedelta(1), "expected_offset": 0}, InvalidInput, "invalid_input"),
    ],
    ids=["naive", "expected_offset"],
)
async def test_a_refused_schedule_is_the_same_error(
    log: EventLog | AsyncClient, options: dict[str, Any], error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as caught:
        await log.append("late", {}, type="t", **options)
    assert type(caught.value) is error
    assert getattr(caught.value, "code", None) == code
