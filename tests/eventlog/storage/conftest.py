"""The storage and log contract suites run behind the suite-wide backend fixture.

``storage`` and ``log`` are ``any_storage`` and ``any_log`` of tests/conftest.py,
parametrised over every backend.
"""

from __future__ import annotations

import pytest

from eventlog import EventLog
from eventlog.storage.base import Storage


@pytest.fixture
def storage(any_storage: Storage) -> Storage:
    """An open, empty storage of each backend."""
    return any_storage


@pytest.fixture
def log(any_log: EventLog) -> EventLog:
    """An open EventLog over each backend."""
    return any_log
