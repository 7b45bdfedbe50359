"""Shared test helpers: scalable timeouts, free ports, stored events."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

import msgspec

from eventlog import Event

__all__ = ["free_port", "scaled", "stored_event"]

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


def stored_event(data: bytes = b"{}", **fields: Any) -> Event:
    """An :class:`~eventlog.Event` as a read returns it, with raw JSON ``data``.

    Defaults: stream ``s``, offset 0, id ``x``, type ``t``, 2026-01-01 UTC;
    ``fields`` override them (``key``, ``headers`` too).
    """
    defaults: dict[str, Any] = {
        "stream": "s",
        "offset": 0,
        "id": "x",
        "type": "t",
        "time": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return Event(**(defaults | fields), data=msgspec.Raw(data))
