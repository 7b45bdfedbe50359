"""Target kinds: what a kind of delivery target supplies to the engine, and the
helpers that keep secrets out of what is recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from consumers.delivery.model import Endpoint
from consumers.delivery.retry import AttemptResult, Classification, classify
from eventlog.errors import InvalidInput
from eventlog.model import Event

__all__ = [
    "SNIPPET_BYTES",
    "AttemptHook",
    "OutgoingRequest",
    "TargetKind",
    "TargetRefused",
    "origin",
    "redact",
]

SNIPPET_BYTES = 1024


class OutgoingRequest(msgspec.Struct, frozen=True, gc=False):
    """One attempt's request: body bytes, headers, and an optional URL override."""

    body: bytes
    headers: dict[str, str]
    url: str | None = None


class TargetRefused(InvalidInput):
    """A stored endpoint whose settings this version refuses (an older one stored
    them): no attempt can succeed. The message says what is wrong and what to do;
    the engine disables the endpoint with it as ``disabled_reason``."""

    code = "invalid_endpoint"


def _default_classify(endpoint: Endpoint, result: AttemptResult, now: float) -> Classification:
    return classify(result, now)


@dataclass(frozen=True)
class TargetKind:
    """A kind of target (the engine's extension point), chosen by ``Endpoint.kind``.

    Attributes:
        format: ``(endpoint, event, delivery_id, now)`` → the request, called for
            *every* attempt (a signature gets a fresh timestamp; ``delivery_id``
            is stable).
        classify: ``(endpoint, result, now)`` → the verdict, e.g. ``rate_limited``
            with a wait for a Discord 429 (default: :func:`classify`).
        validate: Optional check of an endpoint (bad ``options``: ``InvalidInput``).
        check_stored: Optional check of a stored endpoint before its pump starts
            (at start-up, on a change by another process): :class:`TargetRefused`
            disables it. ``format`` may raise it too: the attempt is recorded
            with its message and the endpoint disabled.
    """

    name: str
    format: Callable[[Endpoint, Event, str, float], OutgoingRequest]
    classify: Callable[[Endpoint, AttemptResult, float], Classification] = _default_classify
    validate: Callable[[Endpoint], None] | None = None
    check_stored: Callable[[Endpoint], None] | None = None


AttemptHook = Callable[[Endpoint, Classification, AttemptResult, str], None]
"""Called after every attempt with the endpoint, verdict, result and the delivery's new status."""


def redact(body: bytes, secrets: list[str], limit: int = SNIPPET_BYTES) -> str:
    """A response snippet for the ledger: at most ``limit`` bytes, secrets replaced."""
    text = body[: limit * 2].decode("utf-8", "replace")
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", "ignore")


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: safe to log (paths and queries may hold tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
