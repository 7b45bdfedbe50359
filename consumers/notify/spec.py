"""Chat notifications: Discord, Slack and Apprise targets on top of the delivery engine.

A notification target is a delivery-engine endpoint whose ``kind`` is
``discord``, ``slack`` or ``apprise``: the engine's ledger, retries, ordering,
replay, crash recovery, auto-disable and visibility apply unchanged. This
module supplies only what differs, through the engine's target-kind
extension point:

* the **formatter**: a message rendered from a template
  (:mod:`consumers.notify.template`) in the platform's shape and within its
  limits (:mod:`consumers.notify.discord`, :mod:`consumers.notify.slack`,
  :mod:`consumers.notify.apprise`);
* the **classifier**: the platform's answers (429 waits, 404/410 and Slack's
  ``invalid_token`` disabling the target, 400 final);
* **pacing**: a :class:`~consumers.notify.pacing.PacingSender` that sends to
  each chat target one request at a time and holds every request while a
  ``retry_after`` or an exhausted ``X-RateLimit`` bucket says so.

Wiring, wherever the engine is built::

    setup = notify_setup(allow_private=False)
    engine = DeliveryEngine(log, ledger_for(log),
                            kinds={"webhook": WEBHOOK, **setup.kinds},
                            sender=setup.sender)
    await engine.put_endpoint(build_notify_endpoint(spec, now=time.time(), head=head))

:class:`NotifySpec` is what users write (config file, API, CLI); see
``docs/notifications.md``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import msgspec

from consumers.delivery.engine import OutgoingRequest, TargetKind
from consumers.delivery.model import Endpoint, Ordering
from consumers.delivery.retry import AttemptResult, Classification
from consumers.notify import apprise as apprise_kind
from consumers.notify import discord, slack
from consumers.notify.pacing import PacingSender
from consumers.notify.template import event_context
from consumers.webhook import (
    SpecError,
    TargetPatch,
    TargetSpec,
    build_endpoint,
    declared_endpoint,
    public_view,
    shown_to,
    spec_fields,
)
from eventlog.model import Event

KINDS = ("discord", "slack", "apprise")
_JSON = {"Content-Type": "application/json"}
_encoder = msgspec.json.Encoder()


class ChatSpec(TargetSpec, kw_only=True, forbid_unknown_fields=True):
    """A notification target as users declare it: a :class:`~consumers.webhook.TargetSpec`
    whose ``kind`` is ``discord``, ``slack`` or ``apprise``.

    Attributes:
        options: The kind's message settings: ``template`` and the rest (see
            :class:`~consumers.notify.discord.DiscordOptions`,
            :class:`~consumers.notify.slack.SlackOptions`,
            :class:`~consumers.notify.apprise.AppriseOptions`).
        ordering: ``ordered`` (default: messages arrive in log order),
            ``per-key`` or ``concurrent``. Sends to one target are always one
            at a time.
    """

    options: dict[str, Any] = {}
    ordering: Ordering = "ordered"

    def endpoint_fields(self, now: float) -> dict[str, Any]:
        _validate_options(self.kind, self.options)
        return {"options": dict(self.options), "secrets": [], "max_in_flight": 1}


class DiscordSpec(ChatSpec, tag="discord", kw_only=True, forbid_unknown_fields=True):
    """A Discord incoming webhook (``url``: ``https://discord.com/api/webhooks/…``)."""


class SlackSpec(ChatSpec, tag="slack", kw_only=True, forbid_unknown_fields=True):
    """A Slack incoming webhook (``url``: ``https://hooks.slack.com/services/…``)."""


class AppriseSpec(ChatSpec, tag="apprise", kw_only=True, forbid_unknown_fields=True):
    """Any Apprise URL (``url``); the endpoint shows only ``apprise://<scheme>``."""

    def endpoint_fields(self, now: float) -> dict[str, Any]:
        options = {**self.options, "url": self.url}
        _validate_options(self.kind, options)
        url = apprise_kind.public_url(self.url)
        return {"options": options, "secrets": [], "max_in_flight": 1, "url": url}


NotifySpec = DiscordSpec | SlackSpec | AppriseSpec
"""A notification target's spec: the tagged union of the chat kinds."""

_SPECS: dict[str, type[ChatSpec]] = {
    "discord": DiscordSpec,
    "slack": SlackSpec,
    "apprise": AppriseSpec,
}


def _validate_options(kind: str, options: dict[str, Any]) -> None:
    """Check a kind's options; :class:`SpecError` names the field (``options.template``)."""
    try:
        if kind == "discord":
            discord.parse_options(options)
        elif kind == "slack":
            slack.parse_options(options)
        elif kind == "apprise":
            apprise_kind.parse_options(options)
        else:
            raise SpecError("kind", f"unknown notification kind {kind!r}")
    except SpecError:
        raise
    except ValueError as exc:  # the parsers say "<field>: <message>"
        text = str(exc)
        path, _, message = text.partition(": ")
        raise SpecError(path if message else "options", message or text) from exc


def build_notify_endpoint(spec: NotifySpec, *, now: float, head: int, first: int = 0) -> Endpoint:
    """A new engine endpoint from a notification spec (pure); :func:`build_endpoint`.

    Raises:
        SpecError: A field is invalid; ``path`` names it (``options.template``…).
    """
    return build_endpoint(spec, now=now, head=head, first=first)


declared_notify_endpoint = declared_endpoint
"""A config-declared notification target: :func:`~consumers.webhook.declared_endpoint`."""


class NotifyPatch(TargetPatch, kw_only=True, forbid_unknown_fields=True):
    """A partial update of a notification target: only the fields given change.

    ``options`` replaces the kind's options as a whole (the template and the
    rest); ``kind``, ``id`` and ``start`` cannot change.
    """

    options: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


def spec_of(endpoint: Endpoint) -> NotifySpec:
    """The spec that builds ``endpoint`` again (its full URL included: keep it server-side)."""
    if endpoint.kind not in KINDS:
        raise ValueError(f"endpoint {endpoint.id!r} is not a notification target")
    fields = spec_fields(endpoint)
    options = dict(endpoint.options)
    if endpoint.kind == "apprise":
        fields["url"] = str(options.pop("url"))
    return _SPECS[endpoint.kind](**fields, options=options)  # type: ignore[return-value]


def apply_notify_patch(endpoint: Endpoint, patch: NotifyPatch, *, now: float) -> Endpoint:
    """The target with the patch applied and validated (pure); its runtime state is kept.

    Enabling it clears its disabled reason and failure streak; otherwise its
    enabled state stays as it was.

    Raises:
        SpecError: A field is invalid; ``path`` names it.
    """
    fields = patch.__struct_fields__
    changes = {f: getattr(patch, f) for f in fields if getattr(patch, f) is not msgspec.UNSET}
    spec = msgspec.structs.replace(spec_of(endpoint), **changes)
    fresh = build_notify_endpoint(spec, now=now, head=endpoint.start_offset)
    enabled = fresh.enabled
    keep_state = changes.get("enabled") is not True
    return msgspec.structs.replace(
        fresh,
        start_offset=endpoint.start_offset,
        created=endpoint.created,
        origin=endpoint.origin,
        enabled=enabled,
        disabled_reason=endpoint.disabled_reason if keep_state and not enabled else None,
        failing_since=endpoint.failing_since if keep_state else None,
        updated=now,
    )


class NotificationsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A ``[notifications]`` config table: ``[[notifications.targets]]``, each with an ``id``."""

    targets: list[NotifySpec] = []

    def __post_init__(self) -> None:
        ids = [t.id for t in self.targets]
        if any(i is None for i in ids):
            raise ValueError("notification targets declared in the config file need an id")
        if len(set(ids)) != len(ids):
            raise ValueError("notification target ids in the config file must be unique")


def public_notify_view(endpoint: Endpoint) -> dict[str, Any]:
    """A notification endpoint's URL and options as the API may show them.

    Incoming-webhook URLs carry their token in the path, so only the origin
    and the first path segments are shown; an Apprise URL is never shown.
    """
    options = dict(endpoint.options)
    options.pop("url", None)
    url = endpoint.url
    if endpoint.kind in ("discord", "slack"):
        head, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        segments = path.split("/")
        url = f"{head}://{host}/" + "/".join(segments[:2]) + ("/…" if len(segments) > 2 else "")
    return {"kind": endpoint.kind, "url": url, "options": options}


def notify_view(endpoint: Endpoint, now: float) -> dict[str, Any]:
    """A notification target as the API shows it: the webhook view without secrets
    and headers (chat targets have none), the URL masked by :func:`public_notify_view`."""
    view = public_view(endpoint, now)
    for name in ("secrets", "headers", "max_in_flight"):
        view.pop(name, None)
    view.update(public_notify_view(endpoint))
    return view


@dataclass(frozen=True)
class NotifySetup:
    """The notification kinds and the pacing sender they register their targets with."""

    kinds: dict[str, TargetKind]
    sender: PacingSender


def notify_kinds(sender: PacingSender | None = None) -> dict[str, TargetKind]:
    """The ``discord``, ``slack`` and ``apprise`` target kinds.

    With ``sender``, every Discord and Slack target is registered with it for
    pacing as it is first formatted; the engine must then be given that
    sender. Without, messages are formatted and classified the same, unpaced.
    """

    def pace(url: str) -> None:
        if sender is not None:
            sender.pace(url)

    def format_discord(ep: Endpoint, event: Event, delivery_id: str, now: float) -> OutgoingRequest:
        event = shown_to(ep, event)
        message = discord.build_message(
            discord.parse_options(ep.options), event, event_context(event)
        )
        url = discord.wait_url(ep.url)
        pace(url)
        return OutgoingRequest(_encoder.encode(message), dict(_JSON), url)

    def format_slack(ep: Endpoint, event: Event, delivery_id: str, now: float) -> OutgoingRequest:
        event = shown_to(ep, event)
        message = slack.build_message(slack.parse_options(ep.options), event, event_context(event))
        pace(ep.url)
        return OutgoingRequest(_encoder.encode(message), dict(_JSON), ep.url)

    def format_apprise(ep: Endpoint, event: Event, delivery_id: str, now: float) -> OutgoingRequest:
        opts = apprise_kind.parse_options(ep.options)
        event = shown_to(ep, event)
        body = apprise_kind.build_message(opts, event, event_context(event))
        return OutgoingRequest(body, {}, apprise_kind.PREFIX + opts.url)

    def classify_discord(ep: Endpoint, result: AttemptResult, now: float) -> Classification:
        return discord.classify(result, now)

    def classify_slack(ep: Endpoint, result: AttemptResult, now: float) -> Classification:
        return slack.classify(result, now)

    def validate(ep: Endpoint) -> None:
        _validate_options(ep.kind, ep.options)

    return {
        "discord": TargetKind("discord", format_discord, classify_discord, validate),
        "slack": TargetKind("slack", format_slack, classify_slack, validate),
        "apprise": TargetKind("apprise", format_apprise, validate=validate),
    }


def notify_setup(*, allow_private: bool = False) -> NotifySetup:
    """Kinds and a pacing sender (with the Apprise transport) that belong together."""
    send_apprise = functools.partial(apprise_kind.send_apprise, allow_private=allow_private)
    sender = PacingSender(
        allow_private=allow_private, transports={apprise_kind.PREFIX: send_apprise}
    )
    return NotifySetup(kinds=notify_kinds(sender), sender=sender)
