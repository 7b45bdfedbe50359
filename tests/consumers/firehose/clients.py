"""Real clients for the firehose tests: the ``websocat`` binary, appends over HTTP, metrics."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import msgspec

from eventlog.closing import Closing
from tests.support import Server, scaled, terminate, wait_until_sync

__all__ = ["WEBSOCAT", "Websocat", "append", "gauge", "wait_for_gauge"]

WEBSOCAT = str(Path(__file__).resolve().parents[3] / ".venv" / "bin" / "websocat")


class Websocat(Closing):
    """``websocat -n <url>`` as a subprocess; its stdout lines arrive on a queue.

    ``-n`` (no close on stdin EOF) lets it read with stdin at /dev/null, the
    way a script runs it; ``-B`` allows large frames (``batch=``).
    """

    def __init__(self, url: str, headers: Sequence[str] = ()) -> None:
        args = [WEBSOCAT, "-n", "-B", str(4 << 20)]
        for header in headers:
            args.append(f"--header={header}")
        self.proc = subprocess.Popen(
            [*args, url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read(self, count: int, timeout: float = 20.0) -> list[Any]:
        """The next ``count`` lines, each decoded as one JSON value."""
        deadline = time.monotonic() + scaled(timeout)
        out: list[Any] = []
        while len(out) < count:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"websocat gave {len(out)} of {count} lines") from None
            if line is None:
                raise AssertionError(f"websocat ended after {len(out)} lines: {self.stderr()}")
            out.append(msgspec.json.decode(line))
        return out

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for websocat to exit; its exit code."""
        return self.proc.wait(scaled(timeout))

    def stderr(self) -> str:
        """What websocat wrote to stderr (once it has exited)."""
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        """Stop websocat (by its pid)."""
        terminate(self.proc, scaled(5))
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def append(
    client: httpx.Client,
    stream: str,
    count: int,
    *,
    types: Sequence[str] = ("order.created",),
    payload: int = 0,
    batch: int = 1000,
    headers: dict[str, str] | None = None,
) -> list[int]:
    """Append ``count`` events over HTTP in batches; their offsets.

    Event ``i`` of the call gets type ``types[i % len(types)]`` and data
    ``{"i": i, "pad": "x" * payload}``.
    """
    offsets: list[int] = []
    pad = "x" * payload
    for start in range(0, count, batch):
        body = [
            {"type": types[i % len(types)], "data": {"i": i, "pad": pad}}
            for i in range(start, min(start + batch, count))
        ]
        r = client.post(f"/api/streams/{stream}/events", json=body, headers=headers)
        assert r.status_code == 201, r.text
        offsets += r.json()["offsets"]
    return offsets


def gauge(server: Server, name: str, labels: str = "") -> float:
    """The value of one metric sample from ``/metrics`` (0 if absent)."""
    text = httpx.get(f"{server.url}/metrics", timeout=scaled(5)).text
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_for_gauge(
    server: Server, name: str, labels: str, value: float, timeout: float = 10.0
) -> None:
    """Poll ``/metrics`` until the sample equals ``value``."""
    wait_until_sync(
        lambda: gauge(server, name, labels) == value, timeout, what=f"{name}{labels} == {value}"
    )
