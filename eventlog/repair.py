"""Stored events whose bytes are not UTF-8, made safe to serve (sans-I/O).

Every way into the log refuses data that is not UTF-8 JSON, but a database
written by an older version (or by hand) may still hold such an event, and
one event must never break a stream's readers. So every surface that hands
events out (HTTP reads and long-polls, the WebSocket and SSE firehose,
webhooks, notifications, ``eventlog export`` and ``tail``) follows one rule:

* the event is sent **repaired**: each byte sequence that is not UTF-8 is
  replaced by U+FFFD; data that is still not one JSON value after that is sent
  as a JSON string of its text;
* it carries the header ``eventlog-repaired: utf-8``;
* its offset is its own: nothing is skipped, no client is closed, and a
  client that resumes after it moves on;
* each repair is logged (a warning on the ``eventlog`` logger naming the
  surface, stream and offset) and counted by surface (:func:`repair_counts`,
  exported as ``eventlog_events_repaired_total{surface}``).

Surfaces find such events for free or nearly: the firehose decodes each
frame to text anyway, and a page or a webhook body is checked in one C pass
(``bytes.isascii``, ~8 µs per 240 KB page) before anything per event is done.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import msgspec

from eventlog.encoding import json_problem, utf8_problem
from eventlog.model import Event
from eventlog.storage.rows import events_from_rows, from_us

__all__ = [
    "REPAIRED_HEADER",
    "event_rows",
    "lenient_event",
    "repair",
    "repair_counts",
    "repair_page",
]

REPAIRED_HEADER = "eventlog-repaired"
"""The header a repaired event carries; its value says what was repaired (``utf-8``, ``json``)."""

logger = logging.getLogger("eventlog")

_counts: Counter[str] = Counter()


def repair(event: Event, surface: str) -> Event:
    """``event`` with its data made UTF-8 JSON and the repair header; logged and counted.

    The header's value is ``utf-8`` when bytes were replaced, ``json`` when the
    data was UTF-8 but not JSON (only an embedded producer of an older version
    could store that) and is sent as a JSON string.

    Args:
        event: A stored event whose data (or a text field, repaired by storage) was not UTF-8.
        surface: Who serves it, for the log line and the metric (``"firehose"``, ``"http"``...).
    """
    stored = bytes(event.data)
    what = "json" if utf8_problem(stored) is None else "utf-8"
    text = stored.decode("utf-8", "replace")
    data = text.encode()
    if json_problem(data) is not None:
        data = msgspec.json.encode(text)
    _note(surface, event.stream, event.offset)
    return msgspec.structs.replace(
        event, data=msgspec.Raw(data), headers={**event.headers, REPAIRED_HEADER: what}
    )


def _note(surface: str, stream: str, offset: int) -> None:
    _counts[surface] += 1
    logger.warning(
        "%s: event %s/%d is not UTF-8 in storage; sent repaired (header %s)",
        surface,
        stream,
        offset,
        REPAIRED_HEADER,
    )


_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


def lenient_event(stream: str, row: Sequence[Any]) -> Event:
    """An ``events`` row as an :class:`Event`, its text and headers repaired if not UTF-8.

    Storage's slow path, for a page that its driver could not decode: ``row``
    is ``(offset, id, type, key, time_us, headers, data)`` with the text
    columns as bytes. ``data`` is left to the surfaces (:func:`repair`).
    """
    offset, event_id, type_, key, time_us, headers, data = row
    texts: list[str | None] = []
    bad = False
    for value in (event_id, type_, key):
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            bad = bad or utf8_problem(raw) is not None
            texts.append(raw.decode("utf-8", "replace"))
        else:
            texts.append(value)
    header_map: dict[str, str] = {}
    if headers:
        try:
            header_map = _decode_headers(headers)
        except msgspec.DecodeError:
            bad = True
            try:
                header_map = _decode_headers(bytes(headers).decode("utf-8", "replace").encode())
            except msgspec.DecodeError:
                header_map = {}
    if bad:
        _note("storage", stream, offset)
        header_map[REPAIRED_HEADER] = "utf-8"
    return Event(
        stream=stream,
        offset=offset,
        id=texts[0] or "",
        type=texts[1] or "",
        key=texts[2],
        time=from_us(time_us),
        headers=header_map,
        data=msgspec.Raw(bytes(data)),
    )


def repair_page(events: list[Event], surface: str) -> list[Event]:
    """``events`` with every event whose data is not UTF-8 repaired (the rest untouched).

    Call it when a check of the whole encoded page failed: it looks at each event.
    """
    return [repair(e, surface) if utf8_problem(bytes(e.data)) else e for e in events]


def repair_counts() -> dict[str, int]:
    """Events repaired in this process so far, by surface."""
    return dict(_counts)


def event_rows(stream: str, rows: Sequence[Any]) -> list[Event]:
    """``events`` rows ``(offset, id, type, key, time_us, headers, data)`` as Events.

    A row whose headers are not UTF-8 JSON is read with :func:`lenient_event`.
    """
    try:
        return events_from_rows(stream, rows)
    except msgspec.DecodeError:  # headers written by hand: not UTF-8, or not JSON
        return [lenient_event(stream, row) for row in rows]
