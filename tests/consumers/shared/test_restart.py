"""A shared consumer's claim outlives the delivery engine's start-up recovery."""

from __future__ import annotations

import time

from consumers.shared import SharedConsumers, SharedSpec
from eventlog import EventLog


async def test_a_claim_held_across_recovery_can_still_be_acked(any_log: EventLog) -> None:
    await any_log.append("orders", {"i": 0}, type="order.created")
    shared = SharedConsumers(any_log, poll=0.05)
    await shared.open()
    mailer = await shared.declare("mailer", SharedSpec(stream="orders", ack_wait=30))
    (claim,) = await mailer.claim("w1")
    # What a server restart runs before serving: webhook claims go back to pending.
    await mailer.ledger.recover(time.time())
    info = await mailer.info()
    assert (info.pending, info.claimed) == (0, 1)  # still claimed by w1: expires by ack_wait
    assert await mailer.claim("w2", wait=0) == []
    assert await mailer.ack("w1", [claim.id]) == 1
    assert await any_log.committed_offset("mailer", "orders") == 1
