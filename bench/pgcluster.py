"""A throwaway PostgreSQL cluster started from the machine's binaries.

``initdb`` into a temporary directory, ``postgres`` on a free loopback port
(and a Unix socket in the same directory), stopped and deleted at the end.
PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` OS user (``runuser``). The benchmarks start one with fsync on;
the tests' fixtures (``tests/pg.py``) one with fsync off.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.common import free_port

__all__ = ["RUN_AS", "PgCluster", "find_bin_dir"]

#: The OS user the server runs as when we are root.
RUN_AS = "postgres"


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None if not installed.

    Looks on PATH, then in Debian's ``/usr/lib/postgresql/<version>/bin`` (newest first).
    """
    initdb = shutil.which("initdb")
    if initdb is not None:
        real = Path(initdb).resolve().parent
        if (real / "postgres").exists():
            return real
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    return None


class _PortTaken(Exception):
    """Another process bound the port between its choice and the server's bind."""


class PgCluster:
    """One running PostgreSQL server in a temporary directory.

    Args:
        bin_dir: Where ``initdb`` and ``postgres`` live.
        fsync: Keep PostgreSQL's fsync on (benchmarks) or off (tests: faster,
            and durability across power loss is not what tests check).
        timeout_scale: Multiplies every wait for the server (slow machines).
    """

    def __init__(self, bin_dir: Path, *, fsync: bool = False, timeout_scale: float = 1.0) -> None:
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.timeout_scale = timeout_scale
        self.port = 0
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._db_counter = itertools.count(1)
        self._as_root = os.geteuid() == 0

    # -- process ---------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        if self._as_root:
            return ["runuser", "-u", RUN_AS, "--", *args]
        return list(args)

    def start(self) -> None:
        """initdb and start the server; return once it accepts connections."""
        self.dir = Path(tempfile.mkdtemp(prefix="eventlog-pg-"))
        if self._as_root:
            user = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        data = self.dir / "data"
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            cwd=self.dir,
        )
        atexit.register(self.stop)
        # PostgreSQL cannot bind port 0 and say which port it got: take a free
        # one, and another if someone took it before the server bound it.
        for attempt in range(5):
            self.port = free_port()
            try:
                self._launch()
                return
            except _PortTaken:
                if attempt == 4:
                    raise

    def _launch(self) -> None:
        assert self.dir is not None
        data = self.dir / "data"
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
        }
        args = [str(self.bin_dir / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        log_path = self.dir / "server.log"
        with open(log_path, "ab") as log:
            launched_at = log.tell()
            self._proc = subprocess.Popen(
                self._cmd(*args),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.dir,
            )
        deadline = time.monotonic() + 30 * self.timeout_scale
        while not self._ready():
            if self._proc.poll() is not None:
                self._proc = None
                with open(log_path, "rb") as log:
                    log.seek(launched_at)
                    if b"Address already in use" in log.read():
                        raise _PortTaken
                raise RuntimeError(f"postgres exited at start-up:\n{self.server_log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postgres did not start within 30 s")
            time.sleep(0.02)

    def pause(self) -> None:
        """Stop the server (fast shutdown) but keep its data and port for :meth:`resume`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._signal(proc, signal.SIGINT)  # fast shutdown
            proc.wait(timeout=30 * self.timeout_scale)

    def resume(self) -> None:
        """Start a paused server again on the same port."""
        self._launch()

    def restart(self) -> None:
        """Stop and start again on the same port: every client connection is
        dropped, as in a real restart."""
        self.pause()
        self.resume()

    def _ready(self) -> bool:
        # This server's own word, not whoever answers on the port: the status
        # line of its postmaster.pid says "ready" once it accepts connections.
        if self.dir is None:
            return False
        with contextlib.suppress(OSError):
            lines = (self.dir / "data" / "postmaster.pid").read_text().splitlines()
            return len(lines) >= 8 and lines[3] == str(self.port) and lines[7].strip() == "ready"
        return False

    def server_log(self) -> str:
        """The server's log so far (for failure messages)."""
        if self.dir is None:
            return ""
        with contextlib.suppress(OSError):
            return (self.dir / "server.log").read_text(errors="replace")
        return ""

    def _postmaster_pid(self) -> int | None:
        if self.dir is None:
            return None
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        return None

    def _signal(self, proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # Signal the postmaster itself (runuser would die of SIGQUIT and leave
        # it running); the whole group only as a last resort.
        pid = self._postmaster_pid()
        with contextlib.suppress(ProcessLookupError):
            if pid is not None:
                os.kill(pid, sig)
            else:
                os.killpg(proc.pid, sig)

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and delete its directory. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # SIGQUIT: immediate shutdown; the cluster is thrown away anyway.
            self._signal(proc, signal.SIGQUIT)
            try:
                proc.wait(timeout=20 * self.timeout_scale)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.dir is not None:
            self._remove(self.dir)
            self.dir = None

    def _remove(self, folder: Path) -> None:
        """Delete the stopped cluster's directory (the tests' subclass does it detached)."""
        shutil.rmtree(folder, ignore_errors=True)

    # -- databases ---------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of a database on this server (TCP, loopback)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, prefix: str = "t") -> str:
        """Create a new empty database; return its URL."""
        name = f"{prefix}{next(self._db_counter)}_{os.getpid()}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        finally:
            await conn.close()
        return self.url(name)
