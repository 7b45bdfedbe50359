"""Discord incoming webhooks: message shape, limits and the answer table (sans-I/O).

Every Discord limit (``content`` 2000, embed title 256, description 4096, 25
fields of 256/1024, footer 2048, all embed text 6000, ``username`` 80) is met
by visible truncation (:func:`consumers.notify.limits.fit`); the tables are in
``docs/notifications.md``. Messages are posted with ``?wait=true``, so Discord
answers ``200`` with the stored message (without it, ``204`` even when the
message was dropped). ``allowed_mentions`` is empty unless ``mentions = true``:
text from events cannot ping ``@everyone`` or anyone else.

Answers (:func:`classify`): ``429`` waits the JSON ``retry_after`` (else
``Retry-After``) without using up an attempt; ``401``, ``404`` and ``410``
disable the target with Discord's message as the reason; ``400`` is final;
anything else follows the engine's default table.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from consumers.delivery.retry import AttemptResult, Classification, parse_retry_after
from consumers.delivery.retry import classify as default_classify
from consumers.notify.limits import fit, units
from consumers.notify.template import Template, check_templates, decode_options, parse
from eventlog.model import Event

__all__ = [
    "DEFAULT_TEMPLATE",
    "DiscordEmbed",
    "DiscordField",
    "DiscordOptions",
    "build_message",
    "classify",
    "parse_options",
    "retry_after",
    "wait_url",
]

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELDS_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
USERNAME_LIMIT = 80
_BLANK = "\u200b"  # Discord refuses empty field names and values

#: The message when no template is configured.
DEFAULT_TEMPLATE = "**{type}** in `{stream}` at offset {offset}\n```json\n{data}\n```"


class DiscordField(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An embed field; ``name`` and ``value`` are templates."""

    name: str
    value: str
    inline: bool = False


class DiscordEmbed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One embed; every text is a template.

    Attributes:
        title: Embed title.
        description: Embed body (Markdown).
        url: Link of the title (a template too).
        color: RGB colour as an integer (``0x5865F2``).
        footer: Footer text.
        fields: Up to 25 fields.
        timestamp: Show the event's time in the embed.
    """

    title: str | None = None
    description: str | None = None
    url: str | None = None
    color: int | None = None
    footer: str | None = None
    fields: list[DiscordField] = []
    timestamp: bool = True


class DiscordOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``options`` of a ``discord`` target.

    Attributes:
        template: The message ``content`` (a template; see
            :mod:`consumers.notify.template`).
        username: Override the webhook's name.
        avatar_url: Override the webhook's avatar.
        embed: An optional embed.
        mentions: Let the message's mentions ping (off: nobody is pinged).
    """

    template: str = DEFAULT_TEMPLATE
    username: str | None = None
    avatar_url: str | None = None
    embed: DiscordEmbed | None = None
    mentions: bool = False


def parse_options(options: dict[str, Any]) -> DiscordOptions:
    """Decode and check a target's options.

    Raises:
        ValueError: An unknown option, a wrong type, or a template that does
            not parse (the message names the option).
    """
    opts = decode_options(options, DiscordOptions)
    if opts.avatar_url is not None and not opts.avatar_url.startswith(("https://", "http://")):
        raise ValueError("options.avatar_url: an http(s) URL")
    if opts.username is not None and not opts.username.strip():
        raise ValueError("options.username: must not be blank")
    texts: list[tuple[str, str | None]] = [("template", opts.template)]
    if opts.embed is not None:
        e = opts.embed
        texts += [
            ("embed.title", e.title),
            ("embed.description", e.description),
            ("embed.url", e.url),
            ("embed.footer", e.footer),
        ]
        if len(e.fields) > FIELDS_LIMIT:
            raise ValueError(f"options.embed.fields: at most {FIELDS_LIMIT} fields")
        for i, f in enumerate(e.fields):
            texts += [(f"embed.fields[{i}].name", f.name), (f"embed.fields[{i}].value", f.value)]
        if e.color is not None and not 0 <= e.color <= 0xFFFFFF:
            raise ValueError("options.embed.color: an RGB integer, 0 to 0xFFFFFF")
    check_templates(texts)
    return opts


def wait_url(url: str) -> str:
    """``url`` with ``wait=true`` in its query (other parameters, e.g. ``thread_id``, kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _render(source: str | None, context: dict[str, Any]) -> str:
    return "" if source is None else parse(source).render(context)


def _embed(embed: DiscordEmbed, event: Event, context: dict[str, Any]) -> dict[str, Any]:
    title = fit(_render(embed.title, context), TITLE_LIMIT)
    description = fit(_render(embed.description, context), DESCRIPTION_LIMIT)
    footer = fit(_render(embed.footer, context), FOOTER_LIMIT)
    fields: list[tuple[str, str, bool]] = [
        (
            fit(_render(f.name, context), FIELD_NAME_LIMIT) or _BLANK,
            fit(_render(f.value, context), FIELD_VALUE_LIMIT) or _BLANK,
            f.inline,
        )
        for f in embed.fields
    ]
    # The 6000-unit total: shrink the description first, then drop trailing fields.
    fixed = units(title) + units(footer) + sum(units(n) + units(v) for n, v, _ in fields)
    if fixed + units(description) > EMBED_TOTAL_LIMIT:
        room = EMBED_TOTAL_LIMIT - fixed
        if room >= 32:
            description = fit(description, room)
        else:
            dropped = 0
            while fields and fixed + 32 > EMBED_TOTAL_LIMIT:
                name, value, _ = fields.pop()
                fixed -= units(name) + units(value)
                dropped += 1
            note = f"[+{dropped} fields]" if dropped else ""
            description = fit(description, max(0, EMBED_TOTAL_LIMIT - fixed - units(note) - 1))
            description = f"{description}\n{note}".strip() if note else description
    out: dict[str, Any] = {}
    if title:
        out["title"] = title
    if description:
        out["description"] = description
    url = _render(embed.url, context).strip()
    if url.startswith(("https://", "http://")) and units(url) <= 2048:
        out["url"] = url  # Discord refuses the message over a malformed URL: leave it out
    if embed.color is not None:
        out["color"] = embed.color
    if footer:
        out["footer"] = {"text": footer}
    if fields:
        out["fields"] = [{"name": n, "value": v, "inline": i} for n, v, i in fields]
    if embed.timestamp:
        out["timestamp"] = context["time"]
    return out


def build_message(options: DiscordOptions, event: Event, context: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of an Execute Webhook request for one event, within every limit."""
    template: Template = parse(options.template)
    content = fit(template.render(context), CONTENT_LIMIT)
    message: dict[str, Any] = {}
    if options.embed is not None:
        message["embeds"] = [_embed(options.embed, event, context)]
    if not content.strip() and not message.get("embeds"):
        content = f"{event.type} in {event.stream} at offset {event.offset}"
    if content:
        message["content"] = content
    if options.username:
        message["username"] = fit(options.username, USERNAME_LIMIT)
    if options.avatar_url:
        message["avatar_url"] = options.avatar_url
    message["allowed_mentions"] = (
        {"parse": ["users", "roles", "everyone"]} if options.mentions else {"parse": []}
    )
    return message


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _discord_message(body: bytes) -> str:
    data = _json(body)
    message = data.get("message")
    code = data.get("code")
    if isinstance(message, str):
        return f"{message} (code {code})" if code is not None else message
    return body[:200].decode("utf-8", "replace")


def retry_after(result: AttemptResult, now: float) -> tuple[float | None, bool]:
    """A 429's wait: the JSON body's ``retry_after`` (seconds, with a fraction), else
    the ``Retry-After`` header; and whether Discord says the limit is global."""
    data = _json(result.body)
    global_limit = data.get("global") is True
    global_limit |= result.headers.get("x-ratelimit-global", "").lower() == "true"
    wait = data.get("retry_after")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
        return float(wait), global_limit
    return parse_retry_after(result.headers.get("retry-after"), now), global_limit


def classify(result: AttemptResult, now: float) -> Classification:
    """Judge Discord's answer (see the module docstring)."""
    status = result.status
    if status == 429:
        wait, global_limit = retry_after(result, now)
        scope = " (global)" if global_limit else ""
        return Classification("rate_limited", f"Discord 429{scope}", wait)
    if status in (400, 401, 404, 410):
        said = _discord_message(result.body)
        if status == 400:
            return Classification("failed", f"Discord refused the message: {said}")
        return Classification("disable", f"Discord answered {status}: {said}")
    return default_classify(result, now)
