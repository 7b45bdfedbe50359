"""A row in PostgreSQL whose headers or data are not UTF-8 (written by hand: the
columns are bytea) never breaks a read: headers come back repaired and flagged,
data as stored, for the surfaces to repair (see eventlog.repair)."""

from __future__ import annotations

import asyncpg

from eventlog import EventLog
from eventlog.repair import REPAIRED_HEADER
from eventlog.storage.postgres import PostgresStorage


async def test_a_row_with_headers_not_utf8_is_read_repaired_and_later_events_follow(
    pg_url: str,
) -> None:
    async with EventLog(PostgresStorage(pg_url)) as log:
        await log.append("s", {"n": 0}, type="ok", headers={"h": "v"})
        await log.append("s", {"n": 1}, type="ok", headers={"h": "v"})
        await log.append("s", {"n": 2}, type="ok")
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                "UPDATE eventlog.events SET headers = $1, data = $2 "
                "WHERE stream = 's' AND \"offset\" = 1",
                b'{"h": "\xfe"}',
                b'"caf\xe9"',
            )
        finally:
            await conn.close()
        events = await log.read("s", 0, 10)
    assert [e.offset for e in events] == [0, 1, 2]
    assert events[0].headers == {"h": "v"}
    assert events[1].headers == {"h": "\ufffd", REPAIRED_HEADER: "utf-8"}
    assert bytes(events[1].data) == b'"caf\xe9"'
    assert events[2].json() == {"n": 2}
