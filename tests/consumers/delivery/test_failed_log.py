"""A delivery that fails for good is said in the log, once, and a flood of them is counted."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.failed_log import FailedLog
from consumers.delivery.model import Attempt, Delivery, Finished
from consumers.delivery.retry import RetryPolicy
from consumers.delivery.stores import ledger_for
from consumers.webhook import WEBHOOK, EndpointSpec, build_endpoint
from eventlog import EventLog
from tests.consumers.delivery.conftest import add_endpoint, all_deliveries
from tests.consumers.delivery.receiver import Received, Receiver
from tests.support import scaled, wait_until


async def _bad_request(request: web.Request, received: Received) -> web.StreamResponse:
    return web.Response(status=400, text="no such order")


async def _server_error(request: web.Request, received: Received) -> web.StreamResponse:
    return web.Response(status=500)


@pytest.fixture
async def quick_engine(log: EventLog) -> AsyncIterator[DeliveryEngine]:
    """An engine that says failed deliveries at most once per endpoint per second."""
    engine = DeliveryEngine(
        log, ledger_for(log), kinds={"webhook": WEBHOOK}, allow_private=True, log_failed_every=1.0
    )
    await engine.start()
    yield engine
    await engine.close()


def _failed_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if " failed " in r.getMessage() and "endpoint" in r.getMessage()
    ]


async def _all_failed(engine: DeliveryEngine, endpoint_id: str, count: int) -> bool:
    rows = await all_deliveries(engine, endpoint_id)
    return len(rows) == count and all(d.status == "failed" for d in rows)


async def test_a_delivery_that_runs_out_of_attempts_is_one_warning_naming_what_failed(
    log: EventLog,
    engine: DeliveryEngine,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.behaviour = _server_error
    retry = RetryPolicy(schedule=(0.05, 0.05), jitter=0)
    ep = await add_endpoint(engine, receiver.url("/x?token=s3cret"), retry=retry)
    with caplog.at_level(logging.WARNING, logger="eventlog.delivery"):
        await log.append("events", {"n": 1}, type="order.paid")
        await wait_until(lambda: _all_failed(engine, ep.id, 1), what="the failed delivery")
        (event,) = await log.read("events", 0, 1)
        (row,) = await all_deliveries(engine, ep.id)
        await wait_until(lambda: _failed_lines(caplog), what="the log line")
    target = f"http://127.0.0.1:{receiver.port}"
    assert [(r.levelname, r.getMessage()) for r in _failed_lines(caplog)] == [
        (
            "WARNING",
            f"delivery {row.id} (event {event.id}) to endpoint {ep.id} ({target}) "
            "failed after 3 attempts: HTTP 500",
        )
    ]
    assert "s3cret" not in caplog.text  # the URL's path and query are not logged


async def test_an_unreachable_receiver_names_the_connection_error(
    log: EventLog, engine: DeliveryEngine, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Receiver()
    await dead.start()
    url = dead.url()
    await dead.stop()  # nothing listens on its port now
    ep = await add_endpoint(engine, url, retry=RetryPolicy(schedule=(), jitter=0))
    with caplog.at_level(logging.WARNING, logger="eventlog.delivery"):
        await log.append("events", {"n": 1}, type="order.paid")
        await wait_until(lambda: _failed_lines(caplog), what="the log line")
    (line,) = _failed_lines(caplog)
    assert f"to endpoint {ep.id} " in line.getMessage()
    assert "failed after 1 attempts: connect:" in line.getMessage()


async def test_a_flood_of_failures_is_one_line_then_one_count_per_period(
    log: EventLog,
    quick_engine: DeliveryEngine,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.behaviour = _bad_request  # final at once: every delivery fails on its first attempt
    ep = await add_endpoint(quick_engine, receiver.url(), ordering="ordered", disable_after=None)
    with caplog.at_level(logging.WARNING, logger="eventlog.delivery"):
        for n in range(40):
            await log.append("events", {"n": n}, type="order.paid")
        await wait_until(lambda: _all_failed(quick_engine, ep.id, 40), timeout=scaled(20))
        rows = await all_deliveries(quick_engine, ep.id)
        await wait_until(lambda: len(_failed_lines(caplog)) >= 2, timeout=scaled(5))
    lines = [r.getMessage() for r in _failed_lines(caplog)]
    assert len(lines) == 2, lines
    first, summary = lines
    assert first.startswith(f"delivery {rows[0].id} ")
    assert first.endswith("failed after 1 attempts: HTTP 400")
    assert summary.startswith(f"39 more deliveries to endpoint {ep.id} (http://127.0.0.1:")
    assert summary.endswith(
        f"the last: delivery {rows[-1].id} (event {rows[-1].event_id}) after 1 attempts: HTTP 400"
    )


def _failure(n: int) -> tuple[Delivery, Finished]:
    delivery = Delivery(
        id=f"msg_{n}", seq=n, endpoint_id="e", stream="events", offset=n,
        event_id=f"ev-{n}", event_type="t", key=None, status="failed",
    )  # fmt: skip
    attempt = Attempt(
        delivery_id=delivery.id, number=1, started=0.0, duration=0.0, status=400,
        error=None, verdict="failed",
    )  # fmt: skip
    finished = Finished(
        delivery_id=delivery.id, endpoint_id="e", attempt=attempt, status="failed",
        attempts=1, rate_limited=0, next_attempt_at=None, now=0.0,
    )  # fmt: skip
    return delivery, finished


async def test_a_count_whose_timer_is_late_is_said_before_the_next_failure_and_at_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    said = FailedLog(every=10.0, clock=lambda: now[0])
    ep = build_endpoint(EndpointSpec(url="http://127.0.0.1:9/x?t=1", id="e"), now=0.0, head=0)
    with caplog.at_level(logging.WARNING, logger="eventlog.delivery"):
        for n, at in enumerate([0.0, 1.0, 2.0, 11.0]):  # the timer (a loop's 9 s) is not due
            now[0] = at
            said.failed(ep, *_failure(n))
        now[0] = 12.0
        said.close()
    assert [r.getMessage() for r in caplog.records] == [
        "delivery msg_0 (event ev-0) to endpoint e (http://127.0.0.1:9) failed after 1 attempts: "
        "HTTP 400",
        "2 more deliveries to endpoint e (http://127.0.0.1:9) failed in the last 11 s; "
        "the last: delivery msg_2 (event ev-2) after 1 attempts: HTTP 400",
        "1 more deliveries to endpoint e (http://127.0.0.1:9) failed in the last 1 s; "
        "the last: delivery msg_3 (event ev-3) after 1 attempts: HTTP 400",
    ]
