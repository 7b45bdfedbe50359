"""Apprise targets: any Apprise URL (Telegram, Matrix, email, ntfy, …) through the same engine.

Needs the ``apprise`` extra. The endpoint's ``url`` is only ``apprise://<scheme>``;
the Apprise URL, which usually holds a token, is in ``options.url`` and is never
logged. Each attempt notifies in a worker thread within the endpoint's timeout.
Apprise makes its own connections, so the SSRF guard checks the host its URL
reaches (:func:`check_apprise_url`), without DNS pinning, and that plugin alone
notifies: a string Apprise reads as several URLs is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from typing import Any
from urllib.parse import urlsplit

import msgspec

from consumers.delivery.retry import AttemptResult, classify
from consumers.delivery.ssrf import ALLOW_HINT, InvalidTarget, UnsafeTarget, check_resolves
from consumers.notify.template import decode_options, parse
from eventlog.model import Event

__all__ = [
    "DEFAULT_TEMPLATE",
    "HOST_SCHEMES",
    "PREFIX",
    "AppriseOptions",
    "apprise_host",
    "build_message",
    "check_apprise_url",
    "classify",
    "parse_options",
    "public_url",
    "send_apprise",
    "target_url",
    "url_count",
]

#: The engine's request URL for an Apprise target is this prefix + the Apprise URL.
PREFIX = "apprise+"
DEFAULT_TEMPLATE = "{type} in {stream} at offset {offset}\n{data}"
BODY_LIMIT = 32_000

#: Apprise schemes whose URL's host is where Apprise connects (``ntfy://topic``
#: without a host means ntfy.sh).
HOST_SCHEMES = frozenset(
    {"json", "jsons", "xml", "xmls", "form", "forms", "gotify", "gotifys", "ntfy", "ntfys"}
    | {"matrix", "matrixs"}
)


class AppriseOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``options`` of an ``apprise`` target.

    Attributes:
        url: The Apprise URL (``tgram://bottoken/ChatID``, ``ntfys://topic``, …).
        template: The notification body (a template).
        title: The notification title (a template).
    """

    url: str
    template: str = DEFAULT_TEMPLATE
    title: str = "{type}"


def _quiet() -> contextlib.AbstractContextManager[None]:
    """Apprise's lazily loaded plugins may import the stdlib's deprecated ``imghdr``:
    not ours to fix, and not to be turned into errors."""
    return warnings.catch_warnings(action="ignore", category=DeprecationWarning)


def _apprise() -> Any:
    try:
        with _quiet():
            import apprise
    except ImportError as exc:
        raise ValueError(
            "apprise targets need the apprise extra: pip install 'eventlog[apprise]'"
        ) from exc
    return apprise


def parse_options(options: dict[str, Any]) -> AppriseOptions:
    """Decode and check a target's options (``url`` must be one URL Apprise supports).

    Raises:
        ValueError: A bad option; the message never repeats the URL.
    """
    opts = decode_options(options, AppriseOptions, plain=("url",))
    try:
        _one(opts.url)
    except InvalidTarget as exc:
        raise ValueError(f"options.url: {exc}") from exc
    return opts


def _one(url: str) -> Any:
    """An ``apprise.Apprise`` holding the one plugin ``url`` makes, the plugin the guard checks.

    Raises:
        InvalidTarget: Apprise reads no URL it supports, or several (split at commas and spaces).
    """
    with _quiet():
        client = _apprise().Apprise()
        whole = client.add(url)  # False if any URL it read is unsupported
    if whole and len(client) == 1:
        return client
    if len(client):  # it read more than one URL, all or some of them supported
        raise InvalidTarget("one Apprise URL per target (Apprise reads several here)")
    raise InvalidTarget(f"not a URL Apprise supports (scheme {urlsplit(url).scheme!r})")


def url_count(url: str) -> int:
    """How many URLs Apprise reads in ``url`` (it splits at commas and spaces): exact
    when it supports them all (as every several-URL target an older version stored),
    else the supported ones plus one.

    Raises:
        ValueError: The ``apprise`` extra is not installed.
    """
    with _quiet():
        client = _apprise().Apprise()
        whole = client.add(url)
    return len(client) + (not whole)


def apprise_host(url: str) -> tuple[str, int] | None:
    """The ``(host, port)`` an Apprise URL makes Apprise connect to, or None if the
    guard cannot tell (a scheme outside :data:`HOST_SCHEMES` without a fixed API host).

    Raises:
        InvalidTarget: Not one URL Apprise supports.
    """
    return _host(_one(url)[0], urlsplit(url).scheme.lower())


def _host(plugin: Any, scheme: str) -> tuple[str, int] | None:
    secure = bool(getattr(plugin, "secure", False)) or scheme.endswith("s")
    if scheme in HOST_SCHEMES:
        host = str(getattr(plugin, "host", "") or "")
        if not host and scheme.startswith("ntfy"):
            host, secure = "ntfy.sh", True  # ntfy's cloud service
        if not host:
            return None
        port = getattr(plugin, "port", None)
        return host.strip("[]"), int(port) if port else (443 if secure else 80)
    fixed = getattr(type(plugin), "notify_url", None)
    if isinstance(fixed, str) and "{" not in fixed:
        parts = urlsplit(fixed)
        if parts.scheme in ("http", "https") and parts.hostname:
            return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    return None


async def check_apprise_url(url: str, *, allow_private: bool) -> Any:
    """The SSRF guard for an Apprise URL: the host it reaches must resolve only to
    global addresses, unless ``allow_private``. Returns an ``apprise.Apprise``
    holding the one plugin it checked, to notify through.

    Raises:
        InvalidTarget: Not one Apprise URL, or its host does not resolve.
        UnsafeTarget: A refused address, or a scheme the guard cannot check.
    """
    client, scheme = _one(url), urlsplit(url).scheme.lower()
    target = _host(client[0], scheme)
    if allow_private:
        return client
    if target is None:
        raise UnsafeTarget(
            f"the guard cannot tell where Apprise's {scheme}:// targets connect ({ALLOW_HINT})"
        )
    await check_resolves(*target)
    return client


def public_url(apprise_url: str) -> str:
    """What the endpoint's ``url`` shows for an Apprise URL: ``apprise://<scheme>``."""
    return f"apprise://{urlsplit(apprise_url).scheme or 'unknown'}"


def target_url(options: AppriseOptions, url: str) -> str:
    """The engine's request URL: :data:`PREFIX` + the Apprise URL (not the endpoint's ``url``)."""
    return PREFIX + options.url


def build_message(options: AppriseOptions, event: Event, context: dict[str, Any]) -> dict[str, str]:
    """What the Apprise transport reads (as JSON): ``{"title", "body"}``."""
    body = parse(options.template).render(context)[:BODY_LIMIT]
    return {"title": parse(options.title).render(context)[:250], "body": body}


async def send_apprise(
    url: str, body: bytes, timeout: float, *, allow_private: bool = False
) -> AttemptResult:
    """Notify one Apprise URL with the ``{"title", "body"}`` of ``body``; never raises.

    First :func:`check_apprise_url` (``allow_private`` as there): only its checked plugin notifies.
    """
    started = time.monotonic()
    try:
        message = msgspec.json.decode(body)
        client = await check_apprise_url(url, allow_private=allow_private)
    except UnsafeTarget as exc:
        return AttemptResult.failed("unsafe_target", str(exc), started)
    except (msgspec.DecodeError, ValueError) as exc:  # InvalidTarget is a ValueError
        return AttemptResult.failed("invalid", str(exc), started)
    title, text = message.get("title", ""), message.get("body", "")
    try:
        ok = await asyncio.wait_for(
            asyncio.to_thread(client.notify, body=text, title=title), timeout
        )
    except TimeoutError:
        return AttemptResult.failed(
            "timeout", f"Apprise did not finish within {timeout:g} s", started
        )
    except Exception as exc:  # Apprise plugins may raise anything
        return AttemptResult.failed("protocol", f"Apprise failed: {type(exc).__name__}", started)
    if ok:
        return AttemptResult(200, {}, b"", None, "", time.monotonic() - started)
    return AttemptResult.failed(
        "protocol", "the Apprise service did not accept the notification", started
    )
