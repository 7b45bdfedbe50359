"""Scheduled appends: a reminder due in two seconds, one cancelled, one refused.

Run: python docs/examples/scheduled.py
"""

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventlog import EventLog, InvalidSchedule


async def main() -> None:
    path = Path(tempfile.mkdtemp()) / "events.db"
    async with EventLog.open(path) as log:
        due = await log.append(
            "reminders", {"call": 42}, type="reminder.due", id="call-42", at=timedelta(seconds=2)
        )
        print("scheduled", due.id, "for", due.deliver_at.isoformat())
        await log.append(
            "reminders",
            {"call": 43},
            type="reminder.due",
            id="call-43",
            at=datetime.now(UTC) + timedelta(hours=1),
        )
        await log.schedules.cancel("reminders", "call-43")
        try:
            await log.append("reminders", {}, type="x", at=timedelta(days=1000))
        except InvalidSchedule as exc:
            print("refused:", exc.code)
        await log.wait("reminders", 0)  # appended by the log's schedule task
        [event] = await log.read("reminders")
        late = (event.time - due.deliver_at).total_seconds() * 1000
        print(f"appended {event.id} at offset {event.offset}, {late:.1f} ms after its time")


asyncio.run(main())
