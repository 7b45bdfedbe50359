"""The runnable examples of docs/consumers.md print what the page says they print.

Run again on the same file, an example says it needs a new one instead of hanging or crashing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import scaled

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / name), str(tmp_path / "e.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_parking_example_parks_the_bad_event_and_replays_it(tmp_path: Path) -> None:
    out = run_example("parking.py", tmp_path).splitlines()
    assert out[0] == "handled offsets: [0, 2]"
    assert "'parked-offset': '1'" in out[1]
    assert "'parked-attempts': '3'" in out[1]
    assert out[2:] == ["replayed 1, 0 still parked", "handled offsets: [0, 2, 1]"]


def test_retention_holds_example_keeps_then_trims_and_says_so(tmp_path: Path) -> None:
    out = run_example("retention_holds.py", tmp_path).splitlines()
    assert out == [
        "deleted 2 - first retained: 2",
        "held by ledger: 4 events from offset 2",
        "two hours later: deleted 4",
        "system: retention.hold_expired 4 events lost",
        "ledger resumes at 6 - consumer ledger lost offsets 2-5 of 'orders' to retention "
        "(4 events skipped; first retained 6, resuming at 6)",
    ]


def test_exactly_once_example_writes_rows_with_the_offset(tmp_path: Path) -> None:
    out = run_example("exactly_once.py", tmp_path).splitlines()
    assert out == ["rows: [(0, 10), (1, 25), (2, 7)]", "committed offset: 3"]


def test_shared_example_spreads_the_work_and_keeps_each_keys_order(tmp_path: Path) -> None:
    out = run_example("shared.py", tmp_path).splitlines()
    assert out == ["ann: [0, 2, 4]", "bob: [1, 3, 5]", "committed offset: 6"]


@pytest.mark.parametrize(
    "name", ["parking.py", "exactly_once.py", "retention_holds.py", "outbox.py"]
)
def test_example_run_again_on_its_database_says_it_needs_a_new_file(
    name: str, tmp_path: Path
) -> None:
    run_example(name, tmp_path)  # the documented run, on a new file
    again = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / name), str(tmp_path / "e.db")],
        capture_output=True,
        text=True,
        timeout=scaled(30),  # parking.py and exactly_once.py used to wait here forever
    )
    assert again.returncode == 1
    assert again.stderr == f"{tmp_path / 'e.db'} exists: this example needs a new database file\n"
