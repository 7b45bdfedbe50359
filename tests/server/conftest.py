"""Fixtures of the server tests: a real ``eventlog serve`` subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """``eventlog serve`` on a free loopback port over ``tmp_path/events.db``."""
    with ServerProcess.start(db=tmp_path / "events.db") as proc:
        yield proc
