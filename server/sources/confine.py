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
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from server.sources.spec import SourceError, SourceSpec

__all__ = ["SourceDirs", "default_source_dirs"]

_SETTING = "source_dirs (EVENTLOG_SOURCE_DIRS, --source-dir)"


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

    def check(self, path: str | Path, field: str = "path") -> None:
        """Refuse ``path`` unless it resolves inside an allowed directory.

        Raises:
            SourceError: Outside (the message names the setting), or a refused file.
        """
        real = os.path.realpath(path)
        if real in self._refused:
            raise SourceError(f"{field} {str(path)!r} is one of the server's own files")
        if any(os.path.commonpath((real, d)) == d for d in self.dirs):
            return
        allowed = ", ".join(self.dirs) or "none"
        via = "" if real == str(path) else f" (it resolves to {real!r})"
        raise SourceError(
            f"{field} {str(path)!r}{via} is outside the directories sources made over the "
            f"API may read ({allowed}); the operator allows more with {_SETTING}"
        )

    def check_spec(self, spec: SourceSpec) -> None:
        """:meth:`check` a spec's ``path`` and ``done``.

        Raises:
            SourceError: One is outside.
        """
        self.check(spec.path)
        if spec.done is not None:
            self.check(spec.done, "done")
