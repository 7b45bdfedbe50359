"""One inbound request, from raw bytes to the event to append (sans-I/O).

:func:`prepare` is the whole decision, with no socket and no clock (``now``
is passed in): verify the signature over the raw body, *then* decode the
body, then map it. The route only reads the body, calls it and appends.

The stored event's ``data`` is::

    {"payload": <the body>, "fields": {<mapped field>: <value>, ...}}

``payload`` is the sender's JSON body byte for byte (never re-encoded). A
form-encoded body (``application/x-www-form-urlencoded``, unless it starts
with ``{`` or ``[`` as ``curl -d`` bodies labelled so by default do) whose only field is
``payload`` holding JSON (GitHub's form content type, Slack interactivity)
contributes that JSON; any other form body becomes an object of its fields
as strings (Slack slash commands). Paths are evaluated against the same value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

import msgspec

from eventlog.errors import InvalidInput
from eventlog.ids import uuid7
from eventlog.model import NewEvent
from server.ingest._headers import get_header
from server.ingest.sources import CompiledSource, SlackScheme

__all__ = ["Challenge", "MalformedBody", "decode_body", "prepare"]

_FORM = "application/x-www-form-urlencoded"
_encoder = msgspec.json.Encoder()
#: Most fields a form body may have.
MAX_FORM_FIELDS = 1000


class MalformedBody(InvalidInput):
    """The (authentic) body is neither JSON nor a form (HTTP 400)."""

    code = "malformed_payload"


@dataclass(frozen=True, slots=True)
class Challenge:
    """Slack's Events API ``url_verification``: answer 200 with ``challenge``, append nothing."""

    challenge: str


def decode_body(content_type: str, body: bytes) -> tuple[object, bytes]:
    """Decode a body: ``(document, payload JSON bytes)``.

    Raises:
        MalformedBody: Not JSON (or, for a form content type, not a UTF-8 form).
    """
    media = content_type.split(";", 1)[0].strip().lower()
    # curl -d labels any body as a form; a body that opens like JSON is JSON.
    if media == _FORM and body.lstrip()[:1] not in (b"{", b"["):
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=MAX_FORM_FIELDS,
                errors="strict",
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedBody(f"the body is not a UTF-8 form: {exc}") from exc
        form = dict(pairs)
        if len(form) == 1 and "payload" in form:
            inner = form["payload"].encode()
            try:
                return msgspec.json.decode(inner), inner
            except (msgspec.DecodeError, RecursionError):
                pass
        return form, _encoder.encode(form)
    try:
        return msgspec.json.decode(body), body
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"the body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedBody("the body is nested too deeply to decode") from exc


def prepare(
    source: CompiledSource,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    extra_headers: Mapping[str, str] | None = None,
) -> NewEvent | Challenge:
    """Verify, decode and map one request to the event to append.

    Args:
        source: The compiled source the request was sent to.
        headers: The request headers (case-insensitive lookups).
        body: The raw body, exactly as received.
        now: Unix seconds, for timestamp tolerance.
        extra_headers: Added to the event's headers (e.g. a correlation id).

    Raises:
        server.ingest.verify.SignatureError: 401.
        MalformedBody: 400.
        server.ingest.mapping.MappingError: 400, naming the path.
    """
    source.verify(headers, body, now)
    doc, payload = decode_body(get_header(headers, "content-type") or "", body)
    if (
        isinstance(source.spec.verify, SlackScheme)
        and isinstance(doc, dict)
        and doc.get("type") == "url_verification"
        and isinstance(doc.get("challenge"), str)
    ):
        return Challenge(doc["challenge"])
    mapped = source.mapper.apply(headers, doc)
    event_headers = {"ingest-source": source.name}
    for name in source.spec.headers:
        value = get_header(headers, name)
        if value is not None:
            event_headers[name.lower()] = value
    if extra_headers:
        event_headers.update(extra_headers)
    data = _encoder.encode({"payload": msgspec.Raw(payload), "fields": mapped.fields})
    return NewEvent(
        type=mapped.type,
        key=mapped.key,
        id=mapped.id if mapped.id is not None else uuid7(),
        headers=event_headers,
        data=msgspec.Raw(data),
    )
