"""Python child processes forked from a preloaded server, not started from scratch.

Crash tests start dozens of child processes (servers, writers, consumers) to
SIGKILL them; a new interpreter spends about half a second importing
eventlog, asyncio, asyncpg, uvicorn and the rest before it does anything, more
on a busy machine. :func:`start` forks the child from a multiprocessing
forkserver that imported those modules once per test worker. The child is still
its own OS process: its own pid, connections, file descriptors and signal
handlers, killed by a real SIGKILL, its exit code reported as ``Popen`` reports
one (negative for a signal). Only the interpreter start-up is skipped.

The child runs ``python -m MODULE ARGS`` as its ``__main__`` (``runpy``) with
the given environment and working directory, stdin from a file or /dev/null,
and stdout and stderr written to files (the caller reads them)::

    child = forked.start("tests.eventlog.crash_child", [db], stdout=tmp_path / "out")
    child.wait_for_line(b"ready", scaled(30))
    child.kill()
    child.wait()                        # -9
    child.output()                      # what it printed before it died
"""

from __future__ import annotations

import io
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

__all__ = ["Forked", "run", "start", "text"]

#: What the forkserver imports once, so that no child pays for it.
PRELOAD = [
    "asyncpg",
    "aiosqlite",
    "httpx",
    "uvicorn",
    "eventlog",
    "eventlog.client",
    "eventlog.storage.postgres",
    "eventlog.storage.sqlite",
    "consumers",
    "server.app",
    "server.cli",
    "server.cli.main",
    "server.cli.serve",
    # The command modules server.cli.main registers (a name that is gone is skipped).
    "server.cli.client",
    "server.cli.migrate",
    "server.cli.notify",
    "server.cli.schedules",
    "server.cli.secrets",
    "server.cli.sources",
    "server.cli.transfer",
    "server.cli.targets",
    "server.cli.webhooks",
]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _redirect(fd: int, path: str, flags: int) -> None:
    target = os.open(path, flags, 0o600)
    os.dup2(target, fd)
    os.close(target)


def _writer(fd: int) -> io.TextIOWrapper:
    # Line-buffered text over a buffered binary stream (flushed at exit, as Python's are).
    raw = io.BufferedWriter(io.FileIO(fd, "w", closefd=False))
    return io.TextIOWrapper(raw, encoding="utf-8", line_buffering=True)


def _child(
    module: str,
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    stdin: str,
    stdout: str,
    stderr: str,
) -> None:
    """The forked child: become ``python -m module argv`` and run it."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _redirect(0, stdin, os.O_RDONLY)
    _redirect(1, stdout, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    _redirect(2, stderr, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    sys.stdout = _writer(1)
    sys.stderr = _writer(2)
    sys.argv = [module, *argv]
    # As under `python -m`, the module runs as __main__ only, not also under its name.
    sys.modules.pop(module, None)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class Forked:
    """A forked child, with the part of :class:`subprocess.Popen` that tests use."""

    def __init__(self, process: BaseProcess, args: list[str], stdout: Path) -> None:
        self._process = process
        self.args = args
        self.stdout = stdout
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        pid = self._process.pid
        assert pid is not None
        return pid

    def poll(self) -> int | None:
        """The exit code if the child has ended, else None."""
        if self.returncode is None:
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to end; its exit code (``TimeoutExpired`` after ``timeout``)."""
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def output(self) -> bytes:
        """What the child has written to its stdout file so far."""
        return self.stdout.read_bytes()

    def wait_for_line(self, line: bytes, timeout: float) -> None:
        """Wait until the child wrote ``line`` (a whole line) to stdout; fail if it ended."""
        deadline = time.monotonic() + timeout
        while line not in self.output().splitlines():
            if self.poll() is not None:
                raise AssertionError(
                    f"{self.args} exited with {self.returncode}: {self.output()!r}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.args} wrote no {line!r} within {timeout} s")
            time.sleep(0.005)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child, unless it has ended."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


def start(
    module: str,
    argv: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: str | Path | None = None,
    stdout: str | Path = os.devnull,
    stderr: str | Path | None = None,
) -> Forked:
    """Fork ``python -m module argv`` from the preloaded server and return it running.

    ``env`` replaces the environment (default: this process's); ``stderr``
    defaults to ``stdout``'s file.
    """
    args = [module, *argv]
    Path(stdout).touch()
    process = _context.Process(
        target=_child,
        args=(
            module,
            list(argv),
            dict(os.environ if env is None else env),
            str(cwd or os.getcwd()),
            str(stdin or os.devnull),
            str(stdout),
            str(stderr or stdout),
        ),
        # Daemonic: a child a test failed to stop is terminated when the test
        # worker exits, rather than joined (which would hang the worker).
        daemon=True,
    )
    process.start()
    return Forked(process, args, Path(stdout))


def run(
    module: str,
    argv: Sequence[str] = (),
    *,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``python -m module argv`` to completion, as :func:`subprocess.run` with
    ``capture_output=True``: its exit code, stdout and stderr (``TimeoutExpired``
    after ``timeout``, the child killed)."""
    with tempfile.TemporaryDirectory(prefix="eventlog-forked-") as tmp:
        stdin, stdout, stderr = (Path(tmp) / name for name in ("stdin", "stdout", "stderr"))
        stdin.write_bytes(input or b"")
        child = start(module, argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)
        try:
            code = child.wait(timeout)
        finally:
            child.kill()
            child.wait()
        return subprocess.CompletedProcess(
            child.args, code, stdout.read_bytes(), stderr.read_bytes()
        )


def text(proc: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[str]:
    """``proc`` with stdout and stderr decoded (``subprocess.run(text=True)``'s shape)."""
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )
