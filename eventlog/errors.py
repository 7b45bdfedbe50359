"""The one exception hierarchy of eventlog.

Every error the log raises derives from :class:`EventLogError`. Storage
backends translate their driver's exceptions (``sqlite3``, ``asyncpg``) into
this tree before they escape; the server maps it to HTTP status codes and
WebSocket close codes in one place.

::

    EventLogError
    ├── InvalidInput                     bad arguments from the caller (HTTP 4xx)
    │   ├── InvalidStreamName            name not 1-128 of [A-Za-z0-9._-], alphanumeric first
    │   ├── InvalidEvent                 data not JSON, bad type/key/headers, empty batch
    │   │   └── EventTooLarge            over the configured max_event_bytes
    │   ├── InvalidPosition              negative offset, naive datetime, unknown reset policy
    │   └── InvalidSchedule              a due time malformed or beyond the schedule horizon
    ├── NotFound
    │   ├── StreamNotFound
    │   ├── ConsumerNotFound
    │   └── ScheduleNotFound             no scheduled event with that stream and id
    ├── ExpectedOffsetMismatch           optimistic concurrency: the stream head moved
    ├── CheckpointMoved                  another producer committed the same checkpoint first
    ├── OffsetOutOfRange                 position before the retained range (retention)
    ├── LogClosed                        the log is closed or closing
    ├── Unsupported                      the storage backend cannot do this
    └── StorageError                     the backend failed
        ├── CorruptDatabase              not a database, or a foreign schema
        └── SchemaTooNew                 written by a newer eventlog than this one
"""

from __future__ import annotations

__all__ = [
    "CheckpointMoved",
    "ConsumerNotFound",
    "CorruptDatabase",
    "EventLogError",
    "EventTooLarge",
    "ExpectedOffsetMismatch",
    "InvalidEvent",
    "InvalidInput",
    "InvalidPosition",
    "InvalidSchedule",
    "InvalidStreamName",
    "LogClosed",
    "NotFound",
    "OffsetOutOfRange",
    "ScheduleNotFound",
    "SchemaTooNew",
    "StorageError",
    "StreamNotFound",
    "Unsupported",
]


class EventLogError(Exception):
    """Base class of every error eventlog raises."""

    #: A short stable machine-readable code, used in HTTP error bodies.
    code: str = "eventlog_error"


class InvalidInput(EventLogError, ValueError):
    """The caller passed something the log cannot accept."""

    code = "invalid_input"


class InvalidStreamName(InvalidInput):
    """A stream name is not 1-128 characters of ``[A-Za-z0-9._-]`` starting alphanumeric."""

    code = "invalid_stream_name"


class InvalidEvent(InvalidInput):
    """An event cannot be appended: data not UTF-8 JSON, bad field, empty batch.

    Attributes:
        path: Where the bad value is, as a JSON path over the append
            (``$.data`` for one event, ``$[3].data`` in a batch), when known.
    """

    code = "invalid_event"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{message} - at `{path}`" if path is not None else message)
        self.path = path


class EventTooLarge(InvalidEvent):
    """An event is larger than the log's ``max_event_bytes``."""

    code = "event_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"event is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class InvalidPosition(InvalidInput):
    """A read or seek position is malformed (negative offset, naive datetime, ...)."""

    code = "invalid_position"


class InvalidSchedule(InvalidInput):
    """A scheduled append's due time is malformed, naive, or beyond the log's horizon."""

    code = "invalid_schedule"


class NotFound(EventLogError, LookupError):
    """Something named does not exist."""

    code = "not_found"


class StreamNotFound(NotFound):
    """The stream has never been appended to (or was deleted)."""

    code = "stream_not_found"

    def __init__(self, stream: str) -> None:
        super().__init__(f"stream {stream!r} does not exist")
        self.stream = stream


class ConsumerNotFound(NotFound):
    """No consumer of that name has committed an offset."""

    code = "consumer_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"consumer {name!r} does not exist")
        self.name = name


class ScheduleNotFound(NotFound):
    """No event with that id is waiting in the stream's schedule (never
    scheduled, cancelled, or already appended)."""

    code = "schedule_not_found"

    def __init__(self, stream: str, event_id: str) -> None:
        super().__init__(f"no scheduled event {event_id!r} waits for stream {stream!r}")
        self.stream = stream
        self.id = event_id


class CheckpointMoved(EventLogError):
    """A producer's checkpoint is not what the producer last saw: another one
    (a second process reading the same file) committed first. Reload it."""

    code = "checkpoint_moved"

    def __init__(self, name: str) -> None:
        super().__init__(f"checkpoint {name!r} was moved by another producer")
        self.name = name


class ExpectedOffsetMismatch(EventLogError):
    """``expected_offset`` was given and the stream's next offset is different."""

    code = "expected_offset_mismatch"

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r}: expected next offset {expected}, but it is {actual}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class OffsetOutOfRange(EventLogError):
    """A position lies before the first retained offset of a stream."""

    code = "offset_out_of_range"

    def __init__(self, stream: str, offset: int, first: int) -> None:
        skipped = max(first - offset, 0)
        super().__init__(
            f"stream {stream!r}: offset {offset} is before the first retained offset {first} "
            f"({skipped} events removed by retention)"
        )
        self.stream = stream
        self.offset = offset
        self.first = first
        #: Events between ``offset`` and ``first`` that retention removed.
        self.skipped = skipped


class LogClosed(EventLogError):
    """The log is closed, or closing and no longer accepting work."""

    code = "log_closed"


class Unsupported(EventLogError):
    """The storage backend cannot do what was asked (e.g. offset transactions in memory)."""

    code = "unsupported"


class StorageError(EventLogError):
    """The storage backend failed; the message says how."""

    code = "storage_error"


class CorruptDatabase(StorageError):
    """The database file is not a database, or holds a schema that is not eventlog's."""

    code = "corrupt_database"


class SchemaTooNew(StorageError):
    """The database was written by a newer eventlog; refusing to touch it."""

    code = "schema_too_new"

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"database schema version {found} is newer than this eventlog supports "
            f"({supported}); upgrade eventlog"
        )
        self.found = found
        self.supported = supported
