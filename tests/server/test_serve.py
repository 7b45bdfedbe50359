"""``eventlog serve``'s pure parts: which hosts count as loopback."""

from __future__ import annotations

from server.serve import is_loopback


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.4")
    assert not is_loopback("example.com")
