"""The SSRF guard: which targets delivery may reach, checked at configuration and connect time.

A target URL is ``http`` or ``https`` with a host and no credentials, and its
host must resolve only to *global* addresses (:func:`forbidden_reason` says
what is refused; ``docs/webhooks.md`` lists it). At connect time
:class:`GuardedResolver` (the aiohttp connector's resolver) resolves, checks
and hands aiohttp exactly the checked addresses, so there is no second lookup
an attacker could answer differently (DNS rebinding); IP literals never reach
a resolver, so the sender checks them with :func:`check_host`.
``allow_private=True`` turns the address checks off; the URL checks stay.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from eventlog.errors import InvalidInput

__all__ = [
    "ALLOW_HINT",
    "GuardedResolver",
    "InvalidTarget",
    "UnsafeTarget",
    "check_address",
    "check_host",
    "check_resolves",
    "check_url",
    "forbidden_reason",
    "resolve_checked",
    "validate_url",
]

MAX_URL_LENGTH = 2048
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class InvalidTarget(InvalidInput):
    """A target URL is malformed, not http(s), or carries credentials."""

    code = "invalid_url"


class UnsafeTarget(InvalidTarget, OSError):
    """A target resolves to a non-global address (also an :class:`OSError` so
    that aiohttp reports it as a resolution failure of that one request)."""

    code = "unsafe_target"


def validate_url(url: str) -> tuple[str, str, int]:
    """Check a target URL's shape; return ``(scheme, host, port)``.

    Raises:
        InvalidTarget: Not a string, too long, not http/https, no host, a
            user:password part, a bad port, or whitespace/control characters.
    """
    if not isinstance(url, str) or not url:
        raise InvalidTarget("url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidTarget(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidTarget("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget(f"url is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidTarget(f"url scheme must be http or https, not {parts.scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidTarget("url must not carry credentials; use an extra header instead")
    host = parts.hostname
    if not host:
        raise InvalidTarget("url has no host")
    if port == 0:
        raise InvalidTarget("url port must be between 1 and 65535")
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)


def forbidden_reason(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not be a delivery target (loopback, private, link-local,
    CGNAT, multicast, reserved, unspecified, benchmarking, documentation, the
    local-use NAT64 prefix, or an IPv6 address embedding such an IPv4 one:
    IPv4-mapped, 6to4, NAT64, Teredo), or None if it is a global address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return f"{ip} is a scoped (link-local) address"
        if ip in _LOCAL_NAT64:
            return f"{ip} is in the local-use NAT64 prefix"
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = forbidden_reason(inner)
            return None if reason is None else f"{ip} embeds {inner}: {reason}"
    for flag, what in (
        ("is_unspecified", "the unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private or special-purpose address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(ip, flag):
            return f"{ip} is {what}"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


#: How to allow private targets, for the messages that refuse one.
ALLOW_HINT = "allow_private_targets = true under [webhooks] in the config file allows them"


def check_address(address: str, *, allow_private: bool) -> None:
    """Raise :class:`UnsafeTarget` if ``address`` may not be a target."""
    if allow_private:
        return
    reason = forbidden_reason(address)
    if reason is not None:
        raise UnsafeTarget(
            f"target refused: {reason} (private targets are not allowed; {ALLOW_HINT})"
        )


def check_host(host: str, *, allow_private: bool) -> str | None:
    """Check ``host`` if it is an IP literal (a name is checked as it resolves);
    the address if it is one."""
    try:
        literal = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None
    check_address(literal, allow_private=allow_private)
    return literal


async def resolve_checked(
    host: str, port: int, *, allow_private: bool, family: int = socket.AF_UNSPEC
) -> list[tuple[int, str]]:
    """Resolve ``host`` and check every address; return ``(family, address)`` pairs.

    Raises:
        UnsafeTarget: Any address is refused.
        OSError: The name does not resolve (``socket.gaierror``).
    """
    literal = check_host(host, allow_private=allow_private)
    if literal is not None:
        return [(socket.AF_INET6 if ":" in literal else socket.AF_INET, literal)]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host, port, family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    out = list(dict.fromkeys((int(fam), str(sockaddr[0])) for fam, _, _, _, sockaddr in infos))
    for _, address in out:
        check_address(address, allow_private=allow_private)
    if not out:
        raise socket.gaierror(f"{host} has no addresses")
    return out


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses non-global addresses and returns only checked ones."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        pairs = await resolve_checked(host, port, allow_private=self.allow_private, family=family)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=fam,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST,
            )
            for fam, address in pairs
        ]

    async def close(self) -> None:
        """Nothing to release."""


async def check_url(url: str, *, allow_private: bool) -> None:
    """Configuration-time check: the URL's shape and, unless ``allow_private``,
    every address its host resolves to.

    Raises:
        InvalidTarget: Bad URL, or a name that does not resolve.
        UnsafeTarget: A refused address.
    """
    _, host, port = validate_url(url)
    if not allow_private:
        await check_resolves(host, port)


async def check_resolves(host: str, port: int) -> None:
    """Resolve ``host``: every address must be public.

    Raises:
        InvalidTarget: The name does not resolve.
        UnsafeTarget: A refused address.
    """
    try:
        await resolve_checked(host, port, allow_private=False)
    except UnsafeTarget:
        raise
    except OSError as exc:
        raise InvalidTarget(f"cannot resolve {host!r}: {exc}") from exc
