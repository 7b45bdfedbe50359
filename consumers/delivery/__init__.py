"""The HTTP delivery engine shared by webhooks and notifications.

Modules: :mod:`~consumers.delivery.machine` (one endpoint's delivery state
and decisions, sans-I/O) and :mod:`~consumers.delivery.machine_rules` (the
row transitions), :mod:`~consumers.delivery.pump` (runs a machine),
:mod:`~consumers.delivery.engine` (the endpoints and their pumps; its
docstring describes the target-kind extension point),
:mod:`~consumers.delivery.feeder`, :mod:`~consumers.delivery.recorder`,
:mod:`~consumers.delivery.replay`, :mod:`~consumers.delivery.signing`
(Standard Webhooks), :mod:`~consumers.delivery.retry` (schedules,
``Retry-After``, the outcome table), :mod:`~consumers.delivery.ssrf`,
:mod:`~consumers.delivery.sender` (pooled aiohttp),
:mod:`~consumers.delivery.kinds` (target kinds), the ledger
(:mod:`~consumers.delivery.ledger`, the ``LedgerStore`` protocol, with
memory, SQLite and PostgreSQL implementations) and
:mod:`~consumers.delivery.stores` (which ledger for which log).
"""

from consumers.delivery.engine import (
    DeliveryEngine,
    OutgoingRequest,
    ReplayResult,
    TargetKind,
    UnknownOffset,
    ledger_for,
)
from consumers.delivery.ledger import DeliveryConflict, LedgerStore
from consumers.delivery.memory_ledger import MemoryLedger
from consumers.delivery.model import Attempt, Delivery, Endpoint, SecretEntry
from consumers.delivery.retry import AttemptResult, Classification, RetryPolicy, classify
from consumers.delivery.sender import Sender
from consumers.delivery.ssrf import InvalidTarget, UnsafeTarget

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
    "UnknownOffset",
    "UnsafeTarget",
    "classify",
    "ledger_for",
]
