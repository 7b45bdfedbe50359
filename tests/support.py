"""Shared test helpers: scalable timeouts, free ports."""

from __future__ import annotations

import os
import socket

__all__ = ["free_port", "scaled"]

#: Multiply every test timeout by EVENTLOG_TEST_TIMEOUT_SCALE on slow machines.
TIMEOUT_SCALE = float(os.environ.get("EVENTLOG_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    """A timeout in the suite's one scalable unit."""
    return seconds * TIMEOUT_SCALE


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for subprocess servers that cannot use port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
