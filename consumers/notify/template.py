"""Message templates for chat notifications (sans-I/O, no ``eval``).

``"{type} for order {data.order.id|no id} at {time}"``: placeholders are dotted
paths into the event (:func:`event_context`), ``|`` gives a fallback, ``{{``
and ``}}`` are literal braces; ``docs/notifications.md`` has the full syntax.
A path only walks the event's fields and its decoded JSON, so a template
cannot run code. :func:`parse` reports a malformed template with its position.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar

import msgspec

from eventlog.encoding import utf8_problem
from eventlog.errors import InvalidInput
from eventlog.model import Event
from eventlog.repair import repair

__all__ = [
    "MAX_TEMPLATE_LENGTH",
    "Template",
    "TemplateError",
    "decode_options",
    "event_context",
    "parse",
]

#: Longest template accepted, in characters.
MAX_TEMPLATE_LENGTH = 8192
_encoder = msgspec.json.Encoder()
Opts = TypeVar("Opts")
#: A placeholder's body: backquoted text (which may hold braces) or other characters.
_BODY = re.compile(r"(?:`[^`]*`|[^`{}])*")
#: ``{{``, ``}}``, a placeholder, a brace on its own, or literal text.
_TOKENS = re.compile(r"\{\{|\}\}|\{(" + _BODY.pattern + r")\}|[{}]|[^{}]+")
#: Outside backquotes (followed by whole backquoted pairs only): the ``|`` before a
#: fallback, the dots between path segments.
_BAR = re.compile(r"\|(?=(?:[^`]*`[^`]*`)*[^`]*$)", re.S)
_DOTS = re.compile(r"\.(?=(?:[^`]*`[^`]*`)*[^`]*$)", re.S)


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
            if value is None:  # absent or null
                out.append(part.fallback or "")
                continue
            text = value if isinstance(value, str) else _encoder.encode(value).decode()
            out.append(escape(text) if escape is not None else text)
        return "".join(out)


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> object:
    value: object = context
    for segment in path:
        if isinstance(value, dict):
            value = value.get(segment)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return None
    return value


def _split_path(text: str, where: int) -> tuple[str, ...]:
    segments = tuple(segment.replace("`", "") for segment in _DOTS.split(text))
    if not all(segments):
        raise TemplateError(f"empty path segment in placeholder {{{text}}} at {where}")
    return segments


@functools.lru_cache(maxsize=1024)
def parse(source: str) -> Template:
    """Parse a template (cached: endpoints render the same few templates over and over).

    Raises:
        TemplateError: An unclosed ``{``, a lone ``}``, an empty placeholder,
            or a template over :data:`MAX_TEMPLATE_LENGTH` characters.
    """
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"a template is at most {MAX_TEMPLATE_LENGTH} characters")
    parts: list[str | _Field] = []
    for token in _TOKENS.finditer(source):
        text, body, at = token.group(), token.group(1), token.start()
        if body is not None:
            if not body.strip():
                raise TemplateError(f"empty placeholder at position {at}")
            path, *fallback = _BAR.split(body.strip(), maxsplit=1)
            parts.append(_Field(_split_path(path.strip(), at + 1), next(iter(fallback), None)))
        elif text == "}":
            raise TemplateError(f"single '}}' at position {at}: write '}}}}' for a literal brace")
        elif text == "{":
            rest = _BODY.match(source, at + 1)
            if rest is not None and source[rest.end() : rest.end() + 1] == "{":
                raise TemplateError(f"'{{' inside the placeholder opened at position {at}")
            raise TemplateError(f"placeholder opened at position {at} is not closed")
        else:
            parts.append(text[0] if text in ("{{", "}}") else text)
    return Template(source=source, parts=tuple(parts))


def decode_options(options: dict[str, Any], kind: type[Opts], plain: Collection[str] = ()) -> Opts:
    """A target's ``options`` decoded as its kind's options struct, each text in it
    (nested ones too) parsed as a template, but the fields named in ``plain``.

    Raises:
        ValueError: An unknown option or a wrong type (``options: <why>``), or a
            bad template (``options.<where>: <why>``).
    """
    try:
        opts = msgspec.convert(options, kind)
    except msgspec.ValidationError as exc:
        raise ValueError(f"options: {exc}") from exc
    _check_templates(opts, "options", plain)
    return opts


def _check_templates(value: object, where: str, plain: Collection[str]) -> None:
    if isinstance(value, str):
        try:
            parse(value)
        except TemplateError as exc:
            raise ValueError(f"{where}: {exc}") from exc
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_templates(item, f"{where}[{i}]", plain)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            if name not in plain:
                _check_templates(getattr(value, name), f"{where}.{name}", plain)


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
