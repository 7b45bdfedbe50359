"""Where file sources made over the API may read: the ``source_dirs`` setting.

An admin key can create a source over HTTP, and what a source reads lands in
streams (and bad lines in ``<stream>.errors``): without a limit that key could
read any file the server process can. So the paths of API sources (``path``,
and a directory's ``done``) must resolve (symlinks and ``..`` followed, with
:func:`os.path.realpath`) inside one of the operator's directories, checked
when the source is created and again each time a kind opens the file. Sources
of the config file are the operator's own and are not confined. The server's
own files (the database, the config file, the secrets key, the TLS key) are
refused even inside an allowed directory.

A check and a later open by path would race a symlink swapped in between (by
anyone who may write in an allowed directory), so :meth:`SourceDirs.open` opens
the checked real path itself, one component at a time with ``O_NOFOLLOW``: a
component that became a symlink since is refused, never followed.
:meth:`SourceDirs.makedirs` creates a missing ``done`` the same way (``mkdir`` at
the parent's handle), so no directory is ever made through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from server.sources.spec import SourceError, SourceSpec

__all__ = ["SourceDirs", "default_source_dirs"]

_SETTING = "source_dirs (EVENTLOG_SOURCE_DIRS, --source-dir)"
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
# O_PATH (Linux) walks a directory that may be searched but not listed.
_DIR = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | _NOFOLLOW


def _open_exact(real: str, flags: int, *, make: bool = False) -> int:
    """Open the absolute, symlink-free ``real`` without following any symlink on the way.

    Args:
        make: Create each missing directory on the way, ``real`` too (a directory),
            with ``mkdir`` at the open parent: nothing is made past a symlink.

    Raises:
        OSError: ``ELOOP``/``ENOTDIR`` if a component is a symlink now, or any other.
    """
    *parents, name = real.split(os.sep)[1:]
    fd = os.open("/", _DIR)
    try:
        for part in parents:
            if make:
                _mkdir_at(part, fd)
            inner = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = inner
        if make:
            _mkdir_at(name, fd)
        return os.open(name or ".", flags | _NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)


def _mkdir_at(name: str, dir_fd: int) -> None:
    """``mkdir`` ``name`` in the open directory ``dir_fd`` unless something is there
    (a symlink there is not followed: the open after it refuses it)."""
    if name:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, dir_fd=dir_fd)


def _swapped(field: str, path: str | Path, real: str, what: str) -> SourceError:
    return SourceError(
        f"{field} {str(path)!r} changed into a symlink after it was checked "
        f"(it resolved to {real!r}); {what}"
    )


def default_source_dirs(db: str) -> list[str]:
    """The default ``source_dirs``: the SQLite database file's directory; none for
    PostgreSQL or ``:memory:`` (no directory of the server's own to assume)."""
    if db == ":memory:" or "://" in db:
        return []
    return [os.path.dirname(os.path.abspath(db))]


class SourceDirs:
    """The directories sources made over the API may read, and files they may not.

    Args:
        dirs: The allowed directories (relative ones against the working directory).
        refused: Files refused even inside them (the server's own secrets).
    """

    def __init__(self, dirs: Sequence[str | Path], refused: Iterable[str | Path] = ()) -> None:
        self.dirs = tuple(os.path.realpath(d) for d in dirs)
        self._refused = frozenset(os.path.realpath(f) for f in refused)

    def check(self, path: str | Path, field: str = "path") -> str:
        """Refuse ``path`` unless it is absolute and resolves inside an allowed
        directory; its real path.

        Raises:
            SourceError: Relative, outside (the message names the setting), or a
                refused file.
        """
        if not os.path.isabs(path):
            raise SourceError(
                f"{field} {str(path)!r} is relative: give an absolute path (the server "
                "would resolve it against its own working directory, not the caller's)"
            )
        real = os.path.realpath(path)
        if real in self._refused:
            raise SourceError(f"{field} {str(path)!r} is one of the server's own files")
        if any(os.path.commonpath((real, d)) == d for d in self.dirs):
            return real
        allowed = ", ".join(self.dirs) or "none"
        via = "" if real == str(path) else f" (it resolves to {real!r})"
        raise SourceError(
            f"{field} {str(path)!r}{via} is outside the directories sources made over the "
            f"API may read ({allowed}); the operator allows more with {_SETTING}"
        )

    def open(self, path: str | Path, field: str = "path") -> BinaryIO:
        """:meth:`check` ``path``, then open for reading exactly the real path checked.

        Raises:
            SourceError: Outside, or a component was swapped for a symlink since the check.
            FileNotFoundError: It is gone.
        """
        real = self.check(path, field)
        try:
            fd = _open_exact(real, os.O_RDONLY)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise _swapped(field, path, real, "not read") from None
        return os.fdopen(fd, "rb")

    def makedirs(self, path: str | Path, field: str = "done") -> None:
        """:meth:`check` ``path``, then create exactly the real path checked (and its
        missing parents), each directory made at its parent's open handle and opened
        with ``O_NOFOLLOW``: a parent swapped for a symlink since the check is
        refused, and nothing is made outside.

        Raises:
            SourceError: Outside, or a component was swapped for a symlink since the
                check (a file standing where a directory should be is refused alike).
            OSError: The creation failed otherwise (``PermissionError``).
        """
        real = self.check(path, field)
        try:
            os.close(_open_exact(real, _DIR, make=True))
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise _swapped(field, path, real, "not created") from None

    def move(self, path: Path, done: Path) -> None:
        """Rename ``path`` into the directory ``done`` (a directory source's), both
        directories opened exactly as checked (a symlink swapped in is refused).

        Raises:
            SourceError: Outside, swapped, or ``done`` on another filesystem.
            FileNotFoundError: ``path`` is gone.
        """
        src = dst = -1
        try:
            src = _open_exact(self.check(path.parent), _DIR)
            dst = _open_exact(self.check(done, "done"), _DIR)
            os.rename(path.name, path.name, src_dir_fd=src, dst_dir_fd=dst)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                raise
            raise SourceError(
                f"done: {str(path)!r} not moved to {str(done)!r}: {exc.strerror} "
                "(a symlink swapped in since the check, or another filesystem)"
            ) from None
        finally:
            for fd in (src, dst):
                if fd != -1:
                    os.close(fd)

    def check_spec(self, spec: SourceSpec) -> None:
        """:meth:`check` a spec's ``path`` and ``done``.

        Raises:
            SourceError: One is outside.
        """
        self.check(spec.path)
        if spec.done is not None:
            self.check(spec.done, "done")
