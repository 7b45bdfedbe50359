"""The feeder alone, on a real SQLite log and ledger: its backlog pause.

With several server processes, deliveries this process enqueued are often
finished by another process, which does not tell this one: a paused feeder
must notice from the ledger, not wait for a local wake-up that never comes.
"""

from __future__ import annotations

import asyncio
import time

from consumers.delivery.feeder import Feeder
from consumers.delivery.ledger import act
from consumers.delivery.machine import DeliveryMachine
from consumers.delivery.recorder import Recorder
from consumers.delivery.stores import ledger_for
from consumers.webhook import EndpointSpec, build_endpoint
from eventlog import EventLog, NewEvent
from tests.support import wait_until


async def test_a_paused_feeder_rereads_the_backlog_others_finished(log: EventLog) -> None:
    store = ledger_for(log)
    await store.open()
    ep = build_endpoint(EndpointSpec(url="http://127.0.0.1:9/hook"), now=time.time(), head=0)
    await store.put_endpoint(ep)
    recorder = Recorder(store)
    recorder.start()
    feeder = Feeder(log, store, recorder, page=10, clock=time.time, backlog_recheck=0.05)
    machine = DeliveryMachine(ep, max_backlog=10)
    progress = asyncio.Event()
    await log.append_batch("events", [NewEvent(type="t", data=i) for i in range(30)])

    async def pending() -> list[str]:
        rows = await store.deliveries(ep.id, status="pending", limit=1000)
        return [d.id for d in rows]

    async def pending_is(n: int) -> bool:
        return len(await pending()) == n

    task = asyncio.create_task(feeder.run(ep, machine, progress, lambda: None))
    try:
        for page in range(3):
            await wait_until(lambda: pending_is(10))
            await asyncio.sleep(0.2)  # paused: four re-reads later, still one page
            assert len(await pending()) == 10
            assert len(await store.deliveries(ep.id, limit=1000)) == 10 * (page + 1)
            # "Another process" finishes them; this process's progress event is never set.
            for delivery_id in await pending():
                await act(store, ep.id, delivery_id, "skip", time.time())
            assert not progress.is_set()
        assert await pending_is(0)
        offsets = [d.offset for d in await store.deliveries(ep.id, limit=1000)]
        assert offsets == list(range(30))  # each event once, in order
        assert await log.storage.get_offset(ep.consumer_name, "events") == 30
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await recorder.close()
