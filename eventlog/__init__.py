"""eventlog: an append-only, offset-indexed event log with named consumers.

The public surface; see ``docs/embedded.md`` for a guide.
"""

from eventlog.consumer import Consumer, ResetPolicy
from eventlog.errors import (
    ConsumerNotFound,
    CorruptDatabase,
    EventLogError,
    EventTooLarge,
    ExpectedOffsetMismatch,
    InvalidEvent,
    InvalidInput,
    InvalidPosition,
    InvalidSchedule,
    InvalidStreamName,
    LogClosed,
    NotFound,
    OffsetOutOfRange,
    ScheduleNotFound,
    SchemaTooNew,
    StorageError,
    StreamNotFound,
    Unsupported,
)
from eventlog.holds import Hold, HoldPlan, HoldPolicy, Truncation
from eventlog.log import EventLog, LogConfig
from eventlog.model import (
    BEGINNING,
    END,
    Beginning,
    ConsumerInfo,
    End,
    Event,
    NewEvent,
    Offset,
    Position,
    Retention,
    StreamInfo,
    Time,
    validate_stream_name,
)
from eventlog.schedule import Scheduled, ScheduledEvent, SchedulePage
from eventlog.storage.base import Storage
from eventlog.storage.transactions import OffsetTransaction

__all__ = [
    "BEGINNING",
    "END",
    "Beginning",
    "Consumer",
    "ConsumerInfo",
    "ConsumerNotFound",
    "CorruptDatabase",
    "End",
    "Event",
    "EventLog",
    "EventLogError",
    "EventTooLarge",
    "ExpectedOffsetMismatch",
    "Hold",
    "HoldPlan",
    "HoldPolicy",
    "InvalidEvent",
    "InvalidInput",
    "InvalidPosition",
    "InvalidSchedule",
    "InvalidStreamName",
    "LogClosed",
    "LogConfig",
    "NewEvent",
    "NotFound",
    "Offset",
    "OffsetOutOfRange",
    "OffsetTransaction",
    "Position",
    "ResetPolicy",
    "Retention",
    "ScheduleNotFound",
    "SchedulePage",
    "Scheduled",
    "ScheduledEvent",
    "SchemaTooNew",
    "Storage",
    "StorageError",
    "StreamInfo",
    "StreamNotFound",
    "Time",
    "Truncation",
    "Unsupported",
    "validate_stream_name",
]
