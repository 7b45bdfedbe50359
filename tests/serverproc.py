"""Run ``eventlog serve`` as a real subprocess on a loopback port, for tests.

::

    from tests.serverproc import ServerProcess

    with ServerProcess.start(db=tmp_path / "events.db") as server:
        httpx.get(f"{server.url}/api/streams")       # server.url = "http://127.0.0.1:<port>"
        server.ws_url                                 # "ws://127.0.0.1:<port>"
        code = server.stop()                          # SIGTERM, waits, returns the exit code
    # leaving the block stops it (SIGTERM, then SIGKILL if it hangs)

API:

* ``ServerProcess.start(db=None, extra_args=(), env=None, ready_timeout=None, tls=None)``:
  start the server and return once ``GET /readyz`` answers 200. ``db``
  defaults to a fresh file in a temp directory; ``extra_args`` are appended to
  ``eventlog serve`` (e.g. ``["--config", str(path)]``); ``env`` adds or
  overrides environment variables (inherited ``EVENTLOG_*`` variables are
  dropped, except ``EVENTLOG_TEST_TIMEOUT_SCALE``). Raises
  :class:`ServerFailed` (with the server's output) if it exits or is not
  ready in time. ``ready_timeout`` defaults to ``scaled(30)``. ``tls`` (a
  client :class:`ssl.SSLContext` that trusts the server's certificate) makes
  the process speak HTTPS: pass the server its ``--ssl-certfile`` and
  ``--ssl-keyfile`` in ``extra_args``; ``.url`` and ``.ws_url`` then say
  ``https://`` and ``wss://`` and the readiness check verifies the certificate.
* ``.url``, ``.ws_url``, ``.port``, ``.db``, ``.pid``, ``.proc`` (the Popen).
* ``.stop(timeout=None) -> int``: SIGTERM, wait (default ``scaled(20)``),
  SIGKILL if still alive; returns the exit code (0 on a graceful shutdown).
* ``.kill() -> int``: SIGKILL now (a crash); returns the exit code (-9).
* ``.connections() -> int``: established TCP connections the server holds on
  its port (a client's request has been accepted once this counts it).
* ``.output() -> str``: everything the server wrote to stdout/stderr so far
  (request log lines included).
* ``.restart(extra_args=None, env=None)``: stop, then start again on the same
  db and port. Returns self.

The first start binds port 0 (``--port 0``): the kernel picks a free port and
the helper reads it from the server's own "Uvicorn running on" line, so two
tests (or two engineers) can never race for one port. A restart asks for the
same port again; if another process took it meanwhile, the start fails with
the server's bind error rather than talking to someone else's server.
* Context manager: ``with ServerProcess.start(...) as s:`` stops it on exit.

The pytest fixture ``server`` in ``tests/server/conftest.py`` wraps this for
the common case.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, Self, TypeVar

import httpx
import psutil

from eventlog.closing import Closing
from tests import forked
from tests.support import POLL_INTERVAL, Server, scaled, terminate

__all__ = ["EVENTLOG", "ServerFailed", "ServerProcess", "db_path", "launched", "run_cli"]

ROOT = Path(__file__).resolve().parent.parent

#: uvicorn's start-up line, with the port it bound (the real one when asked for 0).
_RUNNING = re.compile(rb"Uvicorn running on https?://127\.0\.0\.1:(\d+)")


class _Launchable(Protocol):
    def _launch(self, ready_timeout: float | None) -> None: ...
    def close(self) -> None: ...


L = TypeVar("L", bound=_Launchable)


def db_path(db: str | Path | None) -> tuple[str, tempfile.TemporaryDirectory[str] | None]:
    """``db``; or, when None, an ``events.db`` in a new temporary directory (returned too:
    the caller cleans it up)."""
    if db is not None:
        return str(db), None
    tmp = tempfile.TemporaryDirectory(prefix="eventlog-test-")
    return str(Path(tmp.name) / "events.db"), tmp


def launched(server: L, ready_timeout: float | None) -> L:
    """``server`` once its ``_launch`` returned; closed again if starting failed."""
    try:
        server._launch(ready_timeout)
    except BaseException:
        server.close()
        raise
    return server


class ServerFailed(RuntimeError):
    """The server process exited early or never became ready."""


class ServerProcess(Closing):
    """One ``eventlog serve`` subprocess. Use :meth:`start`."""

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.db, self._tmp = db_path(db)
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.port = port or 0  # 0 until the first start binds one
        self.tls = tls
        self.proc: forked.Forked | None = None
        fd, log_name = tempfile.mkstemp(prefix="eventlog-server-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log_name)

    @classmethod
    def start(
        cls,
        db: str | Path | None = None,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_timeout: float | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> ServerProcess:
        """Start a server and wait until ``/readyz`` answers 200."""
        return launched(cls(db, extra_args=extra_args, env=env, tls=tls), ready_timeout)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` with ``tls``)."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>`` (``wss://`` with ``tls``)."""
        scheme = "wss" if self.tls is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def _command(self) -> list[str]:
        # `python -m server.cli.serve serve ...`: the `eventlog serve` command, without the
        # rest of the CLI, forked from the preloaded server of tests/forked.py.
        return [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            self.db,
            *self.extra_args,
        ]

    def _environ(self) -> dict[str, str]:
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("EVENTLOG_") or k == "EVENTLOG_TEST_TIMEOUT_SCALE"
        }
        environ["PYTHONUNBUFFERED"] = "1"
        environ.update(self.env)
        return environ

    def _launch(self, ready_timeout: float | None) -> None:
        launched_at = self._log_path.stat().st_size  # this launch's output starts here
        self.proc = forked.start(
            "server.cli.serve",
            self._command(),
            env=self._environ(),
            cwd=ROOT,
            stdout=self._log_path,
        )
        deadline = time.monotonic() + (ready_timeout or scaled(30))
        bound = False
        verify: ssl.SSLContext | bool = self.tls if self.tls is not None else True
        with httpx.Client(timeout=scaled(2), verify=verify) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise ServerFailed(f"server exited with {code}:\n{self.output()}")
                # Probe only once this process has said which port it bound:
                # before that, the port may belong to someone else.
                if not bound and (port := self._bound_port(launched_at)) is not None:
                    self.port, bound = port, True
                try:
                    if bound and client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise ServerFailed(f"server not ready in time:\n{self.output()}")
                time.sleep(POLL_INTERVAL)

    def _bound_port(self, launched_at: int) -> int | None:
        """The port of this launch's "Uvicorn running on" line, if written yet."""
        try:
            with open(self._log_path, "rb") as f:
                f.seek(launched_at)
                match = _RUNNING.search(f.read())
        except OSError:
            return None
        return int(match.group(1)) if match else None

    def connections(self) -> int:
        """Established TCP connections the server process holds on its port."""
        return sum(
            1
            for c in psutil.Process(self.pid).net_connections(kind="tcp")
            if c.laddr and c.laddr.port == self.port and c.status == psutil.CONN_ESTABLISHED
        )

    def output(self) -> str:
        """What the server has written to stdout and stderr so far."""
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM and wait for a graceful exit (SIGKILL after ``timeout``); the exit code."""
        if self.proc is None:
            return 0
        terminate(self.proc, timeout if timeout is not None else scaled(20))
        return self.proc.wait()

    def kill(self) -> int:
        """SIGKILL the server now (a crash); the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def restart(
        self, extra_args: Sequence[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Self:
        """Stop (gracefully) and start again on the same db and port."""
        self.stop()
        if extra_args is not None:
            self.extra_args = list(extra_args)
        if env is not None:
            self.env = dict(env)
        self._launch(None)
        return self

    def close(self) -> None:
        """Stop the server and remove its temp files."""
        self.stop()
        self._log_path.unlink(missing_ok=True)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


#: The ``eventlog`` console script of this virtualenv.
EVENTLOG = str(Path(sys.executable).with_name("eventlog"))


async def run_cli(server: Server, *args: str) -> tuple[int, str, str]:
    """Run ``eventlog ARGS --url <server>``: its exit code, stdout and stderr (30 s at most).

    ``python -m server.cli`` (the console script's code), forked (tests/forked.py).
    """
    argv = [*args, "--url", server.url]
    proc = await asyncio.to_thread(forked.run, "server.cli", argv, timeout=scaled(30))
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()
