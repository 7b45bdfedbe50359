"""Event id generation: UUIDv7 (RFC 9562), time-ordered so ids index well."""

from __future__ import annotations

import os
import time

__all__ = ["uuid7"]

_last_ms = 0
_seq = 0
_prefix = ""
_suffixes: list[str] = []
_SEQ = [f"7{i:03x}-" for i in range(0x1000)]  # version nibble, then the counter
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # variant 10 + 2 random bits
_time_ns = time.time_ns


def _random_suffixes() -> list[str]:
    # One urandom call and one comprehension serve 512 ids: formatting each
    # id's random part on its own costs several times more.
    h = os.urandom(8 * 512).hex()
    v = _VARIANT
    return [f"{v[h[i]]}{h[i + 1 : i + 4]}-{h[i + 4 : i + 16]}" for i in range(0, len(h), 16)]


def _forget_after_fork() -> None:
    # A forked child must not hand out the random parts its parent also holds.
    global _suffixes
    _suffixes = []


os.register_at_fork(after_in_child=_forget_after_fork)


def uuid7() -> str:
    """A new UUIDv7 as its canonical 36-character string.

    48 bits of Unix milliseconds, then a 12-bit counter that keeps ids made
    within one millisecond in order, then 62 bits from the OS's CSPRNG.
    """
    global _last_ms, _seq, _prefix, _suffixes
    ms = _time_ns() // 1_000_000
    if ms > _last_ms:
        _last_ms = ms
        _seq = 0
        _prefix = "%08x-%04x-" % (ms >> 16, ms & 0xFFFF)  # noqa: UP031 - once per millisecond
    else:
        _seq += 1
        if _seq > 0xFFF:  # counter exhausted: borrow the next millisecond
            _last_ms += 1
            _seq = 0
            _prefix = "%08x-%04x-" % (_last_ms >> 16, _last_ms & 0xFFFF)  # noqa: UP031
    if not _suffixes:
        _suffixes = _random_suffixes()
    return _prefix + _SEQ[_seq] + _suffixes.pop()
