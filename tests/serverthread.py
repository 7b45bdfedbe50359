"""Run the eventlog server on a real uvicorn in a thread of the test process, for tests.

::

    from tests.serverthread import ServerThread

    with ServerThread.start(db=tmp_path / "events.db") as server:
        httpx.get(f"{server.url}/api/streams")       # server.url = "http://127.0.0.1:<port>"

The app, its settings and uvicorn's are built as ``eventlog serve`` builds
them (:func:`server.config.load_config`, :func:`server.serve.log_config_for`,
:func:`server.app.create_app`, :func:`server.serve.uvicorn_config`);
uvicorn binds port 0 and the helper reads the port from the bound socket, so
no two servers race for a port.
Starting one costs a few milliseconds instead of a Python process start-up
(~0.5-2.5 s on a shared machine).

Use :class:`tests.serverproc.ServerProcess` instead when a test needs the
process itself: SIGTERM and its exit code, SIGKILL, the process's own output
format, its memory, or a client that outlives a restart of another process.

API (the subset of :class:`~tests.serverproc.ServerProcess` that a thread can keep):

* ``ServerThread.start(db=None, config=None, env=None, ready_timeout=None)``:
  ``config`` is a TOML file (as ``--config``), ``env`` the ``EVENTLOG_*``
  settings (the test process's own environment is not read). Raises
  :class:`tests.serverproc.ServerFailed` with the reason if start-up fails.
* ``.url``, ``.ws_url``, ``.port``, ``.db``; ``.log``, the server's
  :class:`~eventlog.EventLog` (e.g. ``server.log.heads.parked(stream)`` says
  a long-poll has parked).
* ``.stop() -> int``: a graceful shutdown (long-polls end, the log is
  flushed and closed); 0 when the server stopped cleanly.
* ``.output() -> str``: the log records (level, logger, message) and request
  lines written while it ran.
* ``.restart(env=None)``: stop, then start again on the same db and port.
* Context manager: stops it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette

from eventlog import EventLog, EventLogError
from eventlog.closing import Closing
from eventlog.log import storage_for
from eventlog.sealed import SecretsKeyError
from server.app import create_app
from server.config import ConfigError, load_config
from server.secrets import secret_box
from server.serve import log_config_for, uvicorn_config
from server.tls import uvicorn_tls_options
from tests.serverproc import ServerFailed, db_path, launched
from tests.support import scaled, wait_until_sync

__all__ = ["ServerThread"]


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, remembering its loop so another thread can stop it."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


class _Capture(logging.Handler):
    """Every log record of the process while a server runs, as one line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines
        self.setFormatter(logging.Formatter("level=%(levelname)s logger=%(name)s msg=%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


_capturing = 0  # servers running: the root logger stays at INFO while any is
_saved_level = logging.WARNING


class ServerThread(Closing):
    """One eventlog server on uvicorn in a daemon thread. Use :meth:`start`."""

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        config: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.db, self._tmp = db_path(db)
        self.config = None if config is None else str(config)
        self.env = dict(env or {})
        self.port = 0
        self._lines: list[str] = []
        self._capture = _Capture(self._lines)
        self._server: _Uvicorn | None = None
        self._app: Starlette | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    @classmethod
    def start(
        cls,
        db: str | Path | None = None,
        *,
        config: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float | None = None,
    ) -> ServerThread:
        """Start a server and return once it listens and its lifespan has started."""
        return launched(cls(db, config=config, env=env), ready_timeout)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>``."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log(self) -> EventLog:
        """The log the server serves (read it; the server's thread writes it)."""
        assert self._app is not None, "not started"
        log: EventLog = self._app.state.log
        return log

    def _launch(self, ready_timeout: float | None) -> None:
        flags = {"host": "127.0.0.1", "port": self.port, "db": self.db}
        try:
            config = load_config(file=self.config, environ=self.env, flags=flags)
            tls = uvicorn_tls_options(config)
            secrets = secret_box(config)
            log_config = log_config_for(config)
            log = EventLog(storage_for(config.db, log_config), log_config)
        except (ConfigError, EventLogError, SecretsKeyError) as exc:
            raise ServerFailed(f"invalid configuration: {exc}") from exc
        app = create_app(
            log, config, manage_log=True, access_sink=self._lines.append, secrets=secrets
        )
        server = self._server = _Uvicorn(uvicorn_config(app, config, tls))
        self._app, self._stopping = app, app.state.stopping
        self._start_capture()
        self._thread = threading.Thread(target=server.run, name="eventlog-server", daemon=True)
        self._thread.start()
        thread = self._thread
        wait_until_sync(
            lambda: server.started or not thread.is_alive(),
            ready_timeout or 30,
            what="server start-up",
        )
        if not server.started:
            thread.join(scaled(20))
            self._stop_capture()
            raise ServerFailed(f"server did not start:\n{self.output()}")
        self.port = int(server.servers[0].sockets[0].getsockname()[1])

    def output(self) -> str:
        """The log records and request lines written while the server ran."""
        return "\n".join(self._lines)

    def stop(self, timeout: float | None = None) -> int:
        """Shut down gracefully and wait; 0 if the server stopped in time, else 1."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None or thread is None:
            return 0
        server.should_exit = True
        if server.loop is not None and self._stopping is not None:
            # Long-polls and firehose clients wait on this: as SIGTERM does in serve.
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                server.loop.call_soon_threadsafe(self._stopping.set)
        thread.join(timeout if timeout is not None else scaled(20))
        self._stop_capture()
        return 1 if thread.is_alive() else 0

    def restart(self, env: Mapping[str, str] | None = None) -> Self:
        """Stop (gracefully) and start again on the same db and port."""
        self.stop()
        if env is not None:
            self.env = dict(env)
        self._launch(None)
        return self

    def _start_capture(self) -> None:
        global _capturing, _saved_level
        root = logging.getLogger()
        if _capturing == 0:
            _saved_level = root.level
            root.setLevel(logging.INFO)
        _capturing += 1
        root.addHandler(self._capture)

    def _stop_capture(self) -> None:
        global _capturing
        root = logging.getLogger()
        if self._capture not in root.handlers:
            return
        root.removeHandler(self._capture)
        _capturing -= 1
        if _capturing == 0:
            root.setLevel(_saved_level)

    def close(self) -> None:
        """Stop the server and remove its temp files."""
        self.stop()
        self._stop_capture()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
