"""One stored event that is not UTF-8 never breaks a stream's readers.

An older eventlog accepted ``{"type": "bad", "data": "\\xff"}`` and stored it;
afterwards every reader of the stream broke (pages that were not UTF-8, live
WebSocket clients closed, a reconnect from that offset closed with 1011 every
time, SSE hinting ``resume_from: 0``, webhooks sending bodies that were not
UTF-8). Here such rows are written straight into the SQLite file with sqlite3,
as that version (or a hand) left them, before and while a real server runs,
and every reader surface must keep serving the stream's later events, each bad
event sent repaired and flagged with the ``eventlog-repaired`` header.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from eventlog import BEGINNING, EventLog
from eventlog.repair import REPAIRED_HEADER
from tests.consumers.delivery.receiver import Receiver
from tests.serverproc import ServerProcess
from tests.support import scaled

STREAM = "s"
#: Offset 2: data as an older version stored it. Offset 3: type and headers
#: that only a hand could write. Offset 4 is written the same way while the server runs.
BAD_DATA = b'{"note": "caf\xe9", "ok": true}'
REPAIRED_DATA = {"note": "caf\ufffd", "ok": True}


def write_row(
    db: Path, offset: int, *, data: bytes, type_: bytes = b"old", headers: bytes = b""
) -> None:
    """Insert one row at the stream's head with sqlite3, as an old version would have."""
    with sqlite3.connect(db, timeout=scaled(10)) as conn:
        conn.execute(
            "INSERT INTO events (stream, offset, id, type, key, time_us, headers, data) "
            "VALUES (?, ?, ?, CAST(? AS TEXT), NULL, ?, ?, ?)",
            (STREAM, offset, f"old-{offset}", type_, time.time_ns() // 1000, headers or None, data),
        )
        conn.execute(
            "UPDATE streams SET next_offset = ?, bytes = bytes + ? WHERE name = ?",
            (offset + 1, len(data), STREAM),
        )
    conn.close()


async def make_db(path: Path) -> None:
    async with EventLog.open(path) as log:
        await log.append(STREAM, {"n": 0}, type="ok")
        await log.append(STREAM, {"n": 1}, type="ok")
    write_row(path, 2, data=BAD_DATA)
    write_row(path, 3, data=b'{"n": 3}', type_=b"bad\xff", headers=b'{"h": "\xfe"}')


def decode_strict(raw: bytes | str) -> Any:
    """JSON the way a strict client reads it: the bytes must be UTF-8."""
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


def check(events: list[dict[str, Any]], offsets: list[int]) -> None:
    """The events are those offsets, each bad one repaired and flagged, the rest untouched."""
    assert [e["offset"] for e in events] == offsets
    for e in events:
        flagged = e["headers"].get(REPAIRED_HEADER) == "utf-8"
        assert flagged == (e["offset"] in (2, 3, 4)), e
        if e["offset"] in (2, 4):
            assert e["data"] == REPAIRED_DATA
        if e["offset"] == 3:
            assert e["type"] == "bad\ufffd"
            assert e["headers"]["h"] == "\ufffd"
        if e["type"] == "later":
            assert e["data"] == {"n": e["offset"]}


async def ws_read(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(scaled(15)):
        while len(out) < count:
            frame = await ws.recv()
            assert isinstance(frame, str)  # a text frame, so valid UTF-8
            out.append(decode_strict(frame))
    return out


async def sse_messages(
    client: httpx.AsyncClient, url: str, until: int, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, Any]]:
    """(event name, decoded data) of each SSE message, until offset ``until`` or ``closed``."""
    async with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                fields = dict(
                    line.decode("utf-8").split(": ", 1)
                    for line in block.split(b"\n")
                    if line and not line.startswith(b":")
                )
                if "data" not in fields:
                    continue
                name = fields.get("event", "message")
                yield name, decode_strict(fields["data"])
                if name == "closed" or (name == "message" and int(fields["id"]) >= until):
                    return


async def collect_sse(
    client: httpx.AsyncClient, url: str, until: int, headers: dict[str, str] | None = None
) -> list[tuple[str, Any]]:
    return [m async for m in sse_messages(client, url, until, headers)]


async def wait_for_clients(http: httpx.AsyncClient, **expected: int) -> None:
    """Poll ``/metrics`` until the firehose has that many clients by transport."""
    async with asyncio.timeout(scaled(10)):
        while True:
            text = (await http.get("/metrics")).text
            if all(
                f'eventlog_firehose_clients{{transport="{t}"}} {n}.0' in text
                for t, n in expected.items()
            ):
                return
            await asyncio.sleep(0.02)


async def test_a_non_utf8_row_in_an_existing_file_breaks_no_reader(
    tmp_path: Path, receiver: Receiver
) -> None:
    db = tmp_path / "events.db"
    await make_db(db)
    config = tmp_path / "eventlog.toml"
    config.write_text("[webhooks]\nallow_private_targets = true\n")
    server = ServerProcess.start(db=db, extra_args=["--config", str(config)])
    try:
        await _every_surface(server, db, receiver)
    finally:
        server.stop()
    # Consumer poll, embedded, on the same file: every event, text repaired by storage.
    async with EventLog.open(db) as log:
        consumer = log.consumer("after", STREAM)
        await consumer.seek(BEGINNING)
        polled = await consumer.poll(100, timeout=scaled(5))
        assert [e.offset for e in polled] == list(range(8))
        assert polled[3].type == "bad\ufffd"
        assert polled[3].headers[REPAIRED_HEADER] == "utf-8"
        assert [e.json() for e in polled[5:]] == [{"n": 5}, {"n": 6}, {"n": 7}]


async def _every_surface(server: ServerProcess, db: Path, receiver: Receiver) -> None:
    ws_base = f"{server.ws_url}/api/streams/{STREAM}/firehose"
    sse_base = f"{server.url}/api/streams/{STREAM}/sse"
    async with httpx.AsyncClient(base_url=server.url, timeout=scaled(20)) as http:
        # HTTP read of the rows left by the old version: a UTF-8 page.
        r = await http.get(f"/api/streams/{STREAM}/events", params={"from": 0})
        assert r.status_code == 200
        check(decode_strict(r.content)["events"], [0, 1, 2, 3])

        r = await http.post(
            "/api/webhooks",
            json={"id": "w", "url": receiver.url(), "stream": STREAM, "start": "beginning"},
        )
        assert r.status_code == 201, r.text

        # Readers open before more rows arrive: catching up, live, long-polling.
        catching_up = await connect(f"{ws_base}?from=0")
        live = await connect(f"{ws_base}?from=end")
        other_live = await connect(f"{server.ws_url}/api/events/firehose?from=end")
        sse_catching_up = asyncio.create_task(collect_sse(http, f"{sse_base}?from=0", 6))
        sse_live = asyncio.create_task(collect_sse(http, f"{sse_base}?from=end", 7))
        long_poll = asyncio.create_task(
            http.get(f"/api/streams/{STREAM}/events", params={"from": 4, "wait": scaled(20)})
        )
        await wait_for_clients(http, ws=3, sse=2)  # "end" is fixed for each of them

        # The old version writes one more bad row while the server runs, then new appends.
        write_row(db, 4, data=BAD_DATA)
        for n in (5, 6):
            r = await http.post(
                f"/api/streams/{STREAM}/events", json={"type": "later", "data": {"n": n}}
            )
            assert r.status_code == 201, r.text
        await http.post("/api/streams/events/events", json={"type": "elsewhere"})

        check(await ws_read(catching_up, 7), list(range(7)))
        check(await ws_read(live, 3), [4, 5, 6])
        assert (await ws_read(other_live, 1))[0]["type"] == "elsewhere"
        page = (await long_poll).content
        check(decode_strict(page)["events"], [4, 5, 6][: len(decode_strict(page)["events"])])
        assert decode_strict(page)["events"][0]["offset"] == 4
        messages = await sse_catching_up
        check([data for _, data in messages], list(range(7)))

        # Reconnecting from the bad offsets: served, not closed with 1011.
        async with connect(f"{ws_base}?from=2") as again:
            check(await ws_read(again, 5), [2, 3, 4, 5, 6])
        resumed = await collect_sse(http, sse_base, 6, headers={"Last-Event-ID": "1"})
        check([data for _, data in resumed], [2, 3, 4, 5, 6])

        # Webhook: every event delivered to the real receiver, bodies UTF-8 JSON.
        async with asyncio.timeout(scaled(20)):
            while True:
                receiver.arrived.clear()
                if len({decode_strict(r.body)["offset"] for r in receiver.requests}) >= 7:
                    break
                await receiver.arrived.wait()
        delivered = {
            decode_strict(r.body)["offset"]: decode_strict(r.body) for r in receiver.requests
        }
        check([delivered[o] for o in sorted(delivered)], list(range(7)))

        # The live clients are still open and get the next event.
        r = await http.post(
            f"/api/streams/{STREAM}/events", json={"type": "later", "data": {"n": 7}}
        )
        assert r.status_code == 201
        check(await ws_read(catching_up, 1), [7])
        check(await ws_read(live, 1), [7])
        for ws in (catching_up, live, other_live):
            await ws.close()
        # The live SSE client got every event and was never told to go (no `closed` message).
        assert [(name, data["offset"]) for name, data in await sse_live] == [
            ("message", offset) for offset in (4, 5, 6, 7)
        ]

        metrics = (await http.get("/metrics")).text
        for surface in ("http", "firehose", "webhook", "storage"):
            assert f'eventlog_events_repaired_total{{surface="{surface}"}}' in metrics, surface
