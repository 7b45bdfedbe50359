"""ClusterWatch without a database: what it asks of the engine for each change it hears."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from consumers.delivery.cluster import (
    Change,
    ClusterWatch,
    EndpointChanged,
    Pending,
    Resync,
    encode_change,
    parse_change,
    same_work,
)
from consumers.delivery.model import Endpoint
from eventlog.errors import StorageError
from tests.support import wait_until


def test_changes_round_trip_through_their_payloads() -> None:
    for change in (Pending("orders"), EndpointChanged("a-b_c")):
        assert parse_change(encode_change(change)) == change
    assert parse_change(None) == Resync()
    for bad in ("", "pending", "pending:", "other:x", ":x"):
        assert parse_change(bad) is None


class Ledger:
    """Records the listener; its sweep returns what the test says."""

    def __init__(self) -> None:
        self.listener: Callable[[Change], None] | None = None
        self.swept: dict[str, int] = {}
        self.sweeps = 0

    async def sweep(self, now: float) -> dict[str, int]:
        self.sweeps += 1
        swept, self.swept = self.swept, {}
        return swept

    async def watch(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        self.listener = listener

        def stop() -> None:
            self.listener = None

        return stop


class Engine:
    def __init__(self, fail_once: bool = False) -> None:
        self.woken: list[str] = []
        self.reloaded: list[str | None] = []
        self.fail_once = fail_once

    def wake(self, endpoint_id: str) -> None:
        self.woken.append(endpoint_id)

    async def reload(self, endpoint_id: str | None) -> None:
        if self.fail_once:
            self.fail_once = False
            raise StorageError("database away")
        self.reloaded.append(endpoint_id)


async def test_pending_wakes_changes_reload_and_a_resync_reloads_everything() -> None:
    ledger, engine = Ledger(), Engine()
    watch = ClusterWatch(
        ledger, wake=engine.wake, reload=engine.reload, period=0.05, clock=lambda: 0.0
    )
    await watch.start()
    try:
        assert ledger.listener is not None
        ledger.listener(Pending("a"))
        assert engine.woken == ["a"]
        ledger.listener(EndpointChanged("b"))
        ledger.listener(EndpointChanged("b"))  # coalesced with the one before
        await wait_until(lambda: engine.reloaded == ["b"], 2, what="b reloaded")
        ledger.listener(Resync())
        await wait_until(lambda: engine.reloaded == ["b", None], 2, what="all reloaded")
        ledger.swept = {"c": 2}
        await wait_until(lambda: "c" in engine.woken, 2, what="the swept endpoint woken")
    finally:
        await watch.close()
    assert ledger.listener is None
    sweeps = ledger.sweeps
    await asyncio.sleep(0.15)
    assert ledger.sweeps == sweeps  # no sweeping after close


async def test_a_failed_reload_is_tried_again() -> None:
    ledger, engine = Ledger(), Engine(fail_once=True)
    watch = ClusterWatch(
        ledger, wake=engine.wake, reload=engine.reload, period=0.05, clock=lambda: 0.0
    )
    await watch.start()
    try:
        assert ledger.listener is not None
        ledger.listener(EndpointChanged("b"))
        await wait_until(lambda: engine.reloaded == ["b"], 2, what="b reloaded on the retry")
    finally:
        await watch.close()


def test_a_health_note_alone_does_not_restart_the_work() -> None:
    running = Endpoint(id="e", url="http://x.example/hook")
    assert same_work(running, Endpoint(id="e", url="http://x.example/hook", failing_since=5.0))
    assert same_work(running, Endpoint(id="e", url="http://x.example/hook", updated=9.0))
    assert not same_work(running, Endpoint(id="e", url="http://x.example/other"))
    assert not same_work(running, Endpoint(id="e", url="http://x.example/hook", enabled=False))
