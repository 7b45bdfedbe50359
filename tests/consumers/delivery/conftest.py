"""Fixtures of the webhook tests: a real SQLite log, a delivery engine, a loopback receiver."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.model import Delivery, DeliveryStatus, Endpoint
from consumers.delivery.stores import ledger_for
from consumers.webhook import WEBHOOK, EndpointSpec, build_endpoint
from eventlog import EventLog


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    """An open log on a real SQLite file."""
    async with EventLog.open(tmp_path / "events.db", recheck_interval=0.2) as log:
        yield log


@pytest.fixture
async def engine(log: EventLog) -> AsyncIterator[DeliveryEngine]:
    """A started engine that may reach loopback receivers."""
    engine = DeliveryEngine(log, ledger_for(log), kinds={"webhook": WEBHOOK}, allow_private=True)
    await engine.start()
    yield engine
    await engine.close()


async def add_endpoint(engine: DeliveryEngine, url: str, **spec: object) -> Endpoint:
    """Build, store and start an endpoint (short retries unless told otherwise)."""
    spec.setdefault("retry", "short")
    ep = build_endpoint(EndpointSpec(url=url, **spec), now=time.time(), head=0)  # type: ignore[arg-type]
    await engine.put_endpoint(ep)
    return ep


async def statuses(engine: DeliveryEngine, endpoint_id: str) -> list[DeliveryStatus]:
    """Every delivery's status, in ledger order."""
    return [d.status for d in await all_deliveries(engine, endpoint_id)]


async def all_deliveries(engine: DeliveryEngine, endpoint_id: str) -> list[Delivery]:
    """Every delivery of an endpoint."""
    return await engine.store.deliveries(endpoint_id, limit=100_000)
