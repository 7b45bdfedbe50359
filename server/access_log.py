"""Request log lines: one per HTTP request on the ``eventlog.access`` logger, as
JSON or ``key=value`` (``log_format``), and the buffered writer ``eventlog serve``
sends them through.

The pure helpers (:func:`format_line`, :func:`access_line`) are tested without
a server.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, TextIO

import msgspec

__all__ = ["BufferedLineWriter", "access_line", "format_line", "log_access"]

access_log = logging.getLogger("eventlog.access")


def log_access(line: str) -> None:
    """Log one request line on the ``eventlog.access`` logger at INFO."""
    access_log.info(line)


def access_line(
    fmt: str,
    *,
    method: str,
    path: str,
    route: str,
    status: int,
    ms: float,
    cid: str,
    client: str,
    at: float | None = None,
) -> str:
    """One request's log line: :func:`format_line`'s, with ``ms`` to two decimals,
    made faster: only the path can need quoting (method, route, correlation id
    and client are tokens by construction). ``at``: a ``time.perf_counter()``
    reading taken as the request ended, which saves reading the clock again."""
    if fmt == "json":
        return format_line(
            {
                "time": _utc_second(at),
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "ms": round(ms, 2),
                "cid": cid,
                "client": client,
            },
            fmt,
        )
    shown = _kv_paths.get(path)
    if shown is None:
        shown = path
        if _PLAIN.fullmatch(path) is None or not path.isprintable():
            shown = _json_encode(path).decode()
        if len(_kv_paths) >= _KV_PATHS:
            _kv_paths.clear()
        _kv_paths[path] = shown
    return (
        f"time={_utc_second(at)} method={method} path={shown} route={route} "
        f"status={status} ms={ms:.2f} cid={cid} client={client}"
    )


#: Paths as a ``kv`` line shows them (quoted when needed): clients append to and
#: read the same few streams over and over, so most lines find theirs here.
_kv_paths: dict[str, str] = {}
_KV_PATHS = 4096


class BufferedLineWriter:
    """Writes log lines to a stream in one write per ``interval`` seconds.

    The access log writes a line per request; going through :mod:`logging`
    (a record, a handler lock, a flush per line) cost about as much as the
    request itself, and a write per event-loop turn still cost a system call
    every few requests. Lines are queued and written and flushed together
    ``interval`` seconds after the first of them (at once past
    ``max_lines``, or when :meth:`flush` is called, as the server does on exit).
    """

    def __init__(self, stream: TextIO, *, interval: float = 0.05, max_lines: int = 4096) -> None:
        self.stream = stream
        self.interval = interval
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= self.max_lines:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)
            except RuntimeError:  # no loop (shutdown): write now
                self.flush()

    def flush(self) -> None:
        """Write and flush every queued line."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            lines, self._lines = self._lines, []
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed or broken stream must not fail requests
                pass


def format_line(fields: Mapping[str, Any], fmt: str) -> str:
    """One log line: a JSON object, or ``key=value`` pairs (values quoted when needed)."""
    if fmt == "json":
        return _json_encode(fields).decode()
    parts = []
    for key, value in fields.items():
        text = value if isinstance(value, str) else str(value)
        if _PLAIN.fullmatch(text) is None or not text.isprintable():
            text = _json_encode(text).decode()
        parts.append(f"{key}={text}")
    return " ".join(parts)


_PLAIN = re.compile(r'[^\s"=\\]+')
_json_encode = msgspec.json.Encoder().encode


_second = (0, "")
#: ``time.time() - time.perf_counter()``, measured again each new second.
_wall_offset = time.time() - time.perf_counter()


def _utc_second(at: float | None = None) -> str:
    """The current UTC time to the second, RFC 3339 (formatted once per second).

    ``at`` is a ``time.perf_counter()`` reading of now: the wall clock is
    then only read when the second seems to have changed (reading it costs as
    much as the rest of a log line on some virtual machines).
    """
    global _second, _wall_offset
    now = int(time.time() if at is None else at + _wall_offset)
    if now != _second[0]:
        if at is not None:  # the wall clock may have been set since: measure again
            _wall_offset = time.time() - time.perf_counter()
            now = int(at + _wall_offset)
        _second = (now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
    return _second[1]
