"""Shared plumbing of the client commands: connection options, the runner, stdin, progress.

Every client command takes the same connection options (``--url``,
``--api-key``, or ``--db``), runs one coroutine against a
:class:`~server.cli.backend.Backend`, and turns what went wrong into an exit
code and one clear line on stderr:

* 0: success (also when the reader of stdout went away, e.g. ``| head``);
* 1: the server or the log refused, or could not be reached;
* 2: a usage error (argparse, a bad JSON argument or input line, a bad stream name);
* 130: interrupted by Ctrl-C (``tail`` exits 0 instead: Ctrl-C is how it ends).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, BinaryIO

from eventlog.closing import Closing
from server.cli.backend import Backend, CliError
from server.cli.events import InputError, LineSplitter

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = [
    "DEFAULT_URL",
    "IntermixedParser",
    "Meter",
    "add_url_option",
    "connection_options",
    "discard_stdout",
    "open_backend",
    "read_lines",
    "run",
    "warn",
    "write_out",
]

DEFAULT_URL = "http://127.0.0.1:7432"

Command = Callable[[argparse.Namespace, Backend], Awaitable[int]]


def add_url_option(parser: argparse._ActionsContainer) -> None:
    """``--url``: the server's base URL (env ``EVENTLOG_URL``, default :data:`DEFAULT_URL`)."""
    parser.add_argument(
        "--url",
        default=os.environ.get("EVENTLOG_URL", DEFAULT_URL),
        help="server base URL (env EVENTLOG_URL; default %(default)s)",
    )


def connection_options() -> argparse.ArgumentParser:
    """A parent parser with ``--url``, ``--api-key`` and ``--db`` for every client command."""
    parent = argparse.ArgumentParser(add_help=False)
    where = parent.add_mutually_exclusive_group()
    add_url_option(where)
    where.add_argument(
        "--db",
        metavar="PATH",
        help="work on this SQLite database file in-process instead of a server",
    )
    parent.add_argument(
        "--api-key",
        default=os.environ.get("EVENTLOG_API_KEY"),
        help="API key, sent as 'Authorization: Bearer KEY' (env EVENTLOG_API_KEY)",
    )
    return parent


class IntermixedParser(argparse.ArgumentParser):
    """A parser whose optional positionals may come after options.

    Plain argparse binds ``append STREAM [JSON]`` positionals in one go, so
    ``append s --type t '{"n":1}'`` would leave the JSON unrecognised. Set a
    sub-parser's class to this one to parse it the intermixed way.
    """

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixing:  # parse_known_intermixed_args calls back into us
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def warn(message: str) -> None:
    """One line on stderr, prefixed like argparse's messages."""
    print(f"eventlog: {message}", file=sys.stderr, flush=True)


@asynccontextmanager
async def open_backend(args: argparse.Namespace, *, must_exist: bool) -> AsyncIterator[Backend]:
    """The backend the options name: ``--db`` (in-process) or ``--url`` (HTTP)."""
    # Imported here: a command pays only for the backend it uses.
    if args.db is not None:
        from server.cli.db import DbBackend

        async with DbBackend(args.db, must_exist=must_exist) as db:
            yield db
    else:
        if not str(args.url).startswith(("http://", "https://")):
            raise CliError(f"--url must start with http:// or https://, not {args.url!r}", 2)
        from server.cli.http import HttpBackend

        async with HttpBackend(args.url, args.api_key) as http:
            yield http


async def _main(args: argparse.Namespace, command: Command, must_exist: bool) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    # SIGTERM ends a command like Ctrl-C does: cancel, close the log, exit.
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with open_backend(args, must_exist=must_exist) as backend:
            return await command(args, backend)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def run(
    args: argparse.Namespace, command: Command, *, must_exist: bool, interrupted: int = 130
) -> int:
    """Run ``command`` and map every outcome to an exit code (see the module docstring)."""
    try:
        return asyncio.run(_main(args, command, must_exist))
    except CliError as exc:
        _flush_quietly()
        warn(f"error: {exc.message}")
        return exc.exit_code
    except InputError as exc:
        _flush_quietly()
        warn(f"error: {exc}")
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        _flush_quietly()
        return interrupted
    except BrokenPipeError:
        discard_stdout()
        return 0


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()


def discard_stdout() -> None:
    # The reader went away (``| head``): point stdout at /dev/null so the
    # interpreter's final flush does not complain about the broken pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def write_out(data: bytes) -> None:
    """Write bytes to stdout and flush, so pipes see every line as it comes."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


async def read_lines(source: BinaryIO, max_lines: int) -> AsyncIterator[list[tuple[int, bytes]]]:
    """Numbered lines of ``source`` in groups, as they become available.

    A group ends when ``max_lines`` are gathered or when the input has
    nothing more ready right now, so a slow producer piping into
    ``eventlog append`` sees its events appended promptly, while a file is
    read in big groups. Waiting for input yields to the event loop, so one
    Ctrl-C (or SIGTERM) stops the command even while stdin is idle.
    """
    fd = source.fileno()
    splitter = LineSplitter()
    group: list[tuple[int, bytes]] = []
    while True:
        await _readable(fd)
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            group += splitter.finish()
            if group:
                yield group
            return
        group += splitter.feed(chunk)
        if len(group) >= max_lines or (group and not _ready(fd)):
            yield group
            group = []


async def _readable(fd: int) -> None:
    """Wait in the event loop until ``fd`` can be read (pipes, terminals, sockets)."""
    if _ready(fd):
        return
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    try:
        loop.add_reader(fd, wake)
    except (OSError, ValueError, NotImplementedError):
        return  # e.g. a regular file: epoll refuses it, and its reads never block
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _ready(fd: int) -> bool:
    try:
        readable, _, _ = select.select([fd], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def input_size(source: BinaryIO) -> int | None:
    """The byte size of ``source`` when it is a regular file (``< file``), else None."""
    try:
        info = os.fstat(source.fileno())
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class Meter(Closing):
    """A rich progress bar on stderr, shown only when stderr is a terminal.

    Use as a context manager; :meth:`advance` is a no-op when hidden.
    """

    def __init__(self, description: str, total: int | None, *, unit: str = "events") -> None:
        self.shown = sys.stderr.isatty()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self.shown:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            count = (
                TaskProgressColumn()
                if unit == "bytes"
                else MofNCompleteColumn()
                if total is not None
                else TextColumn("{task.completed} " + unit)
            )
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                count,
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> Meter:
        if self._progress is not None:
            self._progress.start()
        return self

    def close(self) -> None:
        """Take the bar off the terminal."""
        if self._progress is not None:
            self._progress.stop()

    def advance(self, amount: int) -> None:
        """Move the bar on by ``amount``."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)
