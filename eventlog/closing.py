"""Context-manager plumbing shared by objects that are opened and closed.

:class:`AsyncClosing` gives a class ``async with obj:`` from two hooks,
:meth:`~AsyncClosing._enter` and :meth:`~AsyncClosing._exit`;
:class:`Closing` gives ``with obj:`` around a synchronous ``close()``.
The server, the consumers and the tests use them too, so the
``__aexit__`` signature is written once.
"""

from __future__ import annotations

from typing import Self

__all__ = ["AsyncClosing", "Closing"]


class AsyncClosing:
    """Mixin: ``async with obj:`` awaits ``obj._enter()``, then ``obj._exit()`` on the way out.

    The exit hook runs whether or not the block raised; exceptions propagate.
    """

    async def _enter(self) -> None:
        """Make the object ready for use (nothing by default)."""

    async def _exit(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self._enter()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._exit()


class Closing:
    """Mixin: ``with obj:`` returns ``obj`` and calls ``obj.close()`` on the way out."""

    def close(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
