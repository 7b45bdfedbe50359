"""The errors of shared consumers (leaves of :mod:`eventlog.errors`' one tree).

Each has a stable code (``/api/consumers/{name}/...`` answers with it;
``server/errors.py`` maps it to the status):

======================  ======  ===============================================
code                    status  when
======================  ======  ===============================================
``consumer_not_shared`` 409     claim/ack/... on a consumer that is not shared
``consumer_conflict``   409     re-declaring a shared consumer on another stream, taking
                                the name of a consumer that is not shared, seeking one, or
                                replaying its parked events (it has no handler)
``consumer_in_config``  409     changing or deleting one declared in the config file
``claim_not_found``     404     a claim id never issued (or malformed)
``claim_expired``       409     the claim's ``ack_wait`` passed, or it was nacked
``claim_not_held``      409     the claim was issued to another worker
``already_acked``       409     the claim was acked before
``invalid_delay``       422     a nack delay below 0, above 86,400 s or not a number
======================  ======  ===============================================
"""

from __future__ import annotations

from eventlog.errors import Conflict, InvalidField, NotFound

__all__ = [
    "AlreadyAcked",
    "ClaimError",
    "ClaimExpired",
    "ClaimNotFound",
    "ClaimNotHeld",
    "ConsumerConflict",
    "ConsumerInConfig",
    "ConsumerNotShared",
    "InvalidDelay",
]


class ConsumerNotShared(Conflict):
    """The consumer exists but is not a shared consumer."""

    code = "consumer_not_shared"


class ConsumerConflict(Conflict):
    """A shared consumer is declared again with a spec that may not change (its stream),
    declared under the name of a consumer that is not shared, seeked, or asked to replay
    its parked events (no handler runs it)."""

    code = "consumer_conflict"


class ConsumerInConfig(ConsumerConflict):
    """The shared consumer is declared in the config file: change it there."""

    code = "consumer_in_config"


class ClaimNotFound(NotFound):
    """No such claim: never issued, malformed, or of another consumer."""

    code = "claim_not_found"


class ClaimError(Conflict):
    """A claim that exists but cannot be acked, nacked or extended now."""


class ClaimExpired(ClaimError):
    """The claim's ``ack_wait`` passed (or it was nacked): the event may be with another worker."""

    code = "claim_expired"


class ClaimNotHeld(ClaimError):
    """The claim was issued to another worker."""

    code = "claim_not_held"


class AlreadyAcked(ClaimError):
    """The claim was acked before (a double ack)."""

    code = "already_acked"


class InvalidDelay(InvalidField):
    """A nack delay that is not a number of seconds in ``[0, 86400]``."""

    code = "invalid_delay"
