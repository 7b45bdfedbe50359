"""The log's data types: events, stream and consumer descriptions, seek positions.

These msgspec Structs are also the wire schema: the server encodes an
:class:`Event` as exactly one JSON object with the fields below, and
``Event.data`` stays :class:`msgspec.Raw`, the producer's bytes, never
re-encoded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from eventlog.errors import InvalidPosition, InvalidStreamName

__all__ = [
    "BEGINNING",
    "END",
    "NAMESPACE_SEPARATOR",
    "STREAM_NAME_PATTERN",
    "Beginning",
    "ConsumerInfo",
    "End",
    "Event",
    "NewEvent",
    "Offset",
    "Position",
    "Retention",
    "StreamInfo",
    "StreamName",
    "Time",
    "split_namespace",
    "validate_stream_name",
]

_STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: A name in a namespace: one ``~`` after the namespace (``acme~orders``,
#: ``webhook.acme~hook``); see :data:`NAMESPACE_SEPARATOR`.
_NAMESPACED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,159}~[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

#: The regular expression of :data:`StreamName` (msgspec quotes it in its errors).
STREAM_NAME_PATTERN = (
    "^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
    "|[A-Za-z0-9][A-Za-z0-9._-]{0,159}~[A-Za-z0-9][A-Za-z0-9._-]{0,127})$"
)

#: A stream (or consumer) name as a msgspec field type: what
#: :func:`validate_stream_name` accepts, so decoders refuse anything else.
StreamName = Annotated[str, msgspec.Meta(pattern=STREAM_NAME_PATTERN, max_length=192)]

#: Separates a namespace from a name (``acme~orders``). Names given over the
#: HTTP API never contain it; the server stores a tenant's names in the
#: tenant's namespace (docs/tenants.md).
NAMESPACE_SEPARATOR = "~"


def validate_stream_name(name: str) -> str:
    """Return ``name`` if it is a valid stream name, else raise :class:`InvalidStreamName`.

    A stream name is 1-128 characters of ``[A-Za-z0-9._-]`` and starts with a
    letter or digit, optionally in a namespace (``acme~orders``: one
    :data:`NAMESPACE_SEPARATOR`, at most 192 characters in all). Consumer names
    follow the same rule.
    """
    if name.__class__ is str and name in _valid_names:
        return name  # checked before: appends and reads name the same streams over and over
    if not isinstance(name, str) or (
        _STREAM_NAME.fullmatch(name) is None
        and (len(name) > 192 or _NAMESPACED.fullmatch(name) is None)
    ):
        raise InvalidStreamName(
            f"invalid name {name!r}: use 1-128 characters of [A-Za-z0-9._-], "
            "starting with a letter or digit"
        )
    if len(_valid_names) >= 10_000:
        _valid_names.clear()
    _valid_names.add(name)
    return name


_valid_names: set[str] = set()


def split_namespace(name: str) -> tuple[str | None, str]:
    """``"acme~orders"`` → ``("acme", "orders")``; ``"webhook.acme~hook"`` →
    ``("acme", "webhook.hook")``; a name without a namespace → ``(None, name)``.

    The namespace is the run of characters before the ``~``, back to the
    start of the name or to the last ``.`` or ``:`` (names derived from a
    namespaced name, such as a webhook's consumer, keep its namespace inside).
    """
    sep = name.find(NAMESPACE_SEPARATOR)
    if sep < 0:
        return None, name
    start = max(name.rfind(".", 0, sep), name.rfind(":", 0, sep)) + 1
    return name[start:sep], name[:start] + name[sep + 1 :]


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event as stored in the log and sent on the wire.

    Events are not tracked by Python's cycle collector (``gc=False``): they
    hold only strings, numbers, a datetime, a dict of strings and raw bytes, so
    they cannot form cycles, and reading millions of them would otherwise make
    the collector rescan them over and over (it cost ~0.7 µs per event).

    Attributes:
        stream: The stream the event belongs to.
        offset: 0-based, gapless position within the stream, assigned by the log.
        id: Unique per stream: the producer's idempotency key, else a UUIDv7.
        type: The event type, e.g. ``"order.created"``.
        key: Optional aggregate / partition key, e.g. ``"tenant-7:call-42"``.
        time: Append time, UTC.
        headers: Metadata: correlation id, tenant, content type, trace context.
            Like the event, treat it as read-only: events read without
            headers share one empty dict that raises ``TypeError`` if changed
            (``dict(event.headers)`` gives a copy of your own).
        data: The payload as the producer sent it (raw JSON bytes);
            ``msgspec.json.decode(event.data)`` gives Python values.
    """

    stream: str
    offset: int
    id: str
    type: str
    key: str | None = None
    time: datetime
    headers: dict[str, str] = {}
    data: msgspec.Raw

    def json(self) -> object:
        """Decode :attr:`data` into Python values."""
        return msgspec.json.decode(self.data)


class NewEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An event to append, before the log assigns its offset and time.

    ``data`` is any JSON-serialisable value, or :class:`msgspec.Raw` holding
    JSON bytes that are stored as they are.
    """

    type: str
    data: object = None
    key: str | None = None
    id: str | None = None
    headers: dict[str, str] = {}


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """How long a stream keeps its events. ``None`` means no limit on that axis.

    Attributes:
        max_age: Seconds an event is kept after its append time.
        max_count: Number of most recent events kept.
        max_bytes: Total payload bytes of the most recent events kept.
        protect: Named consumers of the stream hold retention: it never trims
            what they have not committed (see :mod:`eventlog.holds`).
        max_hold: Seconds without a commit after which a consumer of this
            stream stops holding retention (None: no bound from the stream).
    """

    max_age: float | None = None
    max_count: int | None = None
    max_bytes: int | None = None
    protect: bool = True
    max_hold: float | None = None

    @property
    def unlimited(self) -> bool:
        """True when no axis is limited."""
        return self.max_age is None and self.max_count is None and self.max_bytes is None


class StreamInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A stream's shape at one moment.

    Attributes:
        name: The stream name.
        next_offset: The offset the next appended event will get (the head).
        first_offset: The first retained offset (the low watermark);
            equal to ``next_offset`` when the stream is empty.
        count: Number of retained events.
        bytes: Payload bytes of the retained events.
        last_time: Append time of the newest event, if any.
        retention: The stream's retention policy.
    """

    name: str
    next_offset: int
    first_offset: int
    count: int
    bytes: int
    last_time: datetime | None = None
    retention: Retention = Retention()


class ConsumerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A named consumer's committed position on one stream.

    Attributes:
        name: The consumer's name.
        stream: The stream it reads.
        offset: The next offset it will read (everything before is committed).
        updated: When the offset was last committed.
    """

    name: str
    stream: str
    offset: int
    updated: datetime


class Beginning(msgspec.Struct, frozen=True):
    """The first retained event of a stream."""


class End(msgspec.Struct, frozen=True):
    """Just after the last event: only events appended from now on."""


class Offset(msgspec.Struct, frozen=True):
    """An absolute offset within a stream."""

    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or self.value < 0:
            raise InvalidPosition(f"offset must be a non-negative integer, got {self.value!r}")


class Time(msgspec.Struct, frozen=True):
    """The first event appended at or after a moment (timezone-aware)."""

    value: datetime

    def __post_init__(self) -> None:
        if self.value.tzinfo is None:
            raise InvalidPosition("Time() needs a timezone-aware datetime")


BEGINNING = Beginning()
END = End()

Position = Beginning | End | Offset | Time
"""Where a consumer or reader starts: ``BEGINNING``, ``END``, ``Offset(n)`` or ``Time(t)``."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
