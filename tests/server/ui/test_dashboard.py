"""The dashboard at ``/ui`` in a real headless Chromium against a real ``eventlog serve``.

Skipped only when no Chromium binary exists (``apt-get install chromium``).
Set ``EVENTLOG_UI_SCREENSHOTS=docs/images`` to refresh the documentation's
screenshots (otherwise they go to a temporary directory).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from server.auth import hash_key
from tests.server.ui.chromium import Browser, Page, chromium_binary
from tests.serverproc import ServerProcess
from tests.support import scaled

pytestmark = pytest.mark.skipif(
    chromium_binary() is None, reason="no chromium binary (apt-get install chromium)"
)

ADMIN_KEY = "el_dashboard_admin_key"
READ_KEY = "el_dashboard_read_key"
TENANT_KEY = "el_dashboard_tenant_key"  # an admin of tenant "zeta" only
PAGES = ("streams", "consumers", "deliveries", "schedules", "tail")


class Receiver:
    """A local webhook receiver that answers 500 and counts requests."""

    def __init__(self) -> None:
        received: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"receiver down")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.received = received
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    keys = [
        {"name": "ops", "hash": hash_key(ADMIN_KEY), "scopes": ["admin"]},
        {"name": "viewer", "hash": hash_key(READ_KEY), "scopes": ["read:*"]},
        {"name": "zeta-ops", "hash": hash_key(TENANT_KEY), "scopes": ["admin"], "tenant": "zeta"},
    ]
    env = {
        "EVENTLOG_API_KEYS": json.dumps(keys),
        "EVENTLOG_WEBHOOKS": '{"allow_private_targets": true}',
    }
    db = tmp_path_factory.mktemp("ui") / "events.db"
    with ServerProcess.start(db, env=env) as proc:
        with httpx.Client(base_url=proc.url, headers=_auth(ADMIN_KEY)) as http:
            for n in range(3):
                event = {"type": "order.created", "data": {"order": n}}
                assert http.post("/api/streams/orders/events", json=event).status_code == 201
            position = {"stream": "orders", "position": 1}
            assert http.put("/api/consumers/billing", json=position).status_code == 200
            for n, delay in ((1, 3600), (2, 7200)):
                later = {"type": "reminder.due", "id": f"reminder-{n}", "key": "order-0"}
                reply = http.post(f"/api/streams/orders/events?delay={delay}", json=later)
                assert reply.status_code == 202
        yield proc


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser.start() as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("EVENTLOG_UI_SCREENSHOTS")
    return Path(folder) if folder else tmp_path_factory.mktemp("shots")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _open(browser: Browser, server: ServerProcess, key: str, width: int = 1100) -> Page:
    """A page on the dashboard with ``key`` in its session, showing the streams."""
    page = browser.new_page(width, 800)
    # As if typed in earlier in this tab: in session storage before the page's script runs.
    page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        source=f"sessionStorage.setItem('eventlog-key', {json.dumps(key)})",
    )
    page.goto(f"{server.url}/ui/#streams")
    page.wait_for("document.querySelector('#streams tbody td')?.textContent === 'orders'")
    return page


def _show(page: Page, name: str, ready: str) -> None:
    page.evaluate(f"location.hash = '#{name}'")
    page.wait_for(ready)


def _tailing(browser: Browser, server: ServerProcess, stream: str, types: str = "") -> Page:
    """A page whose live-tail form was sent for ``stream`` (and ``types``)."""
    page = _open(browser, server, ADMIN_KEY)
    _show(page, "tail", READY["tail"])
    page.evaluate(f"document.querySelector('#tail-stream').value = {json.dumps(stream)}")
    page.evaluate(f"document.querySelector('#tail-types').value = {json.dumps(types)}")
    page.evaluate("document.querySelector('#tail-form button[type=submit]').click()")
    return page


READY = {
    "streams": "document.querySelector('#streams tbody td')?.textContent === 'orders'",
    "consumers": "document.querySelector('#consumers tbody td')?.textContent === 'billing'",
    "deliveries": "document.querySelector('#endpoints .card, #endpoints p') !== null",
    "schedules": "document.querySelector('#schedules tbody td') !== null",
    "tail": "document.querySelector('#tail-stream option') !== null",
}


def test_dashboard_loads_every_page_without_console_errors(
    browser: Browser, server: ServerProcess, shots: Path
) -> None:
    moved = httpx.get(f"{server.url}/ui", timeout=scaled(10))
    assert moved.is_redirect
    assert moved.headers["location"].endswith("/ui/")
    page = _open(browser, server, ADMIN_KEY)
    assert page.evaluate("document.querySelector('#who').textContent") == "ops: admin"
    for name in PAGES:
        _show(page, name, READY[name])
        assert page.evaluate(f"document.querySelector('#page-{name}').hidden") is False
    _show(page, "consumers", READY["consumers"])
    row = page.evaluate(
        "[...document.querySelectorAll('#consumers tbody td')].map(td => td.textContent)"
    )
    assert row[:4] == ["billing", "orders", "1", "2"]  # offset 1 of head 3: lag 2
    time.sleep(0.5)  # a refresh or two
    assert page.errors == []
    # The page comes from the package, not from elsewhere: same origin for everything.
    sources = page.evaluate(
        "[...document.querySelectorAll('script[src], link[href]')].map(e => e.src || e.href)"
    )
    assert all(s.startswith((server.url, "data:")) for s in sources)


def test_live_tail_shows_an_event_appended_over_http_within_a_second(
    browser: Browser, server: ServerProcess, shots: Path
) -> None:
    page = _tailing(browser, server, "orders")
    page.wait_for("document.querySelector('#tail-state').textContent.startsWith('following')")
    with httpx.Client(base_url=server.url, headers=_auth(ADMIN_KEY)) as http:
        started = time.monotonic()
        reply = http.post("/api/streams/orders/events", json={"type": "order.paid", "data": {}})
        offset = reply.json()["offsets"][0]
        page.wait_for(f"document.querySelector('#tail-events li[data-offset=\"{offset}\"]')")
        elapsed = time.monotonic() - started
    assert elapsed < scaled(1.0), f"shown after {elapsed:.2f} s"
    text = page.evaluate(
        f"document.querySelector('#tail-events li[data-offset=\"{offset}\"]').textContent"
    )
    assert "order.paid" in text
    # Pause: events that arrive meanwhile are not shown.
    page.evaluate("document.querySelector('#tail-pause').click()")
    with httpx.Client(base_url=server.url, headers=_auth(ADMIN_KEY)) as http:
        hidden = http.post("/api/streams/orders/events", json={"type": "order.paid", "data": {}})
    time.sleep(0.5)
    shown = page.evaluate("document.querySelectorAll('#tail-events li').length")
    assert shown == 1, hidden.json()
    page.evaluate("document.querySelector('#tail-pause').click()")
    page.screenshot(shots / "dashboard-tail.png")
    assert page.errors == []


def test_failing_webhook_shows_its_failed_attempt_and_retry_resends_it(
    browser: Browser, server: ServerProcess, receiver: Receiver, shots: Path
) -> None:
    with httpx.Client(base_url=server.url, headers=_auth(ADMIN_KEY)) as http:
        hook = {
            "id": "shop",
            "url": receiver.url,
            "stream": "payments",
            "retry": {"schedule": [], "max_attempts": 1},
        }
        reply = http.post("/api/webhooks", json=hook)
        assert reply.status_code == 201, reply.text
        event = {"type": "payment.captured", "data": {"amount": 42}}
        assert http.post("/api/streams/payments/events", json=event).status_code == 201
    page = _open(browser, server, ADMIN_KEY)
    _show(page, "deliveries", "document.querySelector('[data-endpoint=shop] li')")
    failed = "document.querySelector('[data-endpoint=shop] li')?.textContent"
    page.wait_for(f"({failed} || '').includes('failed')")
    text = page.evaluate(failed)
    assert "attempts 1" in text
    assert "HTTP 500" in text
    assert len(receiver.received) == 1
    page.screenshot(shots / "dashboard-deliveries.png", full_page=True)
    page.evaluate("document.querySelector('[data-endpoint=shop] [data-retry]').click()")
    deadline = time.monotonic() + scaled(10)
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.received) == 2  # the retry button re-sent it
    page.wait_for(f"({failed} || '').includes('attempts 2')")
    assert page.errors == []


def test_a_read_only_key_sees_no_buttons(
    browser: Browser, server: ServerProcess, receiver: Receiver
) -> None:
    with httpx.Client(base_url=server.url, headers=_auth(ADMIN_KEY)) as http:
        # An endpoint of its own, whose card has a button for an admin (nothing is sent).
        hook = {"id": "quiet", "url": receiver.url, "stream": "nothing-here"}
        reply = http.post("/api/webhooks", json=hook)
        assert reply.status_code == 201, reply.text
    page = _open(browser, server, READ_KEY)
    assert page.evaluate("document.querySelector('#who').textContent") == "viewer: read:*"
    for name in PAGES:
        _show(page, name, READY[name])
        assert page.evaluate("document.querySelectorAll('button.action').length") == 0
    text = page.evaluate("document.querySelector('#endpoints').textContent")
    assert "need an admin key" in text
    # The same page with the admin key has them (so the check above can fail).
    admin = _open(browser, server, ADMIN_KEY)
    _show(admin, "deliveries", "document.querySelector('[data-endpoint=quiet] button.action')")


def test_a_390_px_wide_screen_has_no_horizontal_scroll(
    browser: Browser, server: ServerProcess, shots: Path
) -> None:
    page = _open(browser, server, ADMIN_KEY, width=390)
    assert page.evaluate("window.innerWidth") == 390
    for name in PAGES:
        _show(page, name, READY[name])
        width = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width[0] <= width[1], f"{name}: content {width[0]} px wide in {width[1]} px"
        page.screenshot(shots / f"dashboard-{name}-phone.png")
    assert page.errors == []


def test_screenshots_of_each_page(browser: Browser, server: ServerProcess, shots: Path) -> None:
    page = _open(browser, server, ADMIN_KEY)
    with httpx.Client(base_url=server.url, headers=_auth(ADMIN_KEY)) as http:
        for burst in (5, 20, 10, 30):  # appends between refreshes draw the rate sparkline
            events = [{"type": "order.created", "data": {"n": n}} for n in range(burst)]
            http.post("/api/streams/orders/events", json=events)
            time.sleep(0.2)
            page.evaluate("refresh()")  # what the page does every 2 s, now
    for name in ("streams", "consumers"):
        _show(page, name, READY[name])
        page.screenshot(shots / f"dashboard-{name}.png")
        assert (shots / f"dashboard-{name}.png").stat().st_size > 1000


def test_live_tail_type_filter_shows_only_matching_events(
    browser: Browser, server: ServerProcess
) -> None:
    page = _tailing(browser, server, "orders", types="order.refund*")
    page.wait_for("document.querySelector('#tail-state').textContent.includes('order.refund*')")
    with httpx.Client(base_url=server.url, headers=_auth(ADMIN_KEY)) as http:
        events = [{"type": "order.paid", "data": {}}, {"type": "order.refunded", "data": {}}]
        offsets = http.post("/api/streams/orders/events", json=events).json()["offsets"]
    page.wait_for(f"document.querySelector('#tail-events li[data-offset=\"{offsets[1]}\"]')")
    shown = page.evaluate(
        "[...document.querySelectorAll('#tail-events li')].map(li => li.textContent)"
    )
    assert len(shown) == 1
    assert "order.refunded" in shown[0]
    assert page.errors == []


def test_scheduled_events_are_listed_and_the_cancel_button_cancels_one(
    browser: Browser, server: ServerProcess, shots: Path
) -> None:
    page = _open(browser, server, ADMIN_KEY)
    _show(page, "schedules", "document.querySelector('[data-schedule=\"reminder-2\"]')")
    ids = page.evaluate(
        "[...document.querySelectorAll('#schedules tbody tr')].map(r => r.dataset.schedule)"
    )
    assert ids[:2] == ["reminder-1", "reminder-2"]  # in due order
    row = page.evaluate("document.querySelector('[data-schedule=\"reminder-1\"]').textContent")
    assert "orders" in row
    assert "reminder.due" in row
    page.screenshot(shots / "dashboard-schedules.png")
    page.evaluate("document.querySelector('[data-cancel=\"reminder-1\"]').click()")
    page.wait_for("document.querySelector('[data-schedule=\"reminder-1\"]') === null")
    with httpx.Client(base_url=server.url, headers=_auth(ADMIN_KEY)) as http:
        assert http.get("/api/schedules/orders/reminder-1").status_code == 404  # cancelled
        assert http.get("/api/schedules/orders/reminder-2").status_code == 200
    assert page.errors == []


def test_a_tenant_key_sees_only_its_tenant_in_the_dashboard(
    browser: Browser, server: ServerProcess
) -> None:
    with httpx.Client(base_url=server.url, headers=_auth(TENANT_KEY)) as http:
        reply = http.post("/api/streams/orders/events", json={"type": "zeta.created"})
        assert reply.json()["offsets"] == [0]  # its own "orders", beside the others'
        later = {"type": "zeta.reminder", "id": "zeta-1"}
        assert http.post("/api/streams/orders/events?delay=3600", json=later).status_code == 202
    page = _open(browser, server, TENANT_KEY)
    assert page.evaluate("document.querySelector('#who').textContent") == (
        "zeta-ops: admin (tenant zeta)"
    )
    cells = (
        "[...document.querySelectorAll('#streams tbody tr')]"
        ".map(r => r.cells[0].textContent + ' ' + r.cells[2].textContent)"
    )
    page.wait_for(f"{cells}.join() === 'orders 1'")
    _show(page, "consumers", "document.querySelector('#consumers tbody td.muted') !== null")
    assert page.evaluate("document.querySelector('#consumers tbody').textContent") == (
        "no consumers yet"
    )
    _show(page, "deliveries", READY["deliveries"])
    assert page.evaluate("document.querySelector('#endpoints').textContent") == "no endpoints yet"
    _show(page, "schedules", "document.querySelector('[data-schedule=\"zeta-1\"]')")
    ids = page.evaluate(
        "[...document.querySelectorAll('#schedules tbody tr')].map(r => r.dataset.schedule)"
    )
    assert ids == ["zeta-1"]
    _show(page, "tail", READY["tail"])
    options = page.evaluate(
        "[...document.querySelectorAll('#tail-stream option')].map(o => o.value)"
    )
    assert options == ["orders"]
    # The admin key without a tenant sees zeta's stream by its stored name.
    admin = _open(browser, server, ADMIN_KEY)
    names = "[...document.querySelectorAll('#streams tbody tr')].map(r => r.cells[0].textContent)"
    admin.wait_for(f"{names}.includes('zeta~orders')")
    assert page.errors == []
