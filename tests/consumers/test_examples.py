"""The runnable examples of docs/consumers.md print what the page says they print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
