"""A consumer kind for tests, loaded by import path (``tests.consumers.poison_kind:make``).

It refuses any batch holding an event whose data has ``"poison": true`` until
the file named by the ``fixed`` option exists; every batch it takes is copied,
as the events' original offsets, to the stream named by the ``out`` option.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from consumers import Handler
from eventlog import Event, EventLog, NewEvent


def make(log: EventLog, options: dict[str, Any]) -> Handler:
    """Build the handler from ``options["fixed"]`` (a path) and ``options["out"]`` (a stream)."""
    fixed = Path(options["fixed"])
    out = str(options["out"])

    async def handle(events: list[Event]) -> None:
        poisoned = any(json.loads(bytes(e.data)).get("poison") for e in events)
        if poisoned and not fixed.exists():
            raise ValueError("cannot digest this")
        await log.append_batch(out, [NewEvent(type="handled", data=e.offset) for e in events])

    return handle
