"""The delivery engine's records: endpoints, deliveries, attempts (msgspec Structs).

Times are seconds since the epoch (floats); the API renders them as RFC 3339.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from consumers.delivery.retry import RetryPolicy
from eventlog.ids import uuid7

__all__ = [
    "FINISHED",
    "Attempt",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "Finished",
    "NewDelivery",
    "Ordering",
    "SecretEntry",
    "TargetFields",
    "new_delivery_id",
]

DeliveryStatus = Literal["pending", "in_flight", "delivered", "failed"]
Ordering = Literal["concurrent", "ordered", "per-key"]
#: The final statuses: a row in one of them is history, never claimed again
#: unless an operator retries it (and pruned ``keep_history`` seconds after).
FINISHED: tuple[DeliveryStatus, ...] = ("delivered", "failed")

DEFAULT_DISABLE_AFTER = 5 * 86400.0


def new_delivery_id() -> str:
    """A new delivery id, also the ``webhook-id``: ``msg_`` + 32 hex digits, time-ordered."""
    return "msg_" + uuid7().replace("-", "")


class SecretEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One signing secret; a rotated-out secret keeps signing until ``expires_at``."""

    secret: str
    created: float
    expires_at: float | None = None


class TargetFields(msgspec.Struct, kw_only=True):
    """The fields a target's declaration (:class:`~consumers.webhook.TargetSpec`)
    and its :class:`Endpoint` share: same names, types and defaults.

    Attributes:
        url: Target URL, http or https (Apprise: the Apprise URL).
        stream: Stream to deliver (default ``events``).
        types: Event type patterns, ``*`` matching anything (empty: all types).
        key: Pattern the event key must match (optional).
        timeout: Seconds per attempt, 0.1 to 300.
        ordering: ``concurrent``, ``ordered`` or ``per-key``.
        rate_limit: Attempts per second at most (optional).
        enabled: Start enabled.
        allow_replay: Allow replay and backfill.
        disable_after: Seconds of continuous failure before the endpoint is
            disabled (null: never).
        description: Free text.
    """

    url: str
    stream: str = "events"
    types: list[str] = []
    key: str | None = None
    timeout: float = 10.0
    ordering: Ordering = "concurrent"
    rate_limit: float | None = None
    enabled: bool = True
    allow_replay: bool = True
    disable_after: float | None = DEFAULT_DISABLE_AFTER
    description: str = ""


class Endpoint(TargetFields, kw_only=True):
    """A delivery target and how to deliver to it (stored as one JSON document).

    Besides the :class:`TargetFields` (``id`` and ``retry``, a full policy here,
    mean what :class:`~consumers.webhook.TargetSpec` says):

    Attributes:
        kind: Target kind: formatter and response classifier (``"webhook"``...).
        secrets: Signing secrets, newest first.
        headers: Extra static request headers; values are treated as secrets.
        max_in_flight: Concurrent attempts (ordered mode uses 1).
        disabled_reason: Why the endpoint was disabled, if it was.
        failing_since: Start of the current failure streak.
        start_offset: Where the consumer starts if it never committed.
        options: Settings of the target kind (templates etc.).
        origin: ``"config"`` for endpoints declared in the config file (the
            API may not change or delete them), else ``"api"``.
    """

    id: str
    kind: str = "webhook"
    secrets: list[SecretEntry] = []
    headers: dict[str, str] = {}
    retry: RetryPolicy = RetryPolicy()
    max_in_flight: int = 10
    disabled_reason: str | None = None
    failing_since: float | None = None
    start_offset: int = 0
    options: dict[str, Any] = {}
    origin: Literal["api", "config"] = "api"
    created: float = 0.0
    updated: float = 0.0

    @property
    def consumer_name(self) -> str:
        """The name of the endpoint's consumer (its committed offset lives in the log)."""
        return f"webhook.{self.id}"

    def active_secrets(self, now: float) -> list[str]:
        """Secrets that sign at ``now`` (the current one and unexpired old ones)."""
        return [s.secret for s in self.secrets if s.expires_at is None or s.expires_at > now]


class NewDelivery(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A delivery row to create."""

    id: str
    stream: str
    offset: int
    event_id: str
    event_type: str
    key: str | None
    next_attempt_at: float
    replay: bool = False


class Delivery(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event's delivery to one endpoint. ``id`` is the ``webhook-id``.

    Attributes:
        seq: Position in the ledger (creation order); the ordered modes follow it.
        attempts: Attempts counted against the retry budget.
        budget_start: Attempts made before the last manual retry (not counted).
        rate_limited: 429 waits taken.
        next_attempt_at: When the next attempt is due (pending only).
        last_status: HTTP status of the last attempt.
        last_error: Error of the last attempt, if it failed.
        replay: True for deliveries created by a replay or a backfill.
    """

    id: str
    seq: int
    endpoint_id: str
    stream: str
    offset: int
    event_id: str
    event_type: str
    key: str | None
    status: DeliveryStatus
    attempts: int = 0
    budget_start: int = 0
    rate_limited: int = 0
    next_attempt_at: float | None = None
    created: float = 0.0
    updated: float = 0.0
    last_status: int | None = None
    last_error: str | None = None
    replay: bool = False


class Attempt(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One HTTP attempt of a delivery, as recorded in the ledger.

    ``response`` is a redacted snippet of at most 1 KiB of the response body.
    """

    delivery_id: str
    number: int
    started: float
    duration: float
    status: int | None
    error: str | None
    verdict: str
    response: str = ""


class Finished(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The outcome of one attempt, to record: the attempt row and the delivery's new state.

    ``attempt=None`` releases a claimed delivery without an attempt (its send
    was cancelled by a shutdown or an endpoint change): back to ``pending``.
    """

    delivery_id: str
    endpoint_id: str
    attempt: Attempt | None
    status: DeliveryStatus
    attempts: int
    rate_limited: int
    next_attempt_at: float | None
    now: float
