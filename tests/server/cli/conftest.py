"""Helpers of the CLI tests: run the real ``eventlog`` console script as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import msgspec
import pytest

from tests import forked
from tests.serverthread import ServerThread
from tests.support import scaled

EVENTLOG = str(Path(sys.executable).parent / "eventlog")
"""The installed console script, as a user runs it."""


def default_sigint() -> None:
    """For ``Popen(preexec_fn=...)``: the child starts with SIGINT at its default, as
    from a terminal, also where the tests run with it ignored (a background job or
    nohup: an ignored SIGINT is inherited through exec, and Python keeps ignoring it,
    as a background program should)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop_with(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> int:
    """Send ``sig`` to ``proc``; its exit code. If it has not ended within ``timeout``
    seconds, fail with the child's signal state (``/proc``) as it was before the signal
    and the test worker's blocked signals: what a hang under load needs to be told apart.
    """
    status = Path(f"/proc/{proc.pid}/status").read_text()
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        before = [line for line in status.splitlines() if line.startswith("Sig")]
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        raise AssertionError(
            f"{proc.args!r} did not end within {timeout} s of {sig.name}; its signal "
            f"state before: {before}; blocked in the test worker: {blocked}"
        ) from None


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without inherited ``EVENTLOG_*`` settings (the scale excepted)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EVENTLOG_") or k == "EVENTLOG_TEST_TIMEOUT_SCALE"
    }
    env.update(extra or {})
    return env


def eventlog(
    *args: str,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run ``eventlog ARGS`` to completion; text stdout/stderr."""
    data = input.encode() if isinstance(input, str) else input
    # `python -m server.cli` is the console script's code; forked, it skips the
    # interpreter start-up (tests/forked.py). test_serve_process runs the script itself.
    proc = forked.run("server.cli", args, input=data, env=cli_env(env), timeout=scaled(timeout))
    return forked.text(proc)


def lines_json(stdout: str) -> list[dict[str, object]]:
    """Each stdout line decoded as a JSON object."""
    return [msgspec.json.decode(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A path for a database file under tmp_path (not created yet)."""
    return tmp_path / "events.db"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One real ``eventlog serve`` per test module; tests use distinct stream names."""
    path = tmp_path_factory.mktemp("server") / "events.db"
    with ServerThread.start(db=path) as proc:
        yield proc
