"""Helpers shared by the benchmark scenarios: payloads, raw-sqlite3 baselines, timing,
free ports and server subprocesses."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

if TYPE_CHECKING:
    from eventlog import EventLog

from eventlog.ids import uuid7
from eventlog.storage.sqlite import MIGRATIONS
from eventlog.storage.sqlite_schema import PAGE_SIZE

__all__ = [
    "best_of",
    "concurrent_singles",
    "eventlog_serve",
    "free_port",
    "payload",
    "raw_connection",
    "receiver_process",
    "scratch_dir",
    "server_process",
    "timed",
]

ROOT = Path(__file__).resolve().parent.parent


def serve_on_argv_port(app: Any, **options: Any) -> None:
    """Serve ``app`` on 127.0.0.1, port ``sys.argv[1]``, as every bench receiver runs:
    uvloop, httptools, no access log; ``options`` go to :func:`uvicorn.run`."""
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        **options,
    )


def payload(i: int) -> dict[str, object]:
    """A ~200-byte JSON event payload."""
    return {
        "order_id": f"ord-{i:010d}",
        "customer": {"id": i % 9973, "tier": "gold", "country": "DE"},
        "items": [{"sku": "sku-123456", "qty": 2, "price": 1999}, {"sku": "sku-654321", "qty": 1}],
        "total": 5997,
        "currency": "EUR",
        "note": "x" * 24,
    }


async def concurrent_singles(
    log: EventLog, producers: int, per_producer: int
) -> tuple[float, float]:
    """Events/s of ``producers`` tasks each awaiting ``per_producer`` single appends to
    ``log``, and the events per transaction the group commit made of them."""
    data = payload(0)

    async def producer() -> None:
        for _ in range(per_producer):
            await log.append("s", data, type="order.created")

    start = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(producers)))
    elapsed = time.perf_counter() - start
    stats = log.writer_stats
    return producers * per_producer / elapsed, stats["events_written"] / max(
        stats["transactions"], 1
    )


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary directory on the same disk as the project (not tmpfs)."""
    root = Path(__file__).resolve().parent / "out"
    root.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def raw_connection(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A stdlib sqlite3 connection on eventlog's own schema and page size, WAL, given sync mode.

    The baselines write the same rows into the same tables and indexes as
    eventlog does, so the ratio measures eventlog's own overhead.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    for statements in MIGRATIONS:
        for statement in statements:
            conn.execute(statement)
    return conn


def raw_row(
    stream: str, offset: int, data: bytes, now_us: int, event_id: str | None = None
) -> tuple[object, ...]:
    """One events row as eventlog stores it (a new UUIDv7 unless ``event_id`` is given)."""
    return (stream, offset, event_id or uuid7(), "order.created", None, now_us, None, data)


INSERT = (
    "INSERT INTO events (stream, offset, id, type, key, time_us, headers, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

encode = msgspec.json.encode


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of fn takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(runs: int, fn: Callable[[], float]) -> float:
    """The best (highest) rate of several runs: the least disturbed by neighbours."""
    return max(fn() for _ in range(runs))


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server subprocess told which port to bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventlog_serve(db: str | Path, port: int, *, access_log: bool = False) -> list[str]:
    """The command of an ``eventlog serve`` on ``db`` (a file or a PostgreSQL URL)."""
    cmd = [sys.executable, "-m", "server.cli.serve", "serve", "--port", str(port), "--db", str(db)]
    return cmd if access_log else [*cmd, "--no-access-log"]


def receiver_process(
    module: str, *args: str, post_timeout: float = 1.0
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m module PORT *args`` (a webhook receiver) on a free port, once it
    answers a POST; the process and the port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, str(port), *args])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/", content=b"{}", timeout=post_timeout)
            return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the receiver {module} did not start")


@contextmanager
def server_process(command: list[str], port: int, log: Path) -> Iterator[str]:
    """Start a server subprocess, wait until it answers, stop it (SIGTERM) afterwards."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{log.read_text()}")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
