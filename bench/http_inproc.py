"""In-process measurements of the HTTP append path (no sockets, no load generator):
CPU per single-event POST for the bare endpoint, eventlog's app over a log that
does nothing, and the app on SQLite; and a cProfile of the batch path.

They separate the HTTP layer's cost from the log's, where the socket
measurements of :mod:`bench.http` see only their sum.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.common import payload, scratch_dir

__all__ = ["cpu_per_request", "profile_batches"]

PATH = "/api/streams/bench/events"


async def _asgi_post(app: Any, body: bytes) -> None:
    """One POST straight into the ASGI app (no sockets): what the server does per request."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # pragma: no cover - never asked for more
        raise AssertionError

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if statuses != [201]:
        raise RuntimeError(f"answer {statuses}")


def cpu_per_request(requests: int = 5000, concurrency: int = 64) -> dict[str, float]:
    """CPU µs per single-event POST in-process (no sockets, no load generator):
    the bare endpoint, eventlog's app over a log that does nothing, and the real app on
    SQLite. Separates HTTP-layer cost from the log's."""
    import uvloop

    from eventlog import EventLog
    from eventlog.storage.base import Appended
    from server.app import create_app
    from server.config import ServerConfig

    body = msgspec.json.encode({"type": "order.created", "data": payload(0)})

    class NoLog:
        """Stands in for the log: answers every append at once."""

        closed = False
        config = type("C", (), {"max_batch_events": 10_000})()
        writer_stats: dict[str, int] = {}

        async def append_batch_result(
            self, stream: str, events: object, expected_offset: int | None = None
        ) -> Appended:
            return Appended(offsets=[0], written=1, next_offset=1)

    async def drive(app: Any) -> float:
        todo = iter(range(requests))

        async def worker() -> None:
            for _ in todo:
                await _asgi_post(app, body)

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.process_time() - started) / requests * 1e6

    async def main(db: Path) -> dict[str, float]:
        from bench.http_bare import app as bare

        out = {"bare": await drive(bare)}
        out["app"] = await drive(create_app(NoLog(), ServerConfig(access_log=False)))  # type: ignore[arg-type]
        async with EventLog.open(db) as log:
            out["full"] = await drive(create_app(log, ServerConfig(access_log=False)))
        return out

    with scratch_dir() as d:
        return uvloop.run(main(d / "cpu.db"))


def profile_batches(requests: int = 300, concurrency: int = 16, top: int = 12) -> list[str]:
    """cProfile of the server's own work for batch appends (in-process, no sockets):
    the ``top`` functions by own time, as markdown lines."""
    import cProfile
    import io
    import pstats

    import uvloop

    from eventlog import EventLog
    from server.app import create_app
    from server.config import ServerConfig

    body = msgspec.json.encode([{"type": "order.created", "data": payload(i)} for i in range(100)])

    async def main(db: Path) -> None:
        async with EventLog.open(db) as log:
            app = create_app(log, ServerConfig(access_log=False))
            todo = iter(range(requests))

            async def worker() -> None:
                for _ in todo:
                    await _asgi_post(app, body)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    with scratch_dir() as d:
        profiler = cProfile.Profile()
        profiler.enable()
        uvloop.run(main(d / "profile.db"))
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    stats.sort_stats("tottime")
    rows = []
    for func in stats.fcn_list[:top]:  # type: ignore[attr-defined]
        _cc, ncalls, tottime, cumtime, _callers = stats.stats[func]  # type: ignore[attr-defined]
        where = f"{Path(func[0]).name}:{func[1]}({func[2]})"
        rows.append(f"| `{where}` | {ncalls:,} | {tottime / total:.0%} | {cumtime / total:.0%} |")
    events = requests * 100
    return [
        f"Profile of the batch path (cProfile, in-process, {requests} requests of 100 events, "
        f"{concurrency} concurrent, no sockets; {total / events * 1e6:.1f} µs of profiled "
        "main-thread time per event; the SQLite writes run on aiosqlite's thread and are "
        "not in it). Top functions by own time:",
        "| function | calls | own time | cumulative |",
        "|---|---|---|---|",
        *rows,
        "",
        "Reading it: `runners.run` is the event loop itself, mostly idle while the writer "
        "thread commits (executemany and fsync of the previous batch); the rest is "
        "per-event Python work on the request path: the log's validation and id generation "
        "(`pending_event`, `uuid7`; events carrying headers, here the correlation id, miss "
        "the log's no-headers fast path) and building one `NewEvent` per event "
        "(`_to_new`). JSON decoding (msgspec) is a few percent. Both threads need the GIL, "
        "so per-event Python cost on the request path and per-row cost on the writer "
        "thread add up rather than overlap: that sum, not the disk, bounds batch "
        "throughput on this 2-core machine shared with the load generator.",
        "",
        "",
    ]
