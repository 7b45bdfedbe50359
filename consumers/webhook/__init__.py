"""Webhooks: what an endpoint is, how the API shows it, and the request each attempt sends.

A webhook endpoint is a :class:`~consumers.delivery.model.Endpoint` of kind
``"webhook"`` on the delivery engine (:mod:`consumers.delivery`).
:mod:`~consumers.webhook.spec` checks and changes endpoints (specs, patches,
secret rotation, config-file declarations); :mod:`~consumers.webhook.views`
is the only shape in which one leaves the server;
:mod:`~consumers.webhook.formatter` builds the signed Standard Webhooks
request and is the ``webhook`` target kind (:data:`WEBHOOK`).
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
    patch_of,
    rotate_secret,
    spec_fields,
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
    "patch_of",
    "public_view",
    "rotate_secret",
    "shown_to",
    "spec_fields",
]
