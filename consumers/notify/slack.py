"""Slack incoming webhooks: message shape, limits and the answer table (sans-I/O).

The message is ``text`` (``mrkdwn``), plus Block Kit ``blocks`` when a
``title`` or ``fields`` are set. Limits are met by visible truncation (tables
in ``docs/notifications.md``). Values substituted into templates are escaped
(:func:`escape`), so event data cannot inject ``<!channel>`` or links.
"""

from __future__ import annotations

from typing import Any

import msgspec

from consumers.delivery.retry import AttemptResult, Classification
from consumers.delivery.retry import classify as default_classify
from consumers.notify.limits import fit
from consumers.notify.template import decode_options, parse
from eventlog.model import Event

__all__ = [
    "DEFAULT_TEMPLATE",
    "SlackField",
    "SlackOptions",
    "build_message",
    "classify",
    "escape",
    "parse_options",
    "target_url",
]

TEXT_LIMIT = 4000
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELDS_LIMIT = 10
FIELD_LIMIT = 2000

#: The message when no template is configured.
DEFAULT_TEMPLATE = "*{type}* in `{stream}` at offset {offset}\n```{data}```"


class SlackField(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A section field, shown as ``*name*`` over ``value`` (both templates)."""

    name: str
    value: str


class SlackOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``options`` of a ``slack`` target.

    Attributes:
        template: The message ``text`` (mrkdwn; a template).
        title: A header block above the text (a template).
        fields: Section fields under the text (up to 10).
    """

    template: str = DEFAULT_TEMPLATE
    title: str | None = None
    fields: list[SlackField] = []


def escape(text: str) -> str:
    """Slack's escaping of ``&``, ``<`` and ``>`` in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse_options(options: dict[str, Any]) -> SlackOptions:
    """Decode and check a target's options.

    Raises:
        ValueError: An unknown option, a wrong type, or a template that does not parse.
    """
    return decode_options(options, SlackOptions)


def target_url(options: SlackOptions, url: str) -> str:
    """Where a target's messages go: its URL."""
    return url


def build_message(options: SlackOptions, event: Event, context: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of an incoming-webhook request for one event, within every limit."""

    def mrkdwn(source: str) -> str:
        return parse(source).render(context, escape)

    text = mrkdwn(options.template)
    if not text.strip():
        text = escape(f"{event.type} in {event.stream} at offset {event.offset}")
    message: dict[str, Any] = {"text": fit(text, TEXT_LIMIT)}
    if options.title is None and not options.fields:
        return message
    blocks: list[dict[str, Any]] = []
    # Header blocks are plain_text: no mrkdwn, so no escaping either.
    title = "" if options.title is None else parse(options.title).render(context).strip()
    if title:
        blocks.append(
            {"type": "header", "text": {"type": "plain_text", "text": fit(title, HEADER_LIMIT)}}
        )
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": fit(text, SECTION_LIMIT)}})
    if options.fields:
        fields = [
            {"type": "mrkdwn", "text": fit(f"*{mrkdwn(f.name)}*\n{mrkdwn(f.value)}", FIELD_LIMIT)}
            for f in options.fields[:FIELDS_LIMIT]
        ]
        blocks.append({"type": "section", "fields": fields})
    if len(options.fields) > FIELDS_LIMIT:
        note = f"[+{len(options.fields) - FIELDS_LIMIT} fields]"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    message["blocks"] = blocks
    return message


def _reason(result: AttemptResult) -> str:
    text = result.body[:200].decode("utf-8", "replace").strip()
    return text or f"HTTP {result.status}"


def classify(result: AttemptResult, now: float) -> Classification:
    """Judge Slack's answer: ``403 invalid_token``, ``404`` and ``410`` disable the
    target with Slack's reason; ``400`` and other ``403``s are final; anything
    else (a ``429`` among them) follows the engine's default table."""
    status = result.status
    if status in (404, 410) or (status == 403 and _reason(result) == "invalid_token"):
        return Classification("disable", f"Slack answered {status} {_reason(result)}")
    if status in (400, 403):
        return Classification("failed", f"Slack refused the message: {status} {_reason(result)}")
    return default_classify(result, now)
