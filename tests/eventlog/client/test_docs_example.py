"""docs/examples/client.py prints the same on an embedded log and on a server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.serverthread import ServerThread
from tests.support import scaled

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "client.py"


def run(target: str) -> str:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), target],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    ).stdout


def test_the_example_prints_the_same_embedded_and_remote(tmp_path: Path) -> None:
    embedded = run(str(tmp_path / "demo.db"))
    with ServerThread.start(db=tmp_path / "server.db") as server:
        remote = run(server.url)
    assert remote == embedded
    assert "the same id again: 0\nbatch at offsets [1, 2]" in embedded
    assert "StreamNotFound: stream 'refunds' does not exist" in embedded


def test_the_worker_example_acks_every_event_once(tmp_path: Path) -> None:
    worker = EXAMPLE.parent / "worker.py"
    with ServerThread.start(db=tmp_path / "server.db") as server:
        out = subprocess.run(
            [sys.executable, str(worker), server.url],
            capture_output=True,
            text=True,
            timeout=scaled(60),
            check=True,
        ).stdout
    assert out.splitlines()[-1] == "acked [0, 1, 2, 3, 4, 5]; ack floor 6, pending 0"
    assert out.count("sends mail") == 6
