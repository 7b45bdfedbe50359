"""Webhooks on the delivery engine: target specs and how they change
(:mod:`~consumers.webhook.spec`), the API's view of an endpoint
(:mod:`~consumers.webhook.views`) and the signed Standard Webhooks request
(:mod:`~consumers.webhook.formatter`, the ``webhook`` target kind).
"""

from consumers.webhook.formatter import WEBHOOK, correlation_id, format_webhook, shown_to
from consumers.webhook.spec import (
    EndpointPatch,
    EndpointSpec,
    RetrySetting,
    SpecError,
    TargetSpec,
    WebhooksConfig,
    apply_patch,
    build_endpoint,
    declared_endpoint,
    rotate_secret,
)
from consumers.webhook.views import public_view

__all__ = [
    "WEBHOOK",
    "EndpointPatch",
    "EndpointSpec",
    "RetrySetting",
    "SpecError",
    "TargetSpec",
    "WebhooksConfig",
    "apply_patch",
    "build_endpoint",
    "correlation_id",
    "declared_endpoint",
    "format_webhook",
    "public_view",
    "rotate_secret",
    "shown_to",
]
