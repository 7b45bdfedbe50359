"""Discord incoming webhooks: message shape, limits and the answer table (sans-I/O).

Every limit is met by visible truncation (:func:`consumers.notify.limits.fit`;
tables in ``docs/notifications.md``). Messages are posted with ``?wait=true``
(else Discord answers ``204`` even for a dropped message), and
``allowed_mentions`` is empty unless ``mentions = true``: event text pings nobody.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from consumers.delivery.retry import AttemptResult, Classification, parse_retry_after
from consumers.delivery.retry import classify as default_classify
from consumers.notify.limits import fit, units
from consumers.notify.template import decode_options, parse
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
    "target_url",
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
    opts = decode_options(options, DiscordOptions, plain=("username", "avatar_url"))
    if opts.avatar_url is not None and not opts.avatar_url.startswith(("https://", "http://")):
        raise ValueError("options.avatar_url: an http(s) URL")
    if opts.username is not None and not opts.username.strip():
        raise ValueError("options.username: must not be blank")
    if opts.embed is not None:
        if len(opts.embed.fields) > FIELDS_LIMIT:
            raise ValueError(f"options.embed.fields: at most {FIELDS_LIMIT} fields")
        if opts.embed.color is not None and not 0 <= opts.embed.color <= 0xFFFFFF:
            raise ValueError("options.embed.color: an RGB integer, 0 to 0xFFFFFF")
    return opts


def wait_url(url: str) -> str:
    """``url`` with ``wait=true`` in its query (other parameters, e.g. ``thread_id``, kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def target_url(options: DiscordOptions, url: str) -> str:
    """Where a target's messages go: its URL with ``wait=true``."""
    return wait_url(url)


def _embed(embed: DiscordEmbed, context: dict[str, Any]) -> dict[str, Any]:
    def text(source: str | None, limit: int) -> str:
        return "" if source is None else fit(parse(source).render(context), limit)

    title = text(embed.title, TITLE_LIMIT)
    description = text(embed.description, DESCRIPTION_LIMIT)
    footer = text(embed.footer, FOOTER_LIMIT)
    fields: list[dict[str, Any]] = [
        {
            "name": text(f.name, FIELD_NAME_LIMIT) or _BLANK,
            "value": text(f.value, FIELD_VALUE_LIMIT) or _BLANK,
            "inline": f.inline,
        }
        for f in embed.fields
    ]
    # The 6000-unit total: shrink the description first, then drop trailing fields.
    fixed = units(title) + units(footer) + sum(units(f["name"] + f["value"]) for f in fields)
    if fixed + units(description) > EMBED_TOTAL_LIMIT:
        room = EMBED_TOTAL_LIMIT - fixed
        if room >= 32:
            description = fit(description, room)
        else:  # the fields alone leave no room (title and footer cannot): drop some
            while fields and fixed + 32 > EMBED_TOTAL_LIMIT:
                field = fields.pop()
                fixed -= units(field["name"] + field["value"])
            note = f"[+{len(embed.fields) - len(fields)} fields]"
            description = fit(description, max(0, EMBED_TOTAL_LIMIT - fixed - units(note) - 1))
            description = f"{description}\n{note}".strip()
    url = "" if embed.url is None else parse(embed.url).render(context).strip()
    if not url.startswith(("https://", "http://")) or units(url) > 2048:
        url = ""  # Discord refuses the message over a malformed URL: leave it out
    out = {
        "title": title,
        "description": description,
        "url": url,
        "color": embed.color,
        "footer": {"text": footer} if footer else None,
        "fields": fields,
        "timestamp": context["time"] if embed.timestamp else None,
    }
    return {name: value for name, value in out.items() if value not in (None, "", [])}


def build_message(options: DiscordOptions, event: Event, context: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of an Execute Webhook request for one event, within every limit."""
    content = fit(parse(options.template).render(context), CONTENT_LIMIT)
    message: dict[str, Any] = {}
    if options.embed is not None:
        message["embeds"] = [_embed(options.embed, context)]
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
    """Judge Discord's answer: ``429`` waits the JSON ``retry_after`` (else
    ``Retry-After``) without using up an attempt; ``401``, ``404`` and ``410``
    disable the target with Discord's message as the reason; ``400`` is final;
    anything else follows the engine's default table."""
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
