"""Chat notifications: Discord, Slack and Apprise targets on the delivery engine.

A notification target is an endpoint whose ``kind`` is ``discord``, ``slack`` or
``apprise``; ledger, retries, ordering, replay and auto-disable are the engine's.
This module holds their specs (:class:`~consumers.webhook.TargetSpec` subclasses)
and target kinds (:func:`notify_kinds`): a message rendered from a template, the
platform's answer table, and pacing. See ``docs/notifications.md``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol, Self

import msgspec

from consumers.delivery.kinds import OutgoingRequest, TargetKind, TargetRefused
from consumers.delivery.model import Endpoint, Ordering
from consumers.delivery.retry import AttemptResult, Classification
from consumers.notify import apprise as apprise_kind
from consumers.notify import discord, slack
from consumers.notify.pacing import PacingSender
from consumers.notify.template import event_context
from consumers.webhook import SpecError, TargetSpec, public_view, shown_to
from consumers.webhook.spec import SPECS, check_declared, patch_of, spec_fields
from eventlog.model import Event

_JSON = {"Content-Type": "application/json"}
_encoder = msgspec.json.Encoder()


class _Platform(Protocol):
    """What each platform module (:mod:`~consumers.notify.discord`, …) supplies."""

    def parse_options(self, options: dict[str, Any], /) -> Any: ...
    def build_message(self, opts: Any, event: Event, context: dict[str, Any], /) -> Any: ...
    def target_url(self, opts: Any, url: str, /) -> str: ...
    def classify(self, result: AttemptResult, now: float, /) -> Classification: ...


_PLATFORMS: dict[str, _Platform] = {"discord": discord, "slack": slack, "apprise": apprise_kind}
KINDS = tuple(_PLATFORMS)


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
    """Any Apprise URL (``url``); the endpoint shows only ``apprise://<scheme>``,
    the Apprise URL itself is kept in its options."""

    def endpoint_fields(self, now: float) -> dict[str, Any]:
        kept = msgspec.structs.replace(self, options={**self.options, "url": self.url})
        return ChatSpec.endpoint_fields(kept, now) | {"url": apprise_kind.public_url(self.url)}

    @classmethod
    def of(cls, ep: Endpoint) -> Self:
        options = dict(ep.options)
        url = str(options.pop("url"))
        return cls(**{**spec_fields(ep, cls), "url": url, "options": options})


NotifySpec = DiscordSpec | SlackSpec | AppriseSpec
"""A notification target's spec: the tagged union of the chat kinds."""

SPECS.update(discord=DiscordSpec, slack=SlackSpec, apprise=AppriseSpec)


NotifyPatch = patch_of(
    ChatSpec,
    "NotifyPatch",
    """A partial update of a notification target (:func:`~consumers.webhook.apply_patch`
applies it): only the fields given change.

``options`` replaces the kind's options as a whole (the template and the
rest); ``kind``, ``id`` and ``start`` cannot change.""",
)


def spec_of(endpoint: Endpoint) -> NotifySpec:
    """The spec that builds ``endpoint`` again (its full URL included: keep it server-side)."""
    if endpoint.kind not in KINDS:
        raise ValueError(f"endpoint {endpoint.id!r} is not a notification target")
    return SPECS[endpoint.kind].of(endpoint)  # type: ignore[return-value]


class NotificationsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A ``[notifications]`` config table: ``[[notifications.targets]]``, each with an ``id``."""

    targets: list[NotifySpec] = []

    def __post_init__(self) -> None:
        check_declared(self.targets, "notification target")


def public_notify_view(endpoint: Endpoint) -> dict[str, Any]:
    """A notification endpoint's URL and options as the API may show them.

    Incoming-webhook URLs carry their token in the path, so only the origin
    and the first path segments are shown; an Apprise URL is never shown.
    """
    options = {name: value for name, value in endpoint.options.items() if name != "url"}
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
    return view | public_notify_view(endpoint)


@dataclass(frozen=True)
class NotifySetup:
    """The notification kinds and the pacing sender they register their targets with."""

    kinds: dict[str, TargetKind]
    sender: PacingSender


def _validate_options(kind: str, options: dict[str, Any]) -> None:
    """Check a kind's options; :class:`SpecError` names the field (``options.template``)."""
    platform = _PLATFORMS.get(kind)
    if platform is None:
        raise SpecError("kind", f"unknown notification kind {kind!r}")
    try:
        platform.parse_options(options)
    except ValueError as exc:  # the parsers say "options<...>: <message>"; else the kind fails
        path, _, message = str(exc).partition(": ")
        field = path.startswith("options")
        raise SpecError(path if field else "kind", message if field else str(exc)) from exc


def _validate(ep: Endpoint) -> None:
    _validate_options(ep.kind, ep.options)


def _check_stored(ep: Endpoint) -> None:
    try:
        _validate(ep)
    except SpecError as exc:
        raise _refused(ep, exc) from exc


def _refused(ep: Endpoint, exc: ValueError) -> TargetRefused:
    """Why a stored target cannot run in this version, and what the operator does."""
    enable = "then `eventlog notifications enable <id>`"
    url = ep.options.get("url")
    try:
        count = apprise_kind.url_count(url) if ep.kind == "apprise" and isinstance(url, str) else 0
    except ValueError:  # no apprise extra: the message below says so
        count = 0
    if count > 1:
        return TargetRefused(
            f"this target holds {count} Apprise URLs, stored before a target was limited "
            "to one (each attempt notifies only the URL the SSRF guard checked); split it: "
            "keep one with `eventlog notifications update <id> --target URL`, add a target "
            "for each other with `eventlog notifications create apprise URL` (same --stream "
            f"and options), {enable}"
        )
    return TargetRefused(
        f"this target's stored settings are refused: {exc}; change them with "
        f"`eventlog notifications update <id>`, {enable}"
    )


def _classify(ep: Endpoint, result: AttemptResult, now: float) -> Classification:
    return _PLATFORMS[ep.kind].classify(result, now)


def notify_kinds(sender: PacingSender | None = None) -> dict[str, TargetKind]:
    """The ``discord``, ``slack`` and ``apprise`` target kinds.

    With ``sender``, every target is registered with it for pacing as it is first
    formatted; the engine must then be given that sender. Without, messages are
    formatted and classified the same, unpaced.
    """

    def format_message(ep: Endpoint, event: Event, delivery_id: str, now: float) -> OutgoingRequest:
        platform = _PLATFORMS[ep.kind]
        try:
            opts = platform.parse_options(ep.options)
        except ValueError as exc:  # stored by an older version (else validated)
            raise _refused(ep, exc) from exc
        event = shown_to(ep, event)
        url = platform.target_url(opts, ep.url)
        if sender is not None:
            sender.pace(url)
        message = platform.build_message(opts, event, event_context(event))
        return OutgoingRequest(_encoder.encode(message), dict(_JSON), url)

    return {
        kind: TargetKind(kind, format_message, _classify, _validate, _check_stored)
        for kind in KINDS
    }


def notify_setup(*, allow_private: bool = False) -> NotifySetup:
    """Kinds and a pacing sender (with the Apprise transport) that belong together."""
    send_apprise = functools.partial(apprise_kind.send_apprise, allow_private=allow_private)
    sender = PacingSender(
        allow_private=allow_private, transports={apprise_kind.PREFIX: send_apprise}
    )
    return NotifySetup(kinds=notify_kinds(sender), sender=sender)
