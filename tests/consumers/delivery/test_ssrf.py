"""The SSRF guard: address classes, URL shapes, and refusal at connect time."""

from __future__ import annotations

import pytest

from consumers.delivery.sender import Sender
from consumers.delivery.ssrf import (
    GuardedResolver,
    InvalidTarget,
    UnsafeTarget,
    check_url,
    forbidden_reason,
    validate_url,
)
from tests.consumers.delivery.receiver import Receiver
from tests.support import scaled

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata, link-local
    "100.64.0.1",  # CGNAT
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.2.10",  # documentation (TEST-NET-1)
    "198.51.100.1",
    "203.0.113.1",
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "2001:db8::1",  # documentation
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_global_addresses_are_refused(address: str) -> None:
    assert forbidden_reason(address) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(address) is None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://x/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("example.com/hook", "scheme"),
        ("http:///nohost", "no host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com:99999/", "malformed"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\r\nX: y", "control"),
        ("http://[::1/", "malformed"),
        ("http://example.com/" + "a" * 3000, "longer"),
        ("", "non-empty"),
    ],
)
def test_malformed_urls_are_refused_with_a_clear_reason(url: str, fragment: str) -> None:
    with pytest.raises(InvalidTarget, match=fragment):
        validate_url(url)


async def test_configuration_check_refuses_private_targets_unless_allowed() -> None:
    with pytest.raises(UnsafeTarget, match="loopback"):
        await check_url("http://127.0.0.1:9/hook", allow_private=False)
    with pytest.raises(UnsafeTarget, match="loopback"):
        await check_url("http://localhost:9/hook", allow_private=False)
    with pytest.raises(UnsafeTarget, match="private"):
        await check_url("http://[::ffff:10.0.0.1]/hook", allow_private=False)
    await check_url("http://127.0.0.1:9/hook", allow_private=True)


async def test_refusal_names_the_setting_that_allows_private_targets() -> None:
    with pytest.raises(UnsafeTarget) as refused:
        await check_url("http://127.0.0.1:9000/hook", allow_private=False)
    assert str(refused.value) == (
        "target refused: 127.0.0.1 is a loopback address (private targets are not allowed; "
        "allow_private_targets = true under [webhooks] in the config file allows them)"
    )


async def test_resolver_hands_aiohttp_only_the_addresses_it_checked() -> None:
    allowed = GuardedResolver(allow_private=True)
    results = await allowed.resolve("localhost", 80)
    assert results
    assert all(r["host"] in ("127.0.0.1", "::1") for r in results)
    with pytest.raises(UnsafeTarget):
        await GuardedResolver(allow_private=False).resolve("localhost", 80)


async def test_sender_refuses_private_targets_at_connect_time() -> None:
    receiver = await Receiver().start()
    sender = Sender(allow_private=False)
    try:
        for url in (receiver.url(), f"http://localhost:{receiver.port}/hook"):
            result = await sender.post(url, b"{}", {}, scaled(5))
            assert result.status is None
            assert result.error == "unsafe_target"
        assert receiver.requests == []
        allowed = Sender(allow_private=True)
        try:
            ok = await allowed.post(f"http://localhost:{receiver.port}/hook", b"{}", {}, scaled(5))
            assert ok.status == 204
        finally:
            await allowed.close()
    finally:
        await sender.close()
        await receiver.stop()
