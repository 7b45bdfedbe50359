"""Event id generation: UUIDv7 (RFC 9562), time-ordered so ids index well."""

from __future__ import annotations

import os
import time

__all__ = ["uuid7"]

_last_ms = 0
_seq = 0
_pool = b""
_pos = 0
_POOL_BYTES = 8 * 512  # one urandom call serves 512 ids


def uuid7() -> str:
    """A new UUIDv7 as its canonical 36-character string.

    48 bits of Unix milliseconds, then a 12-bit counter that keeps ids made
    within one millisecond in order, then 62 bits from the OS's CSPRNG.
    """
    global _last_ms, _seq, _pool, _pos
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        _seq += 1
        if _seq > 0xFFF:  # counter exhausted: borrow the next millisecond
            _last_ms += 1
            _seq = 0
        ms = _last_ms
    else:
        _last_ms = ms
        _seq = 0
    if _pos >= len(_pool):
        _pool = os.urandom(_POOL_BYTES)
        _pos = 0
    rand = int.from_bytes(_pool[_pos : _pos + 8], "big")
    _pos += 8
    return "%08x-%04x-%04x-%04x-%012x" % (  # noqa: UP031 - one formatting op is fastest
        ms >> 16,
        ms & 0xFFFF,
        0x7000 | _seq,
        0x8000 | (rand >> 50),  # variant 10, then 14 random bits
        rand & 0xFFFF_FFFF_FFFF,
    )
