"""Parsing of append request bodies into events (sans-I/O: bytes in, events out).

Accepted bodies, by ``Content-Type``:

* ``application/json`` — one event object, or a JSON array of them (one
  atomic batch). An event is ``{"type", "data", "key", "id", "headers"}``;
  only ``type`` is required; ``data`` is kept as the producer's raw JSON bytes.
* ``application/x-ndjson`` — one event object per line (blank lines skipped),
  appended as one atomic batch.
* ``application/cloudevents+json`` — one CloudEvent (structured mode, spec
  1.0); ``application/cloudevents-batch+json`` — a JSON array of them. ``id``,
  ``type`` and ``data`` map to the same event fields, ``subject`` to ``key``,
  every other attribute (``source``, ``specversion``, ``time``, extensions) to
  a ``ce-<name>`` header. ``data_base64`` becomes a JSON string in ``data``
  with the header ``ce-data_base64: true``.

Every error is an :class:`~eventlog.errors.InvalidInput` naming the JSON path of the
bad value: 400 for malformed JSON (invalid UTF-8 included, e.g. in ``$[3].data``),
415 for another content type, 422 for a well-formed body that is not a valid
event or batch.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated

import msgspec
from msgspec import Meta

from eventlog import NewEvent
from eventlog.encoding import (
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_TYPE_LENGTH,
    CheckedJSON,
    utf8_problem,
)
from eventlog.errors import InvalidField, InvalidInput

__all__ = ["EventIn", "ParsedBody", "apply_idempotency_key", "media_type", "parse_body"]

JSON = "application/json"
NDJSON = "application/x-ndjson"
CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
ACCEPTED = (JSON, NDJSON, CE, CE_BATCH)

Type = Annotated[str, Meta(min_length=1, max_length=MAX_TYPE_LENGTH)]
Key = Annotated[str, Meta(max_length=MAX_KEY_LENGTH)]
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
_NULL = msgspec.Raw(b"null")
_NO_HEADERS: dict[str, str] = {}


class EventIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One event in an append request (the wire form of :class:`eventlog.NewEvent`)."""

    type: Type
    data: msgspec.Raw = _NULL
    key: Key | None = None
    id: Id | None = None
    headers: dict[str, str] = {}


class ParsedBody(msgspec.Struct, frozen=True):
    """A parsed append body: the events, and whether it was one event or a batch."""

    events: list[NewEvent]
    single: bool


_json_decoder = msgspec.json.Decoder(EventIn | list[EventIn])
_line_decoder = msgspec.json.Decoder(EventIn)
_ce_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ce_batch_decoder = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_str_decoder = msgspec.json.Decoder(str)
_ext_decoder = msgspec.json.Decoder(str | int | bool | None)
_CE_EXTENSION = re.compile(r"[a-z0-9]{1,20}")
_PATH = re.compile(r" - at `(\$[^`]*)`$")


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a ``Content-Type`` header ("" if absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _invalid(exc: msgspec.ValidationError, prefix: str = "$") -> InvalidField:
    """A 422 naming the JSON path of the bad value (``prefix`` replaces the root ``$``)."""
    text = str(exc)
    match = _PATH.search(text)
    path = prefix + (match.group(1)[1:] if match else "")
    message = text[: match.start()] if match else text
    return InvalidField(f"{message} - at `{path}`", path=path)


def _malformed(exc: msgspec.DecodeError, where: str = "") -> InvalidInput:
    return InvalidInput(f"malformed JSON{where}: {exc}", code="malformed_json")


def _check_utf8(body: bytes, events: list[NewEvent], single: bool) -> list[NewEvent]:
    """``events`` if ``body`` is UTF-8; else a 400 naming the event whose data is not.

    msgspec checks every string it decodes except those inside a ``Raw``
    value, and ``data`` is the one ``Raw`` an event keeps; one pass over the
    body (a C loop, ~8 µs per 240 KB) covers them all. So each event's data
    goes to the log as :class:`~eventlog.encoding.CheckedJSON`, not checked again.
    """
    problem = utf8_problem(body)
    if problem is None:
        return events
    for index, event in enumerate(events):
        if isinstance(event.data, CheckedJSON):
            problem_here = utf8_problem(event.data.value)
            if problem_here is not None:
                path = "$.data" if single else f"$[{index}].data"
                raise InvalidInput(
                    f"malformed JSON: data is {problem_here} - at `{path}`",
                    code="malformed_json",
                    path=path,
                )
    raise InvalidInput(f"malformed JSON: the body is {problem}", code="malformed_json")


def _to_new(event: EventIn, defaults: dict[str, str]) -> NewEvent:
    headers = {**defaults, **event.headers} if event.headers else defaults
    data = CheckedJSON(bytes(event.data))  # checked by the decode and _check_utf8
    return NewEvent(type=event.type, data=data, key=event.key, id=event.id, headers=headers)


@functools.cache
def _bounded(max_events: int) -> msgspec.json.Decoder[object]:
    """A decoder of an array of at most ``max_events`` items that fails at the next one.

    A positional (``array_like``) struct of ``max_events`` optional fields,
    each any JSON value kept raw: msgspec refuses the first item past them as
    it meets it, with nothing built beyond raw slices of the body.
    """
    fields = [(f"i{n}", msgspec.Raw, _NULL) for n in range(max_events)]
    bound = msgspec.defstruct(
        "_Bounded", fields, array_like=True, forbid_unknown_fields=True, gc=False
    )
    return msgspec.json.Decoder(bound)


def _bound_batch(body: bytes, max_events: int) -> None:
    """Refuse an array of more than ``max_events`` items before its events are built.

    Built, 1.3M tiny events take ~250 MiB. Every item is an object, so the
    body's ``{`` count bounds the items from above (a C loop, ~9 ms per
    16 MiB); only a body with more braces than that (nested data, or too many
    items) is decoded by :func:`_bounded`, which stops at item ``max_events + 1``.
    """
    if body.count(b"{") <= max_events or body.lstrip()[:1] != b"[":
        return
    try:
        _bounded(max_events).decode(body)
    except msgspec.ValidationError:  # the one way an array fails it: too many items
        raise InvalidInput(
            f"a batch holds at most {max_events} events, got more", code="batch_too_large", path="$"
        ) from None
    except (msgspec.DecodeError, RecursionError):
        return  # malformed: the typed decode that follows reports it, with its path


def _check_count(count: int, max_events: int) -> None:
    if count == 0:
        raise InvalidInput("a batch needs at least one event", code="empty_batch", path="$")
    if count > max_events:
        raise InvalidInput(
            f"a batch holds at most {max_events} events, got {count}",
            code="batch_too_large",
            path="$",
        )


def parse_body(
    body: bytes,
    content_type: str | None,
    *,
    max_events: int,
    headers: dict[str, str] = _NO_HEADERS,
) -> ParsedBody:
    """Parse an append request body.

    ``headers`` are given to every event, under the event's own headers
    (the request's correlation id and trace context).

    Raises:
        InvalidInput: 415 for an unsupported content type, 400 for malformed JSON,
            422 (with ``path``) for invalid events, an empty or oversized batch.
    """
    kind = media_type(content_type)
    if kind not in ACCEPTED:
        shown = kind or "none"
        raise InvalidInput(
            f"Content-Type {shown} is not accepted; use one of {', '.join(ACCEPTED)}",
            code="unsupported_media_type",
        )
    if not body.strip():
        raise InvalidInput("the request body is empty", code="empty_body")
    if kind == JSON:
        _bound_batch(body, max_events)
        try:
            decoded = _json_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise _invalid(exc) from None
        except msgspec.DecodeError as exc:
            raise _malformed(exc) from None
        if isinstance(decoded, EventIn):
            return ParsedBody(_check_utf8(body, [_to_new(decoded, headers)], True), single=True)
        _check_count(len(decoded), max_events)
        events = [_to_new(e, headers) for e in decoded]
        return ParsedBody(_check_utf8(body, events, False), single=False)
    if kind == NDJSON:
        events = _parse_ndjson(body, max_events, headers)
        return ParsedBody(_check_utf8(body, events, False), single=False)
    if kind == CE:
        try:
            attrs = _ce_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise _invalid(exc) from None
        except msgspec.DecodeError as exc:
            raise _malformed(exc) from None
        return ParsedBody(_check_utf8(body, [cloudevent(attrs, "$", headers)], True), single=True)
    _bound_batch(body, max_events)
    try:
        batch = _ce_batch_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise _malformed(exc) from None
    _check_count(len(batch), max_events)
    events = [cloudevent(a, f"$[{i}]", headers) for i, a in enumerate(batch)]
    return ParsedBody(_check_utf8(body, events, False), single=False)


#: A line with something on it, from its first non-blank byte: blank lines are
#: skipped in C, so a body of millions of newlines costs no Python loop.
_LINE = re.compile(rb"\S[^\n]*")


def _parse_ndjson(body: bytes, max_events: int, headers: dict[str, str]) -> list[NewEvent]:
    events: list[NewEvent] = []
    for match in _LINE.finditer(body):
        if len(events) >= max_events:
            _check_count(len(events) + 1, max_events)
        index = len(events)
        try:
            events.append(_to_new(_line_decoder.decode(match.group()), headers))
        except msgspec.ValidationError as exc:
            raise _invalid(exc, f"$[{index}]") from None
        except msgspec.DecodeError as exc:
            number = body.count(b"\n", 0, match.start()) + 1
            raise _malformed(exc, f" on line {number}") from None
    _check_count(len(events), max_events)
    return events


def _ce_string(
    attrs: dict[str, msgspec.Raw], name: str, path: str, *, required: bool
) -> str | None:
    raw = attrs.get(name)
    if raw is None:
        if required:
            raise InvalidField(
                f"CloudEvent is missing required attribute `{name}` - at `{path}`", path=path
            )
        return None
    try:
        value = _str_decoder.decode(raw)
    except msgspec.ValidationError:
        where = f"{path}.{name}"
        raise InvalidField(f"Expected `str` - at `{where}`", path=where) from None
    if required and not value:
        where = f"{path}.{name}"
        raise InvalidField(f"`{name}` must not be empty", path=where)
    return value


def cloudevent(
    attrs: dict[str, msgspec.Raw], path: str, defaults: dict[str, str] = _NO_HEADERS
) -> NewEvent:
    """Map one structured-mode CloudEvent (attribute name → raw JSON) to a :class:`NewEvent`.

    Raises:
        InvalidField: 422 naming the attribute's path when the event is not valid CloudEvents 1.0.
    """
    spec = _ce_string(attrs, "specversion", path, required=True)
    if spec != "1.0":
        where = f"{path}.specversion"
        raise InvalidField(f'specversion must be "1.0", got {spec!r}', path=where)
    event_id = _ce_string(attrs, "id", path, required=True)
    event_type = _ce_string(attrs, "type", path, required=True)
    _ce_string(attrs, "source", path, required=True)
    subject = _ce_string(attrs, "subject", path, required=False)
    headers: dict[str, str] = dict(defaults)
    data = _NULL
    for name, raw in attrs.items():
        if name in ("id", "type", "subject"):
            continue
        if name == "data":
            data = raw
            continue
        if name == "data_base64":
            encoded = _ce_string(attrs, name, path, required=False)
            data = msgspec.Raw(msgspec.json.encode(encoded))
            headers["ce-data_base64"] = "true"
            continue
        if not _CE_EXTENSION.fullmatch(name):
            where = f"{path}.{name}"
            raise InvalidField(
                f"invalid CloudEvents attribute name {name!r}: use 1-20 of [a-z0-9]", path=where
            )
        try:
            value = _ext_decoder.decode(raw)
        except msgspec.ValidationError:
            where = f"{path}.{name}"
            raise InvalidField(
                f"CloudEvents attribute `{name}` must be a string, integer or boolean", path=where
            ) from None
        if value is not None:
            headers[f"ce-{name}"] = str(value).lower() if isinstance(value, bool) else str(value)
    for name, limit in (("id", MAX_ID_LENGTH), ("type", MAX_TYPE_LENGTH)):
        value = event_id if name == "id" else event_type
        if value is not None and len(value) > limit:
            where = f"{path}.{name}"
            raise InvalidField(f"`{name}` is longer than {limit} characters", path=where)
    assert event_type is not None
    checked = CheckedJSON(bytes(data))  # checked by the decode and _check_utf8
    return NewEvent(type=event_type, data=checked, key=subject, id=event_id, headers=headers)


_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def apply_idempotency_key(parsed: ParsedBody, key: str | None) -> list[NewEvent]:
    """Give the request's ``Idempotency-Key`` to its events.

    A single event takes the key as its ``id``; in a batch, each event without
    an ``id`` gets ``<key>.<index>``, so a retried batch dedups event by event.

    Raises:
        InvalidInput: 400 for a malformed key; 422 when a single event's own ``id``
            differs from the key.
    """
    if key is None:
        return parsed.events
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput(
            "Idempotency-Key must be 1-200 visible ASCII characters", code="invalid_idempotency_key"
        )
    if parsed.single:
        event = parsed.events[0]
        if event.id is not None and event.id != key:
            raise InvalidInput(
                "the event's id differs from the Idempotency-Key header",
                code="idempotency_conflict",
                path="$.id",
            )
        return [msgspec.structs.replace(event, id=key)]
    return [
        e if e.id is not None else msgspec.structs.replace(e, id=f"{key}.{i}")
        for i, e in enumerate(parsed.events)
    ]
