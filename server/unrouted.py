"""What a request that no route serves gets: a 404 JSON error naming the path to
use, never an empty redirect.

Starlette's router answers a path that differs from a route's only by a trailing
slash (``POST /api/streams/orders/events/``) with a ``307`` to the other spelling
and no body. A producer that does not follow redirects (curl without ``-L``, most
HTTP clients posting events) then sees no error at all, and one that does may
send the body again or drop it. So the app's router redirects nothing itself:
:class:`Unrouted` answers every request it cannot route.

* A browser's ``GET`` or ``HEAD`` of a page, ``/ui`` (served at ``/ui/``) or
  ``/docs/`` (served at ``/docs``): a ``307`` redirect to the other spelling, as
  Starlette would.
* Anything else: 404 ``not_found`` "no route POST /api/streams/orders/events/;
  did you mean /api/streams/orders/events?" (the hint only when the other
  spelling is a route). Machine paths are not redirected even for ``GET``: a
  health probe counts a ``3xx`` as healthy, a client may not follow it.

The append route, served without the router (:mod:`server.middleware`), never
gets here: its path pattern matches only the spelling without the slash.
"""

from __future__ import annotations

from starlette.datastructures import URL
from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send

from eventlog.errors import NotFound

__all__ = ["Unrouted", "answer_unrouted"]

#: The browser pages (without a trailing slash): the only paths redirected.
PAGES = frozenset({"/ui", "/docs"})
_PAGE_METHODS = frozenset({"GET", "HEAD"})


def answer_unrouted(router: Router) -> None:
    """Make ``router`` answer unroutable requests with :class:`Unrouted` (no slash redirects)."""
    router.redirect_slashes = False
    router.default = Unrouted(router)


class Unrouted:
    """The router's ``default`` app: a request that matches no route of ``router``.

    Args:
        router: The router whose routes are tried with the other spelling.
    """

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a WebSocket is closed, as the router does
            await self.router.not_found(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        route_path = path[len(root) :] if root and path.startswith(root) else path
        other = self._other_spelling(scope, route_path)
        method = scope["method"]
        if other is not None and method in _PAGE_METHODS and route_path.rstrip("/") in PAGES:
            redirect = RedirectResponse(url=str(URL(scope={**scope, "path": other})))
            await redirect(scope, receive, send)
            return
        hint = "" if other is None else f"; did you mean {other}?"
        raise NotFound(f"no route {method} {path}{hint}")

    def _other_spelling(self, scope: Scope, route_path: str) -> str | None:
        """The request's path with its trailing slash removed, or one added, if a
        route serves that (``route_path``: the path below the app's root path)."""
        if route_path == "/":
            return None
        path: str = scope["path"]
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        if not other or not route_path.rstrip("/"):
            return None
        tried = {**scope, "path": other}
        for route in self.router.routes:
            if route.matches(tried)[0] is not Match.NONE:
                return other
        return None
