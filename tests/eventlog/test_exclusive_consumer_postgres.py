"""A named consumer runs in exactly one of several processes; SIGKILL moves it.

Three processes run the same consumer under one lease
(:func:`eventlog.storage.leases.run_exclusively`). Exactly one consumes; when
it is killed, another takes over within the lease retry time and resumes from
the committed offset, so every event is delivered at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import pytest

from eventlog import EventLog, NewEvent
from tests.support import scaled, wait_until

CHILD = Path(__file__).with_name("consumer_child.py")

pytestmark = pytest.mark.slow


class Child:
    """One consumer process and the lines it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def spawn(cls, url: str) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), url, stdout=asyncio.subprocess.PIPE
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode().strip())

    @property
    def running(self) -> int:
        return sum(1 for line in self.lines if line.startswith("running"))

    @property
    def got(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith("got")]

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self._reader


async def test_named_consumer_runs_in_one_process_and_moves_when_it_is_killed(
    pg_url: str,
) -> None:
    async with EventLog.open(pg_url, retention_interval=0) as log:
        await log.append("orders", {"n": -1}, type="warmup")  # the stream exists
        children = [await Child.spawn(pg_url) for _ in range(3)]
        try:
            await wait_until(lambda: sum(c.running for c in children) >= 1, 30, what="a runner")
            await asyncio.sleep(scaled(1))  # the others keep trying meanwhile
            holders = [c for c in children if c.running]
            assert len(holders) == 1
            first = holders[0]
            await log.append_batch("orders", [NewEvent(type="t", data=i) for i in range(20)])
            await wait_until(lambda: set(range(21)) <= set(first.got), 10, what="first delivery")

            await first.kill()
            await log.append_batch("orders", [NewEvent(type="t", data=i) for i in range(20)])
            survivors = [c for c in children if c is not first]
            await wait_until(lambda: any(c.running for c in survivors), 10, what="the takeover")
            await wait_until(
                lambda: set(range(21, 41)) <= {o for c in survivors for o in c.got},
                10,
                what="delivery after the takeover",
            )
            await asyncio.sleep(scaled(0.5))
            assert sum(c.running for c in survivors) == 1  # still exactly one
            second = next(c for c in survivors if c.running)
            # Resumed from the committed offset: nothing skipped, nothing before it re-run
            # except what the killed process had not committed (at-least-once).
            assert min(second.got) <= 21
            assert set(range(41)) <= set(first.got) | set(second.got)
        finally:
            for child in children:
                await child.kill()
