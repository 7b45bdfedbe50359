"""The public surface: complete exports, typed packages, the documented example runs."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import consumers
import eventlog
from eventlog import EventLog, InvalidInput
from tests.support import assert_imports_none_of, scaled

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", [eventlog, consumers])
def test_all_lists_every_public_name_and_nothing_missing(package: object) -> None:
    exported = set(package.__all__)  # type: ignore[attr-defined]
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == exported
    for name in exported:
        assert getattr(package, name) is not None


@pytest.mark.parametrize("package", ["eventlog", "consumers", "server"])
def test_packages_ship_py_typed(package: str) -> None:
    assert (ROOT / package / "py.typed").exists()


def test_eventlog_imports_without_server_or_consumers() -> None:
    assert_imports_none_of(
        "eventlog, eventlog.storage.sqlite, eventlog.storage.memory",
        ("server", "consumers", "starlette"),
    )


def test_unknown_open_option_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown log option"):
        EventLog.open("x.db", flush_every=3)


def test_documented_embedded_example_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "embedded.py"), str(tmp_path / "e.db")],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    )
    assert "idempotent retry: 1 == 1" in result.stdout
    assert "batch offsets [2, 3]" in result.stdout
    assert "conflict: stream 'orders': expected next offset 4, but it is 5" in result.stdout
    assert "receipt for {'order_id': 43}" in result.stdout
