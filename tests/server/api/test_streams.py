"""Stream routes on the ASGI app itself (no socket): what a long-poll answers during shutdown."""

from __future__ import annotations

import time
from pathlib import Path


async def test_a_long_poll_during_shutdown_is_503_not_an_empty_page(tmp_path: Path) -> None:
    """A follower (``eventlog tail -f``) backs off on 503; an empty 200 would
    have it poll again at once, in a loop, for as long as the shutdown lasts."""
    import httpx

    from eventlog import EventLog
    from server.app import create_app
    from server.config import ServerConfig

    async with EventLog.open(tmp_path / "e.db") as log:
        await log.append("s", 1, type="t")
        app = create_app(log, ServerConfig(access_log=False))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            served = await client.get("/api/streams/s/events", params={"from": 0, "wait": 5})
            assert served.status_code == 200
            assert len(served.json()["events"]) == 1
            app.state.stopping.set()
            started = time.monotonic()
            r = await client.get("/api/streams/s/events", params={"from": 1, "wait": 5})
            assert time.monotonic() - started < 2
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "shutting_down"
            page = await client.get("/api/streams/s/events", params={"from": 0})
            assert page.status_code == 200  # plain reads are still served
