"""Apprise targets pass the SSRF guard: the host an Apprise URL reaches is checked
like a webhook's, when the target is saved and before each attempt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from consumers.delivery.ssrf import InvalidTarget, UnsafeTarget
from consumers.notify.apprise import apprise_host, check_apprise_url, send_apprise
from tests.consumers.delivery.receiver import Receiver
from tests.serverproc import ServerProcess
from tests.support import scaled

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


async def test_an_apprise_target_on_loopback_is_refused_by_the_api(server: ServerProcess) -> None:
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
            assert (await api.get("/api/notifications")).json()["notifications"] == []
            r = await api.post("/api/streams/events/events", json={"type": "ping"})
            assert r.status_code == 201
    finally:
        await receiver.stop()
    assert receiver.requests == []
