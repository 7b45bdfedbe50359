"""Shared consumers: many workers share one consumer's events (claim, ack, nack, expiry).

Modules: :mod:`~consumers.shared.rules` (the pure rules: who may have which
event, what acks do), :mod:`~consumers.shared.spec` (the declaration and its
store), :mod:`~consumers.shared.consumer` (the pump around the delivery
ledger) with :mod:`~consumers.shared.events` (the events behind its rows),
:mod:`~consumers.shared.model` (claims, the info record),
:mod:`~consumers.shared.manager` (declare, find, delete) and
:mod:`~consumers.shared.errors` (the error codes).
"""

from consumers.shared.consumer import SharedConsumer
from consumers.shared.errors import (
    AlreadyAcked,
    ClaimError,
    ClaimExpired,
    ClaimNotFound,
    ClaimNotHeld,
    ConsumerConflict,
    ConsumerInConfig,
    ConsumerNotShared,
    InvalidDelay,
)
from consumers.shared.manager import SharedConsumers
from consumers.shared.model import Claim, HeldClaim, SharedConsumerInfo, Undelivered
from consumers.shared.spec import SharedSpec

__all__ = [
    "AlreadyAcked",
    "Claim",
    "ClaimError",
    "ClaimExpired",
    "ClaimNotFound",
    "ClaimNotHeld",
    "ConsumerConflict",
    "ConsumerInConfig",
    "ConsumerNotShared",
    "HeldClaim",
    "InvalidDelay",
    "SharedConsumer",
    "SharedConsumerInfo",
    "SharedConsumers",
    "SharedSpec",
    "Undelivered",
]
