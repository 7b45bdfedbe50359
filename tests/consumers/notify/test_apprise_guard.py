"""Apprise targets pass the SSRF guard: the host an Apprise URL reaches is checked
like a webhook's, when the target is saved and before each attempt; a string
Apprise reads as several URLs is refused, so only the checked one is ever notified."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from consumers.delivery import ssrf
from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.model import Endpoint
from consumers.delivery.ssrf import InvalidTarget, UnsafeTarget
from consumers.delivery.stores import ledger_for
from consumers.notify import NotifySpec, notify_setup
from consumers.notify import apprise as apprise_module
from consumers.notify.apprise import apprise_host, check_apprise_url, send_apprise
from consumers.webhook import SpecError, build_endpoint
from eventlog import EventLog
from tests.consumers.delivery.receiver import Receiver
from tests.consumers.notify.conftest import deliveries
from tests.serverproc import ServerProcess
from tests.support import scaled, wait_until

BODY = msgspec.json.encode({"title": "t", "body": "b"})


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("json://127.0.0.1:8080/x", ("127.0.0.1", 8080)),
        ("jsons://hooks.example.com/x", ("hooks.example.com", 443)),
        ("form://[::1]:99/x", ("::1", 99)),
        ("xml://10.0.0.7/x", ("10.0.0.7", 80)),
        ("ntfys://ntfy.example.com/topic", ("ntfy.example.com", 443)),
        ("ntfy://topic", ("ntfy.sh", 443)),
        ("tgram://123456789:abcdefg_hijklmnop/12345", ("api.telegram.org", 443)),
        ("mailto://user:pw@smtp.example.com", None),
        ("syslog://", None),
    ],
)
def test_the_host_an_apprise_url_reaches(url: str, target: tuple[str, int] | None) -> None:
    assert apprise_host(url) == target


@pytest.mark.parametrize(
    "url",
    ["json://127.0.0.1:9/x", "form://[::1]:9/x", "xmls://169.254.169.254/x", "jsons://10.1.2.3/"],
)
async def test_apprise_urls_naming_private_hosts_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget, match="private targets are not allowed"):
        await check_apprise_url(url, allow_private=False)
    await check_apprise_url(url, allow_private=True)


async def test_apprise_schemes_the_guard_cannot_check_need_private_targets_allowed() -> None:
    with pytest.raises(UnsafeTarget, match="mailto://"):
        await check_apprise_url("mailto://user:pw@smtp.example.com", allow_private=False)
    await check_apprise_url("mailto://user:pw@smtp.example.com", allow_private=True)
    with pytest.raises(InvalidTarget):
        await check_apprise_url("nosuchservice://x", allow_private=True)


async def test_an_apprise_attempt_to_a_private_host_is_refused_before_apprise_connects() -> None:
    receiver = await Receiver().start()
    try:
        url = f"json://127.0.0.1:{receiver.port}/x"
        refused = await send_apprise(url, BODY, scaled(5), allow_private=False)
        assert (refused.status, refused.error) == (None, "unsafe_target")
        assert receiver.requests == []
        allowed = await send_apprise(url, BODY, scaled(5), allow_private=True)
        assert allowed.status == 200
        assert len(receiver.requests) == 1
    finally:
        await receiver.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A server with the default ``allow_private_targets = false``."""
    proc = await asyncio.to_thread(ServerProcess.start, db=tmp_path / "events.db")
    yield proc
    await asyncio.to_thread(proc.close)


async def test_an_apprise_target_reaching_loopback_is_refused_by_the_api(
    server: ServerProcess,
) -> None:
    receiver = await Receiver().start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=scaled(10)) as api:
            url = f"json://127.0.0.1:{receiver.port}/x"
            r = await api.post("/api/notifications", json={"kind": "apprise", "url": url})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "unsafe_target"
            assert str(receiver.port) not in r.text  # the Apprise URL is never repeated
            r = await api.post("/api/notifications", json={"kind": "apprise", "url": "syslog://"})
            assert (r.status_code, r.json()["error"]["code"]) == (422, "unsafe_target")
            # Behind a URL the guard passes (1.1.1.1 is global, checked without a lookup,
            # and nothing connects to it), a second one Apprise would also notify.
            url = f"json://1.1.1.1/x, json://127.0.0.1:{receiver.port}/y"
            r = await api.post("/api/notifications", json={"kind": "apprise", "url": url})
            assert r.status_code == 422, r.text
            message = "options.url: one Apprise URL per target (Apprise reads several here)"
            assert r.json() == {
                "error": {"code": "invalid_endpoint", "message": message, "path": "$.options.url"}
            }
            assert (await api.get("/api/notifications")).json()["notifications"] == []
            r = await api.post("/api/streams/events/events", json={"type": "ping"})
            assert r.status_code == 201
    finally:
        await receiver.stop()
    assert receiver.requests == []


SEVERAL = [
    "json://hooks.example.com/x, json://10.0.0.1/y",
    "json://hooks.example.com/x json://10.0.0.1/y",
    "json://hooks.example.com/x\njson://10.0.0.1/y",
    "json://hooks.example.com/x,nosuchservice://10.0.0.1/y",
]


def build(**spec: Any) -> Endpoint:
    return build_endpoint(msgspec.convert(spec, NotifySpec), now=time.time(), head=0)


@pytest.mark.parametrize("url", SEVERAL)
async def test_a_string_apprise_reads_as_several_urls_is_refused_by_every_check(url: str) -> None:
    with pytest.raises(SpecError) as info:  # HTTP API, config file, PATCH: all build the spec
        build(kind="apprise", url=url)
    assert info.value.path == "options.url"
    assert str(info.value) == "options.url: one Apprise URL per target (Apprise reads several here)"
    with pytest.raises(InvalidTarget, match="one Apprise URL per target"):
        apprise_host(url)
    with pytest.raises(InvalidTarget, match="one Apprise URL per target"):
        await check_apprise_url(url, allow_private=True)  # even where private targets are allowed


async def test_the_engine_refuses_an_apprise_endpoint_with_several_urls(
    engine: DeliveryEngine,
) -> None:
    ep = build(kind="apprise", url="json://hooks.example.com/x", id="a")
    several = msgspec.structs.replace(ep, options={**ep.options, "url": SEVERAL[0]})
    with pytest.raises(SpecError, match=r"options\.url: one Apprise URL per target"):
        await engine.put_endpoint(several)  # the Python API
    assert await engine.store.get_endpoint("a") is None


@pytest.fixture
def public_localhost(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The guard's DNS verdict in these tests: the name ``localhost`` counts as a public
    host (as a name resolving to global addresses would), every other host is checked
    for real (so ``127.0.0.1`` is refused). Returns the ``(host, port)`` pairs checked."""
    checked: list[tuple[str, int]] = []

    async def check_resolves(host: str, port: int) -> None:
        checked.append((host, port))
        if host != "localhost":
            await ssrf.check_resolves(host, port)

    monkeypatch.setattr(apprise_module, "check_resolves", check_resolves)
    return checked


async def test_send_apprise_notifies_only_the_url_the_guard_checked(
    public_localhost: list[tuple[str, int]],
) -> None:
    public, private = await Receiver().start(), await Receiver().start()
    try:
        two = f"json://localhost:{public.port}/x, json://127.0.0.1:{private.port}/y"
        refused = await send_apprise(two, BODY, scaled(5), allow_private=False)
        assert (refused.status, refused.error) == (None, "invalid")
        assert "one Apprise URL per target" in refused.message
        assert str(private.port) not in refused.message
        one = await send_apprise(two.split(",")[0], BODY, scaled(5), allow_private=False)
        assert one.status == 200  # the fake verdict works: a checked host is reached
    finally:
        await public.stop()
        await private.stop()
    assert public_localhost == [("localhost", public.port)]
    assert (len(public.requests), private.requests) == (1, [])


async def test_a_stored_apprise_target_with_several_urls_reaches_no_unchecked_address(
    log: EventLog, public_localhost: list[tuple[str, int]]
) -> None:
    public, private = await Receiver().start(), await Receiver().start()
    setup = notify_setup(allow_private=False)
    engine = DeliveryEngine(
        log, ledger_for(log), kinds=setup.kinds, sender=setup.sender, allow_private=False
    )
    await engine.start()
    try:
        # Stored as a version without the one-URL rule did: its guard saw only the first host.
        ep = build(kind="apprise", url=f"json://localhost:{public.port}/x", max_attempts=1)
        two = f"json://localhost:{public.port}/x, json://127.0.0.1:{private.port}/y"
        await engine.store.put_endpoint(
            msgspec.structs.replace(ep, options={**ep.options, "url": two})
        )
        await engine.reload(ep.id)
        # Disabled before any attempt, saying why (test_stored_apprise.py has the rest).
        stored = await engine.store.get_endpoint(ep.id)
        assert stored is not None
        assert not stored.enabled
        assert "this target holds 2 Apprise URLs" in (stored.disabled_reason or "")
        await log.append("events", {}, type="ping")
        await asyncio.sleep(scaled(0.3))
        assert await deliveries(engine, ep.id) == []
        assert (public.requests, private.requests) == ([], [])
        await engine.put_endpoint(ep)  # the same target with its one checked URL delivers
        await public.wait_for(1, scaled(20))
        await wait_until(lambda: _finished(engine, ep.id), what="the delivery")
    finally:
        await engine.close()
        await public.stop()
        await private.stop()
    assert private.requests == []


async def _finished(engine: DeliveryEngine, endpoint_id: str) -> bool:
    rows = await deliveries(engine, endpoint_id)
    return bool(rows) and all(row.status in ("delivered", "failed") for row in rows)
