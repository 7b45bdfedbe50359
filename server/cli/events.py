"""Sans-I/O pieces of the client CLI: parsing what the user types, encoding what we print.

Nothing here touches a socket, a file or a clock, so every rule is tested
with plain function calls (``tests/server/cli/test_cli_events.py``).

The two input modes of ``eventlog append`` (and the one of ``eventlog import``):

* **event mode** (no ``--type``): the JSON argument is an event object or an
  array of them, and each NDJSON line is one event object:
  ``{"type": ..., "data": ..., "key": ..., "id": ..., "headers": {...}}``.
  ``type`` is required. The fields ``stream``, ``offset`` and ``time`` are
  accepted and ignored, so the output of ``eventlog tail`` / ``eventlog export``
  can be piped straight back in. Any other field is an error.
* **payload mode** (``--type T`` given): the JSON argument, and each NDJSON
  line, is the event's ``data`` (any JSON value), appended with type ``T``
  and the ``--key`` given.

``data`` travels as the bytes the user wrote (:class:`msgspec.Raw`), never
re-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from eventlog import Event, InvalidStreamName, validate_stream_name
from eventlog.encoding import utf8_problem
from eventlog.repair import repair
from eventlog.schedule import aware_time

__all__ = [
    "NULL",
    "Batcher",
    "EventLine",
    "From",
    "InputError",
    "LineSplitter",
    "Numbered",
    "OutEvent",
    "check_stream",
    "encode_event",
    "encode_out",
    "line_of",
    "parse_argument",
    "parse_due",
    "parse_from",
    "parse_line",
]

NULL = msgspec.Raw(b"null")


class InputError(ValueError):
    """Something the user typed or piped in is not acceptable (exit code 2)."""


class _EventFields(msgspec.Struct):
    # Not kw_only: msgspec would then order these after a subclass's fields.
    type: str
    data: msgspec.Raw = NULL
    key: str | None = None
    id: str | None = None
    headers: dict[str, str] = {}


class EventLine(_EventFields, kw_only=True, forbid_unknown_fields=True):
    """An event object as the user writes it (event mode), or as ``export`` prints it."""

    # Present in exported / tailed events; the target log assigns its own.
    stream: str | None = None
    offset: int | None = None
    time: str | None = None


class OutEvent(_EventFields, kw_only=True, omit_defaults=True):
    """An event as the client sends it to the server: the append wire shape."""


_line_decoder = msgspec.json.Decoder(EventLine)
_array_decoder = msgspec.json.Decoder(list[EventLine])
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def check_stream(name: str) -> str:
    """Return ``name`` if it is a valid stream name, else raise :class:`InputError`."""
    try:
        return validate_stream_name(name)
    except InvalidStreamName as exc:
        raise InputError(str(exc)) from exc


def _out(line: EventLine, default_key: str | None) -> OutEvent:
    return OutEvent(
        type=line.type,
        data=line.data,
        key=line.key if line.key is not None else default_key,
        id=line.id,
        headers=line.headers,
    )


def _check_utf8(raw: bytes, where: str) -> None:
    """Refuse a line that is not UTF-8 (msgspec leaves the strings inside ``data`` unchecked)."""
    problem = utf8_problem(raw)
    if problem is not None:
        raise InputError(f"{where}: {problem}")


def _payload(text: bytes, where: str) -> msgspec.Raw:
    stripped = text.strip()
    try:
        _any_decoder.decode(stripped)
    except msgspec.DecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc}") from exc
    return msgspec.Raw(stripped)


def parse_line(
    raw: bytes, *, lineno: int, type: str | None = None, key: str | None = None
) -> OutEvent | None:
    """One NDJSON line into an event; ``None`` for a blank line.

    Args:
        raw: The line's bytes (with or without the newline).
        lineno: 1-based line number, for error messages.
        type: Payload mode: the line is the data of an event of this type.
        key: The key of payload-mode events; the default key in event mode.

    Raises:
        InputError: The line is not JSON, or not an event object in event mode.
    """
    if not raw.strip():
        return None
    where = f"stdin line {lineno}"
    _check_utf8(raw, where)
    if type is not None:
        return OutEvent(type=type, data=_payload(raw, where), key=key)
    try:
        return _out(_line_decoder.decode(raw), key)
    except msgspec.ValidationError as exc:
        raise InputError(f"{where}: not an event object: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc}") from exc


def parse_argument(
    text: str, *, type: str | None = None, key: str | None = None, id: str | None = None
) -> list[OutEvent]:
    """The JSON argument of ``eventlog append`` into events.

    In payload mode (``type`` given) it is one event's data. In event mode it
    is one event object or an array of them; ``key`` and ``id`` fill in
    fields the object leaves out, and ``id`` needs exactly one event.

    Raises:
        InputError: Not JSON, not an event (array), or ``id`` with several events.
    """
    try:
        raw = text.encode()
    except UnicodeEncodeError as exc:  # argv bytes that were not UTF-8 (surrogate escapes)
        raise InputError(f"JSON argument: not valid UTF-8 (character {exc.start})") from None
    if type is not None:
        return [OutEvent(type=type, data=_payload(raw, "JSON argument"), key=key, id=id)]
    try:
        stripped = raw.strip()
        if stripped.startswith(b"["):
            lines = _array_decoder.decode(stripped)
        else:
            lines = [_line_decoder.decode(stripped)]
    except msgspec.ValidationError as exc:
        raise InputError(
            f"JSON argument: not an event object: {exc} "
            "(to append it as the event's data, give --type)"
        ) from exc
    except msgspec.DecodeError as exc:
        raise InputError(f"JSON argument: not valid JSON: {exc}") from exc
    if not lines:
        raise InputError("JSON argument: an empty array holds no event to append")
    if id is not None:
        if len(lines) != 1:
            raise InputError("--id needs exactly one event")
        if lines[0].id is None:
            lines[0].id = id
    return [_out(line, key) for line in lines]


@dataclass(frozen=True)
class From:
    """Where ``tail`` starts: ``kind`` is "offset", "beginning", "end" or "last"."""

    kind: str
    value: int = 0

    def resolve(self, first_offset: int, next_offset: int) -> int:
        """The absolute offset, given the stream's retained range."""
        if self.kind == "beginning":
            return first_offset
        if self.kind == "end":
            return next_offset
        if self.kind == "last":
            return max(first_offset, next_offset - self.value)
        return self.value


def parse_from(text: str) -> From:
    """``N``, ``beginning``, ``end`` or ``-N`` (the last N events).

    Raises:
        InputError: Anything else.
    """
    lowered = text.strip().lower()
    if lowered in ("beginning", "end"):
        return From(lowered)
    try:
        number = int(lowered, 10)
    except ValueError:
        raise InputError(
            f"--from must be an offset N, -N (the last N events), beginning or end, not {text!r}"
        ) from None
    if lowered.startswith("-"):
        return From("last", -number)
    return From("offset", number)


def encode_event(event: Event) -> bytes:
    """One event as one compact JSON line (newline included), data untouched.

    An event stored with data that is not UTF-8 (by an older version) is
    printed repaired and flagged (:mod:`eventlog.repair`), so the line imports.
    """
    line = _encoder.encode(event)
    if utf8_problem(line) is not None:
        line = _encoder.encode(repair(event, "cli"))
    return line + b"\n"


def encode_out(events: OutEvent | list[OutEvent]) -> bytes:
    """An event (object) or events (array) as the JSON body of an append request."""
    return _encoder.encode(events)


Numbered = tuple[int, OutEvent]
"""An event with the 1-based input line it came from (0 for the JSON argument)."""


class Batcher:
    """Groups numbered events into batches bounded by count and bytes of data."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("batch limits must be positive")
        self.max_events = max_events
        self.max_bytes = max_bytes

    def batches(self, events: Iterable[Numbered]) -> Iterator[list[Numbered]]:
        """Yield lists of events; a batch is closed before it would pass a limit."""
        batch: list[Numbered] = []
        size = 0
        for item in events:
            event = item[1]
            weight = len(event.data) + len(event.type) + 64
            if batch and (len(batch) >= self.max_events or size + weight > self.max_bytes):
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += weight
        if batch:
            yield batch


_INDEX = re.compile(r"\$\[(\d+)\]")


def line_of(path: str | None, lines: Sequence[int]) -> int | None:
    """The input line of the event a server error path names.

    ``$[3].type`` names the fourth event of a batch; ``$.type`` the one event
    of a batch sent as a single object.
    """
    path = path or ""
    match = _INDEX.match(path)
    if match is not None:
        index = int(match.group(1))
    elif len(lines) == 1 and (path == "$" or path.startswith("$.")):
        index = 0
    else:
        return None
    return lines[index] if index < len(lines) and lines[index] > 0 else None


class LineSplitter:
    """Cuts a byte stream into lines, counting them (for error messages).

    Feed it chunks as they arrive; :meth:`feed` returns the complete lines
    (without their newline) with their 1-based numbers; :meth:`finish` returns
    the last line if the input did not end with a newline.
    """

    def __init__(self) -> None:
        # Pieces of the unfinished line: joined once it ends, so a long line
        # arriving in many chunks is copied once, not once per chunk.
        self._rest: list[bytes] = []
        self.lineno = 0

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """The complete lines in ``chunk`` (plus what was left from before)."""
        if b"\n" not in chunk:
            if chunk:
                self._rest.append(chunk)
            return []
        parts = chunk.split(b"\n")
        if self._rest:
            parts[0] = b"".join([*self._rest, parts[0]])
        tail = parts.pop()
        self._rest = [tail] if tail else []
        out: list[tuple[int, bytes]] = []
        for part in parts:
            self.lineno += 1
            out.append((self.lineno, part))
        return out

    def finish(self) -> list[tuple[int, bytes]]:
        """The unterminated last line, if any."""
        if not self._rest:
            return []
        self.lineno += 1
        rest, self._rest = b"".join(self._rest), []
        return [(self.lineno, rest)]


def parse_due(at: str | None, delay: str | None) -> datetime | timedelta | None:
    """``--at`` (an RFC 3339 time with an offset) or ``--delay`` (seconds); None if neither.

    Raises:
        InputError: A malformed time or delay.
    """
    if at is not None:
        when = aware_time(at)
        if when is None:
            raise InputError(
                f"--at wants an RFC 3339 time with an offset, e.g. 2026-12-06T14:00:00Z, not {at!r}"
            )
        return when
    if delay is not None:
        try:
            seconds = float(delay)
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= 1e10:  # the server's bound on ?delay=
            raise InputError(
                f"--delay wants a number of seconds from 0 to 10000000000, not {delay!r}"
            )
        return timedelta(seconds=seconds)
    return None
