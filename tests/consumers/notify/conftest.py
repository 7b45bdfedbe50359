"""Fixtures of the notification tests: a real SQLite log, the delivery engine with the
notification kinds and pacing sender, and local fake Discord and Slack."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.model import Delivery, Endpoint
from consumers.delivery.stores import ledger_for
from consumers.notify import NotifySpec, notify_setup
from consumers.webhook import WEBHOOK, build_endpoint
from eventlog import EventLog
from tests.consumers.delivery.conftest import log as log  # the webhook tests' real SQLite log
from tests.consumers.notify.fakes import FakeDiscord, FakeSlack


@pytest.fixture
async def engine(log: EventLog) -> AsyncIterator[DeliveryEngine]:
    """The delivery engine with webhook and notification kinds, allowed to reach loopback."""
    setup = notify_setup(allow_private=True)
    engine = DeliveryEngine(
        log,
        ledger_for(log),
        kinds={"webhook": WEBHOOK, **setup.kinds},
        sender=setup.sender,
        allow_private=True,
    )
    await engine.start()
    yield engine
    await engine.close()


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    """A fake Discord webhook: 5 requests per 0.1 s bucket, with rate-limit headers."""
    fake = await FakeDiscord(limit=5, window=0.1).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack incoming webhook: bursts of 40, 40 messages per second."""
    fake = await FakeSlack(burst=40, rate=40).start()
    yield fake
    await fake.stop()


async def add_target(engine: DeliveryEngine, **spec: Any) -> Endpoint:
    """Build, store and start a notification target (short retries unless told otherwise)."""
    spec.setdefault("retry", "short")
    endpoint = build_endpoint(msgspec.convert(spec, NotifySpec), now=time.time(), head=0)
    await engine.put_endpoint(endpoint)
    return endpoint


async def deliveries(engine: DeliveryEngine, endpoint_id: str) -> list[Delivery]:
    """Every delivery of an endpoint, in ledger order."""
    return await engine.store.deliveries(endpoint_id, limit=100_000)
