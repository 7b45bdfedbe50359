"""The client's sans-I/O half: request bodies, answer shapes, and errors from answers.

Nothing here touches a socket or a clock. :func:`error_from` turns a server's
error answer ``{"error": {"code", "message", ...}}`` into the
:class:`~eventlog.errors.EventLogError` subclass the embedded log raises for
that code (:data:`ERROR_CLASSES`, the one code -> class table); a code the
table does not know (a leaf defined in ``consumers`` or ``server``, e.g.
``claim_expired``) becomes the branch its HTTP status belongs to
(:data:`STATUS_CLASSES`), keeping the server's code. The error's
:attr:`~eventlog.errors.EventLogError.http_status` says what the server answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from eventlog import errors as e
from eventlog.ids import uuid7
from eventlog.model import Event, NewEvent, Retention, StreamInfo

__all__ = [
    "BAD_ANSWER",
    "ERROR_CLASSES",
    "STATUS_CLASSES",
    "TLS_FAILED",
    "AppendAnswer",
    "Page",
    "StreamList",
    "answer",
    "append_body",
    "error_from",
    "stream_answer",
    "streams_answer",
    "tls_error",
    "transport_error",
    "worth_retrying",
]

#: Every code of :mod:`eventlog.errors`, to the class the embedded log raises for it.
ERROR_CLASSES: dict[str, type[e.EventLogError]] = {
    cls.code: cls
    for cls in (
        e.InvalidInput,
        e.InvalidStreamName,
        e.InvalidEvent,
        e.EventTooLarge,
        e.InvalidPosition,
        e.InvalidParameter,
        e.InvalidField,
        e.InvalidSchedule,
        e.NotFound,
        e.StreamNotFound,
        e.ConsumerNotFound,
        e.ScheduleNotFound,
        e.Conflict,
        e.CheckpointMoved,
        e.ExpectedOffsetMismatch,
        e.Unauthorized,
        e.Forbidden,
        e.OffsetOutOfRange,
        e.Unavailable,
        e.LogClosed,
        e.Unsupported,
        e.StorageError,
        e.CorruptDatabase,
        e.SchemaTooNew,
    )
}

#: The branch of the tree an HTTP status belongs to, for codes not in :data:`ERROR_CLASSES`.
STATUS_CLASSES: dict[int, type[e.EventLogError]] = {
    400: e.InvalidInput,
    401: e.Unauthorized,
    403: e.Forbidden,
    404: e.NotFound,
    408: e.InvalidInput,
    409: e.Conflict,
    413: e.InvalidInput,
    415: e.InvalidInput,
    416: e.OffsetOutOfRange,
    422: e.InvalidInput,
    429: e.Unavailable,
    431: e.InvalidInput,
    501: e.Unsupported,
    502: e.Unavailable,
    503: e.Unavailable,
    504: e.Unavailable,
}


class _ErrorBody(msgspec.Struct):
    code: str
    message: str = ""
    path: str | None = None
    first_offset: int | None = None
    skipped: int | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


def _bare(cls: type[e.EventLogError], message: str, code: str) -> e.EventLogError:
    """An instance of ``cls`` carrying the server's message, whatever ``cls.__init__`` wants
    (``StreamNotFound(stream)``, ``OffsetOutOfRange(stream, offset, first)``, ...)."""
    exc = cls.__new__(cls)
    e.EventLogError.__init__(exc, message, code=code)
    return exc


def error_from(
    status: int, body: bytes, reason: str = "", *, context: Mapping[str, Any] | None = None
) -> e.EventLogError:
    """The error of the tree for a server's error answer.

    Args:
        status: The HTTP status.
        body: The answer's body: eventlog's JSON error, or anything a proxy sends.
        reason: The status line's reason phrase, for an answer without a body.
        context: What the request was about (``stream``, ``offset``, ``name``),
            to fill the attributes the embedded error carries (``exc.stream``).
    """
    try:
        error = _error_decoder.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = " ".join(body.decode("utf-8", "replace").split())[:300] or reason
        cls = STATUS_CLASSES.get(status, e.EventLogError)
        exc = _bare(cls, f"server answered HTTP {status}: {text}", f"http_{status}")
        exc.http_status = status
        return exc
    cls = ERROR_CLASSES.get(error.code) or STATUS_CLASSES.get(status, e.EventLogError)
    exc = _bare(cls, error.message, error.code)
    exc.http_status = status
    if error.path is not None:
        exc.json_path = error.path
    _fill(exc, error, context or {})
    return exc


def _fill(exc: e.EventLogError, error: _ErrorBody, context: Mapping[str, Any]) -> None:
    """Set the attributes the embedded log's error of that class has, where the answer
    or the request tells them."""
    if isinstance(exc, (e.StreamNotFound, e.ScheduleNotFound)):
        exc.stream = context.get("stream", "")
    if isinstance(exc, e.ScheduleNotFound):
        exc.id = context.get("id", "")
    if isinstance(exc, e.ConsumerNotFound):
        exc.name = context.get("name", "")
    if isinstance(exc, e.InvalidEvent):
        exc.path = error.path
    if isinstance(exc, e.ExpectedOffsetMismatch):
        exc.stream = context.get("stream", "")
        exc.expected = context.get("expected_offset", -1)
        exc.actual = -1  # the server's message says it; the answer has no field for it
    if isinstance(exc, e.OffsetOutOfRange):
        exc.stream = context.get("stream", "")
        exc.offset = context.get("offset", -1)
        exc.first = error.first_offset if error.first_offset is not None else -1
        exc.skipped = error.skipped if error.skipped is not None else 0


def transport_error(url: str, exc: BaseException, *, timed_out: bool = False) -> e.Unavailable:
    """The :class:`~eventlog.errors.Unavailable` for a request that got no answer."""
    if timed_out:
        return e.Unavailable(f"the server at {url} did not answer in time", code="timeout")
    detail = str(exc) or type(exc).__name__
    return e.Unavailable(f"cannot reach the server at {url}: {detail}", code="unreachable")


#: The code of :func:`tls_error`.
TLS_FAILED = "tls_failed"


def worth_retrying(error: e.Unavailable) -> bool:
    """Whether asking again may help: not for a closed client or an untrusted certificate."""
    return not isinstance(error, e.LogClosed) and error.code != TLS_FAILED


def tls_error(url: str, exc: BaseException) -> e.Unavailable:
    """The :class:`~eventlog.errors.Unavailable` (code ``tls_failed``) for a server
    certificate the client does not trust: raised at once, a retry cannot fix it."""
    return e.Unavailable(
        f"the server at {url} has a certificate this client does not trust: {exc}"
        " (to trust a private authority: SSL_CERT_FILE=<its PEM file>,"
        " or AsyncClient(..., ssl=<an ssl.SSLContext>))",
        code=TLS_FAILED,
    )


# -- answers ------------------------------------------------------------------------------------

T = TypeVar("T")

#: The code of the error raised for a success answer the client cannot read.
BAD_ANSWER = "unexpected_answer"


def answer(decoder: msgspec.json.Decoder[T], data: bytes, what: str) -> T:
    """Decode a success answer; :class:`~eventlog.errors.EventLogError` (code
    :data:`BAD_ANSWER`) if it is not what the server should have sent."""
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise e.EventLogError(f"unexpected answer to {what}: {exc}", code=BAD_ANSWER) from exc


#: Any JSON value.
ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()

#: Any JSON object.
OBJECT: msgspec.json.Decoder[dict[str, Any]] = msgspec.json.Decoder(dict[str, Any])


class AppendAnswer(msgspec.Struct):
    """``201`` to an append."""

    offsets: list[int]
    written: int = 0
    next_offset: int = 0


class Page(msgspec.Struct):
    """A page of a read."""

    events: list[Event]
    next_offset: int = 0


class StreamList(msgspec.Struct):
    """``GET /api/streams``: each stream as :func:`stream_answer` reads it."""

    streams: list[dict[str, Any]]


class _StoredRetention(msgspec.Struct):
    """A stream's retention as the server shows it: as stored. An older version
    may have stored a limit of another type (on SQLite, a count as a float or as
    text); it is read as it is, as the embedded log reads it, and
    :func:`eventlog.retention.check_retention` tells that it is not in effect."""

    max_age: Any = None
    max_count: Any = None
    max_bytes: Any = None
    protect: Any = True
    max_hold: Any = None


def _stream_info(obj: dict[str, Any], what: str) -> StreamInfo:
    try:
        stored = msgspec.convert(obj.pop("retention", {}), _StoredRetention)
        info = msgspec.convert(obj, StreamInfo)
    except msgspec.ValidationError as exc:
        raise e.EventLogError(f"unexpected answer to {what}: {exc}", code=BAD_ANSWER) from exc
    return msgspec.structs.replace(info, retention=Retention(**msgspec.structs.asdict(stored)))


def stream_answer(data: bytes, what: str) -> StreamInfo:
    """A stream of ``GET /api/streams/{stream}``, its retention as stored (see
    :class:`_StoredRetention`); errors as :func:`answer`'s."""
    return _stream_info(answer(OBJECT, data, what), what)


def streams_answer(data: bytes, what: str) -> list[StreamInfo]:
    """The streams of ``GET /api/streams``, each as :func:`stream_answer` reads it."""
    return [_stream_info(obj, what) for obj in answer(_STREAMS, data, what).streams]


_STREAMS = msgspec.json.Decoder(StreamList)


class ConsumerStream(msgspec.Struct):
    """One stream of ``GET /api/consumers/{name}``."""

    stream: str
    offset: int
    updated: datetime | None = None


class ConsumerDetail(msgspec.Struct):
    """``GET /api/consumers/{name}`` (the fields the client reads)."""

    name: str
    streams: list[ConsumerStream] = []


# -- requests -----------------------------------------------------------------------------------


class _OutEvent(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    type: str
    data: Any = None
    key: str | None = None
    id: str | None = None
    headers: dict[str, str] = {}


_encoder = msgspec.json.Encoder()


def _out(event: NewEvent | Mapping[str, Any]) -> _OutEvent:
    if isinstance(event, NewEvent):
        fields: Mapping[str, Any] = {
            "type": event.type,
            "data": event.data,
            "key": event.key,
            "id": event.id,
            "headers": event.headers,
        }
    else:
        fields = event
    try:
        out = msgspec.convert(fields, _OutEvent)
    except msgspec.ValidationError as exc:
        raise e.InvalidEvent(f"not an event: {exc}") from exc
    if isinstance(out.data, msgspec.Raw) and bytes(out.data) == b"null":
        out.data = None  # the server's default: left out of the body
    if out.id is None:
        # The idempotency key: a retry of this append writes nothing twice.
        out.id = uuid7()
    return out


def append_body(
    events: Sequence[NewEvent | Mapping[str, Any]], *, one: bool = False
) -> tuple[bytes, list[str]]:
    """The JSON to POST for ``events`` and each event's id: an array, or with ``one``
    the single event as an object (its errors then name ``$.type``, as the embedded
    ``append``'s do; a batch's name ``$[0].type``, as ``append_batch``'s do).

    Every event without an ``id`` gets a UUIDv7 here, so resending the same
    bytes after a lost answer appends nothing twice (the server returns the
    original offsets).

    Raises:
        InvalidEvent: An event is not an event (a mapping without ``type``, ...),
            or its data cannot be encoded as JSON.
    """
    if not events:
        raise e.InvalidEvent("a batch needs at least one event")
    out = [_out(event) for event in events]
    try:
        body = _encoder.encode(out[0] if one and len(out) == 1 else out)
    except (TypeError, msgspec.EncodeError) as exc:
        raise e.InvalidEvent(f"data is not JSON-serialisable: {exc}", path="$.data") from exc
    return body, [o.id or "" for o in out]


def encode(value: object) -> bytes:
    """JSON bytes of a request body."""
    return _encoder.encode(value)
