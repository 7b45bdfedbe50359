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
_VARIANT_BITS = bytes((b & 0x3F) | 0x80 for b in range(256))  # byte -> 10xxxxxx
_BATCH = 512
_time_ns = time.time_ns


def _random_suffixes() -> list[str]:
    """The random tails (``"vxxx-xxxxxxxxxxxx"``) of the next 512 ids.

    One ``os.urandom`` call and a handful of C-level slice copies lay out all
    512 tails in one buffer; formatting each id's random part on its own costs
    several times more.
    """
    raw = bytearray(os.urandom(8 * _BATCH))
    raw[0::8] = raw[0::8].translate(_VARIANT_BITS)  # RFC 9562 variant: the first hex digit is 8-b
    digits = raw.hex().encode()  # 16 hex digits per id
    out = bytearray(b"-" * (17 * _BATCH))
    for k in range(16):  # digit k of every id goes to column k (after the dash: k + 1)
        out[k + (k >= 4) :: 17] = digits[k::16]
    text = out.decode()
    return [text[i : i + 17] for i in range(0, 17 * _BATCH, 17)]


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
