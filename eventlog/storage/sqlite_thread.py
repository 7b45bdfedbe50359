"""One SQLite connection on one thread of its own: a whole transaction per thread hop.

sqlite3 blocks, so every connection lives on a dedicated thread and the event
loop hands it work. The unit of work is a function of the connection, not a
statement: :meth:`SQLiteThread.run` queues ``fn`` and the thread runs it whole
(look-ups, ``executemany``, ``COMMIT``), so a group-committed transaction costs
one hop (~100 us) instead of one per statement. Work runs one function at a
time, in the order it was queued, which is what lets the writer hand the
connection a second transaction while the first commits.

This is aiosqlite's design (one worker thread per connection, a queue of
callables) kept in the open: aiosqlite has no public call for running a
function on its thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

from eventlog.errors import LogClosed, StorageError
from eventlog.storage.sqlite_ops import translate

__all__ = ["SQLiteThread"]

T = TypeVar("T")

_Work = tuple[asyncio.Future[Any], Callable[[sqlite3.Connection], Any]] | None


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _serve(conn: sqlite3.Connection, queue: SimpleQueue[_Work]) -> None:
    try:
        while (work := queue.get()) is not None:
            future, fn = work
            try:
                result, error = fn(conn), None
            except BaseException as exc:  # handed to the awaiting task, never lost here
                result, error = None, exc
            try:
                future.get_loop().call_soon_threadsafe(_resolve, future, result, error)
            except RuntimeError:  # the loop is closed (a log it never closed): nobody waits
                return
    finally:
        conn.close()


class SQLiteThread:
    """A ``sqlite3.Connection`` used only from its own worker thread.

    Open one with :meth:`connect`; :meth:`run` work on it; :meth:`close` it.
    """

    def __init__(self, queue: SimpleQueue[_Work], thread: threading.Thread) -> None:
        self._queue = queue
        self._thread = thread
        self._open = True

    @classmethod
    async def connect(cls, path: Path) -> SQLiteThread:
        """Open ``path`` (autocommit mode: transactions are explicit) on a new thread."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[sqlite3.Connection] = loop.create_future()
        queue: SimpleQueue[_Work] = SimpleQueue()

        def main() -> None:
            try:
                conn = sqlite3.connect(path, isolation_level=None)
            except BaseException as exc:
                loop.call_soon_threadsafe(_resolve, opened, None, exc)
                return
            loop.call_soon_threadsafe(_resolve, opened, conn, None)
            _serve(conn, queue)

        # A daemon thread: a log the program forgot to close must not keep the
        # interpreter from exiting (committed transactions are already durable).
        thread = threading.Thread(target=main, name=f"sqlite:{path.name}", daemon=True)
        thread.start()
        try:
            await opened
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {str(path)!r}: {exc}") from exc
        return cls(queue, thread)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the thread; driver errors become ``StorageError``s.

        Raises:
            LogClosed: The connection is closed.
        """
        if not self._open:
            raise LogClosed("storage is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((future, fn))
        try:
            return await future
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def close(self) -> None:
        """Let queued work finish, close the connection, end the thread. Idempotent."""
        if not self._open:
            return
        self._open = False
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
