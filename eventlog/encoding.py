"""Validation and encoding of events before they are queued (sans-I/O).

Everything a producer hands the log is checked here, in the producer's task,
so that a bad event fails its own caller with a clear error and never reaches
the shared writer transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from eventlog.errors import EventTooLarge, InvalidEvent, InvalidPosition
from eventlog.ids import uuid7
from eventlog.model import NewEvent
from eventlog.storage.base import PendingEvent

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_TYPE_LENGTH",
    "check_expected_offset",
    "encode_data",
    "pending_batch",
    "pending_event",
]

MAX_TYPE_LENGTH = 256
MAX_KEY_LENGTH = 1024
MAX_ID_LENGTH = 256
_encode = msgspec.json.Encoder().encode
_Raw = msgspec.Raw


def encode_data(data: object) -> bytes:
    """Encode a payload to JSON bytes; :class:`msgspec.Raw` passes through unchanged."""
    if data.__class__ is _Raw:
        return bytes(data)
    try:
        return _encode(data)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidEvent(f"data is not JSON-serialisable: {exc}") from exc


def _text(name: str, value: object, limit: int, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise InvalidEvent(f"event {name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"event {name} must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidEvent(f"event {name} must not be empty")
    if len(value) > limit:
        raise InvalidEvent(f"event {name} is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidEvent(f"event {name} must not contain NUL characters")
    return value


def pending_event(
    data: object,
    *,
    type: str,
    key: str | None = None,
    id: str | None = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int,
) -> PendingEvent:
    """Validate one event and encode its data.

    Raises:
        InvalidEvent: A field is missing, mistyped or too long, or data is not JSON.
        EventTooLarge: Encoded data plus headers exceed ``max_bytes``.
    """
    if type.__class__ is not str or not 0 < len(type) <= MAX_TYPE_LENGTH or "\x00" in type:
        _text("type", type, MAX_TYPE_LENGTH, required=True)  # raises with the reason
    if key is not None:
        _text("key", key, MAX_KEY_LENGTH, required=False)
    if id is not None:
        _text("id", id, MAX_ID_LENGTH, required=False)
        if not id:
            raise InvalidEvent("event id must not be empty")
    if headers:
        header_map, header_bytes = _headers(headers)
    else:
        header_map, header_bytes = {}, 0
    payload = encode_data(data)
    if len(payload) + header_bytes > max_bytes:
        raise EventTooLarge(len(payload) + header_bytes, max_bytes)
    return PendingEvent(
        id=uuid7() if id is None else id,
        id_given=id is not None,
        type=type,
        key=key,
        headers=header_map,
        data=payload,
    )


def pending_batch(
    events: Sequence[NewEvent], max_events: int, max_bytes: int
) -> list[PendingEvent]:
    """Check and encode the events of one ``append_batch``: at least one, at most ``max_events``."""
    if not events:
        raise InvalidEvent("a batch needs at least one event")
    if len(events) > max_events:
        raise InvalidEvent(f"a batch holds at most {max_events} events, got {len(events)}")
    return [
        pending_event(
            e.data, type=e.type, key=e.key, id=e.id, headers=e.headers, max_bytes=max_bytes
        )
        for e in events
    ]


def check_expected_offset(expected_offset: object) -> None:
    """Refuse an ``expected_offset`` that is not a non-negative integer."""
    if not isinstance(expected_offset, int) or expected_offset < 0:
        raise InvalidPosition("expected_offset must be a non-negative integer")


def _headers(headers: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """A copy of ``headers`` checked to map strings to strings, and its size."""
    if not isinstance(headers, Mapping):
        raise InvalidEvent("event headers must be a mapping of strings to strings")
    header_map: dict[str, str] = {}
    header_bytes = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidEvent("event headers must map strings to strings")
        header_map[name] = value
        header_bytes += len(name) + len(value)
    return header_map, header_bytes
