"""The outermost ASGI app of ``eventlog serve``: appends straight to the request
middleware, everything else through uvicorn's and Starlette's layers as usual.

uvicorn wraps the app it runs in its ``ProxyHeadersMiddleware`` and Starlette
wraps its routes in ``ServerErrorMiddleware``; around a single-event append,
which :class:`server.middleware.RequestMiddleware` serves without the router,
those layers and Starlette's entry cost 4-6% of the event loop's time (py-spy,
under wrk). So serve runs uvicorn with ``proxy_headers=False`` and gives it
:class:`Front`, and an append still gets what those layers do: a forwarded
client or scheme from a trusted proxy (uvicorn's own middleware, run only when
the request carries such a header), ``scope["app"]``, and the app's 500 answer
to a bug, logged with its traceback (:meth:`~server.middleware.RequestMiddleware.serve`).
"""

from __future__ import annotations

from typing import cast

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server.middleware import RequestMiddleware

__all__ = ["Front"]


class Front:
    """What ``eventlog serve`` gives uvicorn: ``app`` (from :func:`server.app.create_app`) inside.

    A request for the direct route (``POST /api/streams/{stream}/events`` at the
    root) goes to ``app``'s :class:`~server.middleware.RequestMiddleware`
    directly; anything else (other routes, WebSocket, lifespan) goes to ``app``
    through uvicorn's ``ProxyHeadersMiddleware``, as uvicorn would send it.

    Args:
        app: The eventlog app.
        forwarded_allow_ips: The proxies whose ``X-Forwarded-For`` and
            ``X-Forwarded-Proto`` are trusted (uvicorn's setting of that name).
    """

    def __init__(self, app: Starlette, forwarded_allow_ips: list[str] | str) -> None:
        self.app = app
        self._proxied = cast(ASGIApp, ProxyHeadersMiddleware(app, forwarded_allow_ips))  # type: ignore[arg-type]
        self._proxy = cast(ASGIApp, ProxyHeadersMiddleware(_nothing, forwarded_allow_ips))  # type: ignore[arg-type]
        if app.middleware_stack is None:  # built as Starlette builds it on its first call
            app.middleware_stack = app.build_middleware_stack()
        layer = app.middleware_stack
        while not isinstance(layer, RequestMiddleware):
            layer = layer.app  # type: ignore[attr-defined]  # each layer keeps the next as .app
        self._requests = layer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            direct = self._requests.direct_match(scope)
            if direct is not None:
                scope["app"] = self.app  # as Starlette sets it
                await self._requests.serve(scope, receive, send, direct, proxy=self._proxy)
                return
        await self._proxied(scope, receive, send)


async def _nothing(scope: Scope, receive: Receive, send: Send) -> None:
    """The app inside the proxy-header middleware when only its changes to the scope are wanted."""
