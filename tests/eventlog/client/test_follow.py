"""``AsyncClient.follow``: the WebSocket firehose, resumed across server restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eventlog import Event, StreamNotFound
from eventlog.client import AsyncClient
from tests.serverproc import ServerProcess
from tests.serverthread import ServerThread
from tests.support import scaled, wait_until

TOTAL = 400


async def test_follow_resumes_after_server_restarts_without_gaps_or_duplicates(
    tmp_path: Path,
) -> None:
    with ServerProcess.start(db=tmp_path / "follow.db") as server:
        async with AsyncClient(server.url, retry_for=scaled(60)) as client:
            await client.append("s", {"i": 0}, type="t")
            followed: list[Event] = []

            async def follower() -> None:
                async for event in client.follow("s", "beginning", batch=7):
                    followed.append(event)
                    if len(followed) == TOTAL:
                        return

            async def producer() -> None:
                for i in range(1, TOTAL):
                    await client.append("s", {"i": i}, type="t")
                    if i % 20 == 0:
                        await asyncio.sleep(0.01)

            following = asyncio.create_task(follower())
            producing = asyncio.create_task(producer())
            await wait_until(lambda: len(followed) >= 60, 30, what="first events")
            server.kill()  # a crash: SIGKILL, mid-stream
            await asyncio.to_thread(server.restart)
            await wait_until(lambda: len(followed) >= 200, 60, what="after the crash")
            await asyncio.to_thread(server.restart)  # a graceful stop: close code 1001
            await asyncio.wait_for(producing, scaled(60))
            await asyncio.wait_for(following, scaled(60))
            stored = [e async for e in client.scan("s")]
    assert [e.offset for e in followed] == list(range(TOTAL))
    assert followed == stored
    assert [e.json() for e in stored] == [{"i": i} for i in range(TOTAL)]


async def test_follow_from_end_sees_only_new_events_and_filters_by_type(tmp_path: Path) -> None:
    with ServerThread.start(db=tmp_path / "f.db") as server:
        async with AsyncClient(server.url) as client:
            await client.append_batch("s", [{"type": "old"}, {"type": "old"}])
            got: list[Event] = []

            async def follower() -> None:
                async for event in client.follow("s", types=["new.*"], batch=1):
                    got.append(event)
                    if len(got) == 2:
                        return

            task = asyncio.create_task(follower())
            await asyncio.sleep(0.3)
            await client.append_batch(
                "s", [{"type": "new.a"}, {"type": "other"}, {"type": "new.b"}]
            )
            await asyncio.wait_for(task, scaled(20))
    assert [(e.offset, e.type) for e in got] == [(2, "new.a"), (4, "new.b")]


async def test_following_a_stream_that_does_not_exist_raises_stream_not_found(
    tmp_path: Path,
) -> None:
    with ServerThread.start(db=tmp_path / "f.db") as server:
        async with AsyncClient(server.url) as client:
            with pytest.raises(StreamNotFound) as caught:
                async for _ in client.follow("nowhere", 0):
                    pass
    assert caught.value.http_status == 404
