"""Deterministic, visible truncation within a chat platform's size limits (sans-I/O).

Lengths are counted in UTF-16 code units, as the platforms' (JavaScript)
validators count them: more than ``len`` for emoji. A cut text ends with a
marker saying how much was left out, e.g. ``… [+1234 chars]``.
"""

from __future__ import annotations

__all__ = ["fit", "units"]


def units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _prefix(text: str, budget: int) -> str:
    """The longest prefix of ``text`` of at most ``budget`` UTF-16 units (never half a pair)."""
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > budget:
            return text[:i]
    return text


def fit(text: str, limit: int) -> str:
    """``text`` if it fits ``limit`` UTF-16 units, else its start plus ``… [+N chars]``.

    ``N`` counts the characters (code points) left out. Limits too small for
    a marker cut without one.
    """
    if units(text) <= limit:
        return text
    widest = f"… [+{len(text)} chars]"
    if units(widest) >= limit:
        return _prefix(text, limit)
    kept = _prefix(text, limit - units(widest)).rstrip()
    return f"{kept}… [+{len(text) - len(kept)} chars]"
