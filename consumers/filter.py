"""Which events a consumer wants: the one filter dialect of eventlog (sans-I/O).

Handler consumers, the firehose (WebSocket and SSE), webhooks and
notifications all select events with :class:`EventFilter`: a list of **type
patterns** (an event passes if its type matches any of them; no patterns:
every type) and an optional **key pattern** (an event passes only if it has a
key and the key matches). Both kinds of pattern use one dialect, that of
:func:`fnmatch.fnmatchcase`:

==========  ===========================================================
``*``       any run of characters, dots included, also none (``order.*``
            matches ``order.created`` and ``order.line.added``)
``?``       exactly one character
``[abc]``   one of the characters; ``[!abc]`` one not among them;
            ``[*]`` a literal ``*``
anything    itself; matching is case-sensitive and covers the whole type
else        or key (``order`` does not match ``orders``)
==========  ===========================================================

A pattern without ``*``, ``?`` or ``[`` is an exact match, so ``key=k1``
means the key ``k1``. A type pattern is 1-256 characters without whitespace
or control characters; a key pattern 1-1024 characters without control
characters. Bad patterns raise :class:`~eventlog.errors.InvalidInput`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from eventlog.encoding import MAX_KEY_LENGTH, MAX_TYPE_LENGTH
from eventlog.errors import InvalidInput

__all__ = ["EventFilter", "Typed", "check_key_pattern", "check_type_pattern"]

_WILDCARDS = frozenset("*?[")


class Typed(Protocol):
    """Anything with an event's ``type`` and ``key`` (an :class:`~eventlog.Event`, a frame)."""

    @property
    def type(self) -> str: ...

    @property
    def key(self) -> str | None: ...


T = TypeVar("T", bound=Typed)


def _control(c: str) -> bool:
    return ord(c) < 32 or ord(c) == 127


def check_type_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a valid type pattern.

    Raises:
        InvalidInput: Empty, over 256 characters, whitespace or control characters.
    """
    if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_TYPE_LENGTH:
        raise InvalidInput(f"a type pattern is 1-{MAX_TYPE_LENGTH} characters, got {pattern!r}")
    if any(c.isspace() or _control(c) for c in pattern):
        raise InvalidInput(
            f"type pattern {pattern!r} must not contain whitespace or control characters"
        )
    return pattern


def check_key_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a valid key pattern.

    Raises:
        InvalidInput: Empty, over 1024 characters, or control characters.
    """
    if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_KEY_LENGTH:
        raise InvalidInput(f"key must be 1-{MAX_KEY_LENGTH} characters")
    if any(_control(c) for c in pattern):
        raise InvalidInput("key must not contain control characters")
    return pattern


def _compile(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class EventFilter:
    """Type patterns (any of them) and a key pattern, in the dialect of this module.

    An empty filter passes everything; :attr:`everything` lets a hot loop
    skip per-event checks.

    Args:
        types: Type patterns; empty passes every type.
        key: A key pattern, or None for any key (and events without one).

    Raises:
        InvalidInput: A pattern breaks the rules in the module docstring.
    """

    __slots__ = ("_key_re", "_type_re", "everything", "key", "types")

    def __init__(self, types: Iterable[str] = (), key: str | None = None) -> None:
        self.types = tuple(check_type_pattern(p) for p in types)
        self.key = None if key is None else check_key_pattern(key)
        self._type_re = _compile(self.types) if self.types else None
        wild = key is not None and not _WILDCARDS.isdisjoint(key)
        self._key_re = _compile([key]) if wild and key is not None else None
        self.everything = self._type_re is None and key is None

    def __repr__(self) -> str:
        return f"EventFilter(types={list(self.types)!r}, key={self.key!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventFilter):
            return NotImplemented
        return (self.types, self.key) == (other.types, other.key)

    def __hash__(self) -> int:
        return hash((self.types, self.key))

    def matches(self, event: Typed) -> bool:
        """True if the event passes: its type matches a pattern and its key the key pattern."""
        if self.key is not None:
            key = event.key
            if key is None:
                return False
            if self._key_re is None:
                if key != self.key:
                    return False
            elif self._key_re.match(key) is None:
                return False
        return self._type_re is None or self._type_re.match(event.type) is not None

    def select(self, events: Sequence[T]) -> Sequence[T]:
        """The events that pass, in order (``events`` itself when the filter passes all)."""
        if self.everything:
            return events
        return [e for e in events if self.matches(e)]
