"""The one exception hierarchy of eventlog.

Every error eventlog raises derives from :class:`EventLogError` and carries a
stable machine-readable :attr:`~EventLogError.code`. Storage backends translate
their driver's exceptions (``sqlite3``, ``asyncpg``) into this tree before they
escape. The server maps codes to HTTP statuses and WebSocket close codes in
one table (``server/errors.py``); routes raise these errors and never pick a
status themselves. The branches are defined here; the leaves that belong to
``consumers`` or ``server`` are defined there (dependencies point server ->
consumers -> eventlog) and are drawn here with their module in brackets.

::

    EventLogError                        code (HTTP status)
    ├── InvalidInput                     invalid_input (400): bad arguments from the caller
    │   ├── InvalidStreamName            invalid_stream_name: not 1-128 of [A-Za-z0-9._-]
    │   ├── InvalidEvent                 invalid_event (422): data not JSON, bad type/key/headers
    │   │   └── EventTooLarge            event_too_large (413): over max_event_bytes
    │   ├── InvalidPosition              invalid_position: negative offset, naive datetime
    │   ├── InvalidParameter             invalid_parameter: a query parameter or option
    │   ├── InvalidField                 validation_error (422): a request field; path names it
    │   │   └── InvalidDelay    [consumers.shared.errors]   invalid_delay: a nack delay
    │   ├── InvalidSchedule              invalid_schedule: a due time malformed or too far
    │   ├── SpecError           [consumers.webhook]         invalid_endpoint (422)
    │   ├── TemplateError       [consumers.notify.template] invalid_template (422)
    │   ├── InvalidTarget       [consumers.delivery.ssrf]   invalid_url (422)
    │   │   └── UnsafeTarget    (also an OSError)           unsafe_target (422)
    │   ├── InvalidSecret       [consumers.delivery.signing] invalid_secret (422)
    │   ├── InvalidRange        [consumers.delivery.replay] invalid_range
    │   ├── InvalidSource       [server.ingest.sources]     invalid_source (422)
    │   ├── SourceError         [server.sources.spec]       invalid_source (422)
    │   ├── PathSyntaxError     [server.ingest.mapping]     invalid_json_path (422)
    │   ├── MappingError        [server.ingest.mapping]     mapping_failed
    │   └── MalformedBody       [server.ingest.pipeline]    malformed_payload
    ├── NotFound                         not_found (404)
    │   ├── StreamNotFound               stream_not_found
    │   ├── ConsumerNotFound             consumer_not_found
    │   ├── ScheduleNotFound             schedule_not_found: no scheduled event with that id
    │   ├── UnknownOffset       [consumers.delivery.replay] offset_not_found
    │   ├── ClaimNotFound       [consumers.shared.errors]   claim_not_found
    │   └── UnknownSource       [server.sources.manager]    unknown_source
    ├── Conflict                         conflict (409)
    │   ├── ExpectedOffsetMismatch       expected_offset_mismatch: the stream head moved
    │   ├── CheckpointMoved              checkpoint_moved: another producer committed first
    │   ├── DeliveryConflict    [consumers.delivery.ledger] delivery_conflict
    │   ├── ConsumerBusy        [consumers.spec]            consumer_busy
    │   ├── ConsumerNotShared   [consumers.shared.errors]   consumer_not_shared
    │   ├── ConsumerConflict    [consumers.shared.errors]   consumer_conflict
    │   ├── ClaimError          [consumers.shared.errors]   claim_expired, claim_not_held,
    │   │                                                   already_acked
    │   ├── ConfigOwned         [server.ingest.store]       source_in_config
    │   └── ConfigOwned         [server.sources.manager]    config_source
    ├── Unauthorized                     unauthorized (401): no or an unknown API key
    │   └── SignatureError      [server.ingest.verify]      bad_signature, missing_signature, ...
    ├── Forbidden                        forbidden (403): the API key may not do this
    ├── QuotaExceeded       [server.quotas]             append_rate_exceeded (429),
    │                                                   storage_quota_exceeded,
    │                                                   connection_quota_exceeded
    ├── OffsetOutOfRange                 offset_out_of_range (416): before the retained range
    ├── Unavailable                      unavailable (503): try again later
    │   ├── LogClosed                    log_closed: the log is closed or closing
    │   ├── FirehoseFull        [consumers.firehose.hub]    too_many_clients
    │   ├── SecretsKeyError     [eventlog.sealed]           secrets_key: no or a wrong secrets key
    │   └── SubscriptionEnded   [consumers.firehose.hub]    slow_client, subscription_ended
    ├── Unsupported                      unsupported (501): the storage backend cannot do this
    ├── StorageError                     storage_error (503): the backend failed
    │   ├── CorruptDatabase              corrupt_database: not a database, or a foreign schema
    │   └── SchemaTooNew                 schema_too_new: written by a newer eventlog
    └── ConfigError             [server.config]             invalid_config: a bad config file

An error's code may be more specific than its class's: the server raises
``NotFound(..., code="unknown_source")``, ``InvalidInput(..., code="body_too_large")``,
``Unavailable(..., code="shutting_down")`` and the like, and looks up the
instance's code first, then its classes' codes, so a new leaf answers like its
branch until it gets a row of its own. ``server/errors.py`` lists every code.
"""

from __future__ import annotations

__all__ = [
    "CheckpointMoved",
    "Conflict",
    "ConsumerNotFound",
    "CorruptDatabase",
    "EventLogError",
    "EventTooLarge",
    "ExpectedOffsetMismatch",
    "Forbidden",
    "InvalidEvent",
    "InvalidField",
    "InvalidInput",
    "InvalidParameter",
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
    "Unauthorized",
    "Unavailable",
    "Unsupported",
]


class EventLogError(Exception):
    """Base class of every error eventlog raises.

    Args:
        message: What went wrong, for people.
        code: A more specific code than the class's (optional).
        path: The JSON path of the request field at fault (optional).
    """

    #: A short stable machine-readable code, used in HTTP error bodies.
    code: str = "eventlog_error"
    #: Where in a request the problem is, as a JSON path (``$.types[0]``), if known.
    json_path: str | None = None
    #: The HTTP status the server answered, when a remote server raised this
    #: error through :mod:`eventlog.client` (None for the embedded log's own).
    http_status: int | None = None
    #: Whole seconds a caller should wait before trying again, when known
    #: (the server sends it as ``Retry-After``).
    retry_after: int | None = None

    def __init__(
        self, message: str = "", *, code: str | None = None, path: str | None = None
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if path is not None:
            self.json_path = path


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
        super().__init__(f"{message} - at `{path}`" if path is not None else message, path=path)
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


class InvalidParameter(InvalidInput):
    """A query parameter or option is malformed or out of range."""

    code = "invalid_parameter"


class InvalidField(InvalidInput):
    """A field of a request body is invalid; :attr:`json_path` names it."""

    code = "validation_error"

    def __init__(self, message: str, *, path: str, code: str | None = None) -> None:
        super().__init__(message, code=code, path=path)


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


class Conflict(EventLogError):
    """The request conflicts with the current state (it exists, or is owned elsewhere)."""

    code = "conflict"


class CheckpointMoved(Conflict):
    """A producer's checkpoint is not what the producer last saw: another one
    (a second process reading the same file) committed first. Reload it."""

    code = "checkpoint_moved"

    def __init__(self, name: str) -> None:
        super().__init__(f"checkpoint {name!r} was moved by another producer")
        self.name = name


class ExpectedOffsetMismatch(Conflict):
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


class Unauthorized(EventLogError):
    """The caller is not identified: no credentials, unknown ones, or a bad signature."""

    code = "unauthorized"


class Forbidden(EventLogError):
    """The caller is identified but not allowed to do this."""

    code = "forbidden"


class Unavailable(EventLogError):
    """The service cannot do this now (starting, shutting down, full); try again later."""

    code = "unavailable"


class LogClosed(Unavailable):
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
