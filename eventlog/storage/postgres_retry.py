"""Retrying an idempotent PostgreSQL storage call whose pooled connection died."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from eventlog.errors import StorageError
from eventlog.storage.postgres_schema import connection_lost

__all__ = ["Pooled", "reconnecting"]

T = TypeVar("T")
P = ParamSpec("P")


class Pooled(Protocol):
    """Something with a connection pool (the PostgreSQL storage)."""

    @property
    def pool_size(self) -> int:
        """Most connections of the pool."""
        ...


S = TypeVar("S", bound=Pooled)


def reconnecting(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run an idempotent operation again when its pooled connection turns out dead.

    After a PostgreSQL restart every pooled connection is dead; each failed
    attempt discards one, so up to ``pool_size + 1`` attempts are made.
    """

    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        attempts = self.pool_size + 1
        for attempt in range(attempts):
            try:
                return await method(self, *args, **kwargs)
            except StorageError as exc:
                if attempt == attempts - 1 or not connection_lost(exc.__cause__):
                    raise
        raise AssertionError("unreachable")

    functools.update_wrapper(run, method)
    return run
