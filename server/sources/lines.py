"""Bytes of a file into events (sans-I/O): complete lines, UTF-8 JSON, or parked errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from eventlog import NewEvent

__all__ = [
    "ERROR_TYPE",
    "Line",
    "error_event",
    "line_event",
    "line_events",
    "split_lines",
    "too_large",
]

ERROR_TYPE = "source.error"
#: The header every source event carries: ``source: <name>``.
SOURCE_HEADER = "source"
_validate = msgspec.json.Decoder().decode


class Line(NamedTuple):
    """One complete line: its number (1-based), byte offset of its start, bytes (no newline)."""

    number: int
    offset: int
    raw: bytes


def split_lines(chunk: bytes, offset: int, number: int) -> tuple[list[Line], int]:
    """The complete lines of ``chunk`` (read at byte ``offset``; its first line is
    line ``number + 1``), and how many bytes they take. A last line without its
    newline is left for the next read."""
    lines: list[Line] = []
    start = 0
    while (end := chunk.find(b"\n", start)) >= 0:
        number += 1
        lines.append(Line(number, offset + start, chunk[start:end].rstrip(b"\r")))
        start = end + 1
    return lines, start


def error_event(
    source: str, file: str, line: int | None, offset: int, error: str, raw: bytes
) -> NewEvent:
    """What is parked for input that cannot be an event: where it was and why."""
    text = raw[:200].decode("utf-8", errors="replace")
    return NewEvent(
        type=ERROR_TYPE,
        data={
            "source": source,
            "file": file,
            "line": line,
            "offset": offset,
            "error": error,
            "text": text,
        },
    )


def too_large(source: str, raw: bytes, max_bytes: int) -> str | None:
    """Why ``raw`` as the data of one of ``source``'s events is over the log's
    ``max_event_bytes`` (data plus headers), or None if it fits."""
    size = len(raw) + len(SOURCE_HEADER) + len(source)
    if size <= max_bytes:
        return None
    return f"too large: the event would be {size} bytes, over max_event_bytes ({max_bytes})"


def line_event(
    source: str, file: str, line: Line, type: str, max_bytes: int
) -> tuple[NewEvent | None, NewEvent | None]:
    """``(event, None)`` for a JSON line, ``(None, error)`` for a bad one (not
    UTF-8 JSON, or an event over ``max_bytes``), ``(None, None)`` for a blank one."""
    raw = line.raw.strip()
    if not raw:
        return None, None
    if (why := too_large(source, raw, max_bytes)) is not None:
        return None, error_event(source, file, line.number, line.offset, why, raw)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, error_event(source, file, line.number, line.offset, f"not UTF-8: {exc}", raw)
    try:
        _validate(raw)
    except msgspec.DecodeError as exc:
        return None, error_event(source, file, line.number, line.offset, f"not JSON: {exc}", raw)
    return NewEvent(type=type, data=msgspec.Raw(raw), headers={SOURCE_HEADER: source}), None


def line_events(
    source: str, file: str, lines: Sequence[Line], type: str, max_bytes: int
) -> tuple[list[NewEvent], list[NewEvent]]:
    """The events and the error events of ``lines`` (:func:`line_event` of each)."""
    events: list[NewEvent] = []
    errors: list[NewEvent] = []
    for line in lines:
        event, error = line_event(source, file, line, type, max_bytes)
        if event is not None:
            events.append(event)
        if error is not None:
            errors.append(error)
    return events, errors
