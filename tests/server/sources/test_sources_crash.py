"""Must-show: an NDJSON file tailed into a stream while it grows, rotates and the server dies.

A writer appends 100,000 lines with two rotations (the file renamed away, a
new one started); the server is SIGKILLed three times meanwhile, each time after
it appended more lines, and restarted: just before the first rotation (which so
happens while it is down), between the rotations and after the second (the
writer waits at those lines until the kill). Every line is in the stream once, in
file order: the source's position commits in the same transaction as its appends.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.serverproc import ServerProcess
from tests.support import scaled

LINES = 100_000
CHUNK = 500  # lines per write
PACE = 0.02  # seconds between writes: ~4 s of writing
ROTATE_AT = (33_500, 67_000)  # at write boundaries
#: Where the server is killed: just before the first rotation (which happens while
#: it is down), between the rotations, and after the second.
KILL_AT = (33_500, 50_000, 80_000)


class _Writer(threading.Thread):
    """Appends the lines, rotating the file twice; at each line of :data:`KILL_AT`
    it says so and waits until the server is killed (then goes on while it restarts)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.reached = [threading.Event() for _ in KILL_AT]
        self.killed = [threading.Event() for _ in KILL_AT]

    def run(self) -> None:
        path = self.path
        out = open(path, "ab")  # noqa: SIM115 - reopened at each rotation
        try:
            for first in range(0, LINES, CHUNK):
                if first in KILL_AT:
                    kill = KILL_AT.index(first)
                    self.reached[kill].set()
                    self.killed[kill].wait(scaled(60))
                if first in ROTATE_AT:
                    out.close()
                    path.rename(path.with_name(f"{path.name}.{ROTATE_AT.index(first) + 1}"))
                    out = open(path, "ab")  # noqa: SIM115
                out.write(b"".join(b'{"n":%d}\n' % n for n in range(first, first + CHUNK)))
                out.flush()
                time.sleep(PACE)
        finally:
            out.close()
            for reached in self.reached:  # (a writer that failed wakes the test)
                reached.set()


def _read_all(client: httpx.Client, stream: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    while True:
        page = client.get(
            f"/api/streams/{stream}/events", params={"from": len(events), "limit": 10_000}
        )
        if page.status_code == 404 or not page.json()["events"]:
            return events
        events += page.json()["events"]


def _wait_for_offset(client: httpx.Client, stream: str, offset: int, deadline: float) -> None:
    """Long-poll until the stream holds ``offset`` (or the deadline passes)."""
    while time.monotonic() < deadline:
        page = client.get(
            f"/api/streams/{stream}/events", params={"from": offset, "limit": 1, "wait": 5}
        )
        if page.status_code == 200 and page.json()["events"]:
            return
        if page.status_code != 200:
            time.sleep(0.1)


@pytest.mark.slow
def test_tailed_lines_survive_rotations_and_three_sigkills_exactly_once_in_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.ndjson"
    path.touch()
    config = tmp_path / "eventlog.toml"
    config.write_text(
        f'[[sources]]\nname = "app"\nkind = "ndjson-tail"\npath = "{path}"\nstream = "lines"\n'
    )
    with ServerProcess.start(db=tmp_path / "events.db", extra_args=["--config", str(config)]) as s:
        writer = _Writer(path)
        writer.start()
        with httpx.Client(base_url=s.url, timeout=scaled(30)) as client:
            head = 0
            for reached, killed in zip(writer.reached, writer.killed, strict=True):
                assert reached.wait(scaled(60))
                # Each kill finds a server that has appended since it (re)started.
                _wait_for_offset(client, "lines", head, deadline=time.monotonic() + scaled(60))
                appended, head = head, client.get("/api/streams/lines").json()["next_offset"]
                assert head > appended, "nothing appended since the last restart"
                assert s.kill() == -9
                killed.set()
                s.restart()
            writer.join()
            _wait_for_offset(client, "lines", LINES - 1, deadline=time.monotonic() + scaled(60))
            events = _read_all(client, "lines")
            errors = _read_all(client, "lines.errors")
    assert sorted(p.name for p in tmp_path.glob("app.ndjson*")) == [
        "app.ndjson",
        "app.ndjson.1",
        "app.ndjson.2",
    ]
    numbers = [e["data"]["n"] for e in events]  # type: ignore[index]
    assert len(numbers) == LINES, f"{len(numbers)} lines in the stream"
    assert numbers == list(range(LINES)), "a line is missing, doubled or out of order"
    assert errors == []
    assert os.path.getsize(path) > 0
