"""The firehose's query parameters: ``from=``, ``Last-Event-ID``, ``types=``, ``key=``, ``batch=``.

Pure parsers: each takes the raw text (``None`` when absent) and returns the
typed value or raises an :class:`~eventlog.errors.EventLogError` subclass the
server maps to a 4xx. Used by both the WebSocket and the SSE routes
(:mod:`server.api.firehose`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consumers.filter import EventFilter, check_key_pattern, check_type_pattern
from eventlog.errors import InvalidInput, InvalidPosition
from eventlog.model import BEGINNING, END, Beginning, End, Offset

__all__ = [
    "MAX_BATCH",
    "MAX_TYPE_PATTERNS",
    "Query",
    "Start",
    "parse_batch",
    "parse_from",
    "parse_key",
    "parse_last_event_id",
    "parse_query",
    "parse_types",
]

#: Most glob patterns one ``types=`` parameter may carry.
MAX_TYPE_PATTERNS = 64
#: Largest ``batch=``.
MAX_BATCH = 1000

Start = Beginning | End | Offset
"""Where a firehose client starts: ``BEGINNING``, ``END`` or ``Offset(n)``."""


def parse_from(text: str | None) -> Start:
    """Parse ``from=``: an offset, ``beginning`` or ``end`` (the default when absent).

    Raises:
        InvalidPosition: Anything else (negative, not a number, empty).
    """
    if text is None:
        return END
    value = text.strip().lower()
    if value == "beginning":
        return BEGINNING
    if value == "end":
        return END
    if not value.isdigit() or not value.isascii() or len(value) > 19:
        raise InvalidPosition(
            f"from must be a non-negative offset, 'beginning' or 'end', got {text!r}"
        )
    return Offset(int(value))


def parse_last_event_id(text: str | None) -> int | None:
    """The offset to resume after from an SSE ``Last-Event-ID`` header (None if absent).

    Raises:
        InvalidPosition: Not a non-negative integer.
    """
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 19:
        raise InvalidPosition(f"Last-Event-ID must be an event offset, got {text!r}")
    return int(value)


def parse_types(text: str | None) -> tuple[str, ...]:
    """Parse ``types=``: comma-separated glob patterns (``order.*,payment.failed``).

    The patterns are those of :mod:`consumers.filter` (``*``, ``?``, ``[...]``,
    as in :func:`fnmatch.fnmatchcase`; case-sensitive).

    Raises:
        InvalidInput: An empty pattern, too many patterns, or one that
            :func:`~consumers.filter.check_type_pattern` refuses.
    """
    if text is None:
        return ()
    patterns = tuple(p.strip() for p in text.split(","))
    if any(not p for p in patterns):
        raise InvalidInput(f"types must be comma-separated non-empty glob patterns, got {text!r}")
    if len(patterns) > MAX_TYPE_PATTERNS:
        raise InvalidInput(f"types holds at most {MAX_TYPE_PATTERNS} patterns")
    try:
        return tuple(check_type_pattern(p) for p in patterns)
    except InvalidInput as exc:
        raise InvalidInput(f"types: {exc}") from None


def parse_key(text: str | None) -> str | None:
    """Parse ``key=``: a key pattern (exact unless it holds ``*``, ``?`` or ``[``).

    Raises:
        InvalidInput: Empty, longer than 1024 characters, or control characters.
    """
    return None if text is None else check_key_pattern(text)


def parse_batch(text: str | None) -> int:
    """Parse ``batch=``: events per frame, 1 (the default) to :data:`MAX_BATCH`.

    Raises:
        InvalidInput: Not an integer in range.
    """
    if text is None:
        return 1
    value = text.strip()
    if not value.isdigit() or not value.isascii() or not 1 <= int(value[:6]) <= MAX_BATCH:
        raise InvalidInput(f"batch must be an integer from 1 to {MAX_BATCH}, got {text!r}")
    return int(value)


@dataclass(frozen=True)
class Query:
    """A firehose request's parameters, parsed (:func:`parse_query`)."""

    position: Start
    last_id: int | None
    filter: EventFilter
    batch: int

    def start(self, first: int, head: int) -> int:
        """The first offset to send from a stream holding ``first <= offset < head``:
        the one after ``Last-Event-ID`` if given, else ``from=``'s."""
        if self.last_id is not None:
            return self.last_id + 1
        if isinstance(self.position, Beginning):
            return first
        if isinstance(self.position, End):
            return head
        return self.position.value


def parse_query(params: Mapping[str, str], last_event_id: str | None = None) -> Query:
    """Parse a request's ``from``, ``types``, ``key`` and ``batch`` (and an SSE
    ``Last-Event-ID``), each with its parser above.

    Raises:
        InvalidInput: The first parameter that is not acceptable.
    """
    return Query(
        position=parse_from(params.get("from")),
        last_id=parse_last_event_id(last_event_id),
        filter=EventFilter(parse_types(params.get("types")), parse_key(params.get("key"))),
        batch=parse_batch(params.get("batch")),
    )
