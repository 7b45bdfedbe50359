"""WebSocket transport options of `eventlog serve`: compression off unless configured."""

from __future__ import annotations

from pathlib import Path

import websockets

from tests.serverthread import ServerThread


async def test_permessage_deflate_is_off_by_default_and_can_be_enabled(tmp_path: Path) -> None:
    with ServerThread.start(db=tmp_path / "a.db") as server:
        async with websockets.connect(server.ws_url + "/api/events/firehose") as ws:
            assert ws.protocol.extensions == []
    with ServerThread.start(
        db=tmp_path / "b.db", env={"EVENTLOG_WS_COMPRESSION": "true"}
    ) as server:
        async with websockets.connect(server.ws_url + "/api/events/firehose") as ws:
            assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
