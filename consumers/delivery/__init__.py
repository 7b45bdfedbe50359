"""The HTTP delivery engine shared by webhooks and notifications.

Modules: :mod:`~consumers.delivery.signing` (Standard Webhooks),
:mod:`~consumers.delivery.retry` (schedules, ``Retry-After``, the outcome
table), :mod:`~consumers.delivery.ssrf` (target checks),
:mod:`~consumers.delivery.ledger` (the ``LedgerStore`` protocol),
:mod:`~consumers.delivery.memory_ledger`, :mod:`~consumers.delivery.sqlite_ledger` and
:mod:`~consumers.delivery.postgres_ledger`, :mod:`~consumers.delivery.stores`
(which ledger for which log), :mod:`~consumers.delivery.sender` (pooled
aiohttp), :mod:`~consumers.delivery.kinds` (target kinds),
:mod:`~consumers.delivery.feeder`, :mod:`~consumers.delivery.dispatcher`,
:mod:`~consumers.delivery.health`, :mod:`~consumers.delivery.recorder`,
:mod:`~consumers.delivery.replay` and :mod:`~consumers.delivery.engine` (the
workers; its docstring describes the target-kind extension point).
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
