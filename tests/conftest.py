"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventlog import EventLog


@pytest.fixture
async def sqlite_log(tmp_path: Path) -> AsyncIterator[EventLog]:
    """An open log on a real SQLite file under tmp_path."""
    async with EventLog.open(tmp_path / "events.db") as log:
        yield log


@pytest.fixture
async def memory_log() -> AsyncIterator[EventLog]:
    """An open in-memory log."""
    async with EventLog.open(":memory:") as log:
        yield log
