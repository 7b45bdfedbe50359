"""The Standard Webhooks request of one attempt, and the ``webhook`` target kind.

Each attempt POSTs the event as JSON (the same object the firehose sends)
with ``webhook-id`` (the delivery id, stable across retries),
``webhook-timestamp`` (fresh per attempt), ``webhook-signature`` (one ``v1,``
entry per active secret) and ``X-Correlation-Id`` when the event carries one.
"""

from __future__ import annotations

import msgspec

from consumers.delivery.kinds import OutgoingRequest, TargetKind
from consumers.delivery.model import Endpoint
from consumers.delivery.signing import webhook_headers
from consumers.parking import shown_headers
from eventlog.encoding import utf8_problem
from eventlog.model import NAMESPACE_SEPARATOR, Event, split_namespace
from eventlog.repair import repair

__all__ = ["WEBHOOK", "correlation_id", "format_webhook", "shown_to"]

_CORRELATION_NAMES = ("x-correlation-id", "correlation-id", "correlation_id", "correlationid")
_encoder = msgspec.json.Encoder()


def correlation_id(event: Event) -> str | None:
    """The event's correlation id header, if it has one (any usual spelling)."""
    for name, value in event.headers.items():
        if name.lower() in _CORRELATION_NAMES:
            return value
    return None


def shown_to(ep: Endpoint, event: Event) -> Event:
    """The event as the endpoint's owner names it: a tenant's endpoint
    (``acme~crm``) sees its tenant's stream as ``orders``, not ``acme~orders``
    (and a parked copy's origin so too)."""
    if NAMESPACE_SEPARATOR not in ep.id:
        return event
    namespace, shown = split_namespace(event.stream)
    if namespace is None or namespace != split_namespace(ep.id)[0]:
        return event
    return msgspec.structs.replace(
        event, stream=shown, headers=shown_headers(event.headers, namespace)
    )


def format_webhook(ep: Endpoint, event: Event, delivery_id: str, now: float) -> OutgoingRequest:
    """The Standard Webhooks request for one attempt: event JSON body (as
    :func:`shown_to` the endpoint's owner), signed now."""
    event = shown_to(ep, event)
    body = _encoder.encode(event)
    if utf8_problem(body) is not None:  # stored so by an older version: see eventlog.repair
        body = _encoder.encode(repair(event, "webhook"))
    headers = webhook_headers(ep.active_secrets(now), delivery_id, int(now), body)
    headers["Content-Type"] = "application/json"
    corr = correlation_id(event)
    if corr is not None and not any(c in corr for c in "\r\n\x00"):
        headers["X-Correlation-Id"] = corr
    return OutgoingRequest(body, headers)


WEBHOOK = TargetKind("webhook", format_webhook)
"""The webhook target kind: Standard Webhooks requests, the default classification table."""
