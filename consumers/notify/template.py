"""Message templates for chat notifications (sans-I/O, no ``eval``).

A template is text with ``{placeholders}``::

    "{type} for order {data.order.id} ({data.order.total|no total}) at {time}"

* A placeholder is a dotted path into the event: ``type``, ``stream``,
  ``offset``, ``id``, ``key``, ``time`` (RFC 3339), ``headers.<name>``,
  ``data`` (the whole payload, as compact JSON) and ``data.<field>...``;
  a numeric segment indexes a list (``data.items.0.sku``). Any segment may
  be quoted with backquotes when it has dots or spaces: ``data.`a.b```.
* ``|`` gives a fallback used when the path is absent or null:
  ``{key|no key}``; without one an absent value renders as nothing.
* Strings are inserted as they are; numbers, ``true``/``false`` as JSON;
  objects and lists as compact JSON.
* ``{{`` and ``}}`` are literal braces.

Nothing is evaluated: a path only walks keys of the decoded JSON and the
event's fields, so a template cannot run code or reach Python attributes.
Templates are parsed once (:func:`parse`), which reports a malformed one
with its position, and rendered per event (:meth:`Template.render`) with an
optional ``escape`` applied to substituted values only (Slack's ``&<>``
escaping, so event data cannot inject mentions or links).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import msgspec

from eventlog.encoding import utf8_problem
from eventlog.errors import InvalidInput
from eventlog.model import Event
from eventlog.repair import repair

__all__ = [
    "MAX_TEMPLATE_LENGTH",
    "Template",
    "TemplateError",
    "check_templates",
    "event_context",
    "parse",
]

#: Longest template accepted, in characters.
MAX_TEMPLATE_LENGTH = 8192
_encoder = msgspec.json.Encoder()
_MISSING = object()


class TemplateError(InvalidInput):
    """A template cannot be parsed; the message gives the position."""

    code = "invalid_template"


@dataclass(frozen=True, slots=True)
class _Field:
    path: tuple[str, ...]
    fallback: str | None


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and placeholders, in order.

    Attributes:
        source: The template as written.
    """

    source: str
    parts: tuple[str | _Field, ...]

    def render(self, context: Mapping[str, Any], escape: Callable[[str], str] | None = None) -> str:
        """The text for one event (see :func:`event_context`)."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = _lookup(context, part.path)
            if value is _MISSING or value is None:
                out.append(part.fallback or "")
                continue
            text = value if isinstance(value, str) else _encoder.encode(value).decode()
            out.append(escape(text) if escape is not None else text)
        return "".join(out)


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> object:
    value: object = context
    for segment in path:
        if isinstance(value, dict):
            value = value.get(segment, _MISSING)
        elif isinstance(value, list) and segment.isdigit():
            index = int(segment)
            value = value[index] if index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _split_path(text: str, where: int) -> tuple[str, ...]:
    segments: list[str] = []
    i = 0
    current: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise TemplateError(f"unclosed backquote in placeholder at {where + i}")
            current.append(text[i + 1 : end])
            i = end + 1
            continue
        if ch == ".":
            segments.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    segments.append("".join(current))
    if any(not s for s in segments):
        raise TemplateError(f"empty path segment in placeholder {{{text}}} at {where}")
    return tuple(segments)


@functools.lru_cache(maxsize=1024)
def parse(source: str) -> Template:
    """Parse a template (cached: endpoints render the same few templates over and over).

    Raises:
        TemplateError: An unclosed ``{``, a lone ``}``, an empty placeholder,
            or a template over :data:`MAX_TEMPLATE_LENGTH` characters.
    """
    if not isinstance(source, str):
        raise TemplateError("a template is a string")
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"a template is at most {MAX_TEMPLATE_LENGTH} characters")
    parts: list[str | _Field] = []
    literal: list[str] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "{" and source.startswith("{{", i):
            literal.append("{")
            i += 2
        elif ch == "}" and source.startswith("}}", i):
            literal.append("}")
            i += 2
        elif ch == "}":
            raise TemplateError(f"single '}}' at position {i}: write '}}}}' for a literal brace")
        elif ch == "{":
            end = _placeholder_end(source, i)
            body = source[i + 1 : end].strip()
            if not body:
                raise TemplateError(f"empty placeholder at position {i}")
            path_text, bar, fallback = _split_fallback(body)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Field(_split_path(path_text.strip(), i + 1), fallback if bar else None))
            i = end + 1
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return Template(source=source, parts=tuple(parts))


def check_templates(texts: Iterable[tuple[str, str | None]]) -> None:
    """Parse each ``(where, text)`` of a target's options (``None``: not given).

    Raises:
        ValueError: A bad template, as ``options.<where>: <why>``.
    """
    for where, text in texts:
        if text is not None:
            try:
                parse(text)
            except TemplateError as exc:
                raise ValueError(f"options.{where}: {exc}") from exc


def _placeholder_end(source: str, start: int) -> int:
    i = start + 1
    while i < len(source):
        ch = source[i]
        if ch == "`":
            close = source.find("`", i + 1)
            if close < 0:
                break
            i = close + 1
            continue
        if ch == "}":
            return i
        if ch == "{":
            raise TemplateError(f"'{{' inside the placeholder opened at position {start}")
        i += 1
    raise TemplateError(f"placeholder opened at position {start} is not closed")


def _split_fallback(body: str) -> tuple[str, bool, str]:
    in_quote = False
    for i, ch in enumerate(body):
        if ch == "`":
            in_quote = not in_quote
        elif ch == "|" and not in_quote:
            return body[:i], True, body[i + 1 :]
    return body, False, ""


def event_context(event: Event) -> dict[str, Any]:
    """What a template sees of an event: its fields, ``time`` as RFC 3339, ``data`` decoded.

    Data that is not UTF-8 (an older version could store it) is repaired
    first (:mod:`eventlog.repair`); data that is still not valid JSON renders
    as absent rather than failing the delivery.
    """
    if utf8_problem(bytes(event.data)) is not None:
        event = repair(event, "notification")
    try:
        data: object = msgspec.json.decode(event.data)
    except (msgspec.DecodeError, RecursionError):
        data = None
    return {
        "type": event.type,
        "stream": event.stream,
        "offset": event.offset,
        "id": event.id,
        "key": event.key,
        "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "headers": dict(event.headers),
        "data": data,
    }
