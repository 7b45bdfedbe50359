"""The HTTP delivery engine shared by webhooks and notifications.

Start with :mod:`~consumers.delivery.machine` (one endpoint's delivery, as a
sans-I/O state machine), :mod:`~consumers.delivery.pump` (what runs it) and
:mod:`~consumers.delivery.engine` (the endpoints and their pumps) and
:mod:`~consumers.delivery.kinds` (the target-kind extension point);
``docs/architecture.md`` maps the rest.
"""

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.kinds import OutgoingRequest, TargetKind, TargetRefused
from consumers.delivery.ledger import DeliveryConflict, LedgerStore
from consumers.delivery.model import Attempt, Delivery, Endpoint, SecretEntry
from consumers.delivery.replay import ReplayResult, UnknownOffset
from consumers.delivery.retry import AttemptResult, Classification, RetryPolicy, classify
from consumers.delivery.sender import Sender
from consumers.delivery.sqlite_ledger import MemoryLedger
from consumers.delivery.ssrf import InvalidTarget, UnsafeTarget
from consumers.delivery.stores import ledger_for

__all__ = [
    "Attempt",
    "AttemptResult",
    "Classification",
    "Delivery",
    "DeliveryConflict",
    "DeliveryEngine",
    "Endpoint",
    "InvalidTarget",
    "LedgerStore",
    "MemoryLedger",
    "OutgoingRequest",
    "ReplayResult",
    "RetryPolicy",
    "SecretEntry",
    "Sender",
    "TargetKind",
    "TargetRefused",
    "UnknownOffset",
    "UnsafeTarget",
    "classify",
    "ledger_for",
]
