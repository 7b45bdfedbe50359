"""Per-request plumbing, as one pure ASGI middleware: correlation ids, body limit,
request logs, HTTP metrics, and the append route served without the router.

* **Correlation id**: taken from ``X-Correlation-Id``, else the trace id of a
  W3C ``traceparent``, else generated; kept in ``request.state.correlation_id``
  (the append route stores it in each event's headers) and echoed in the
  response's ``X-Correlation-Id``.
* **Body limit**: a declared ``Content-Length`` over ``max_body_bytes`` is
  answered 413 before a byte of the body is read; a chunked body is counted as
  it arrives and refused (413) as soon as it passes the limit. A body that
  takes longer than ``body_timeout`` seconds to arrive gets 408.
* **Compressed bodies**: ``Content-Encoding: gzip`` or ``deflate`` is
  inflated as it arrives, the limit applying to the inflated bytes too (a
  small bomb gets 413, not a full memory); other codings get 415
  ``unsupported_encoding``, a body that does not inflate 400
  ``malformed_body``.
* **Logs**: one line per request on the ``eventlog.access`` logger
  (:mod:`server.access_log`).
* **Metrics**: requests by method, route template and status.
* **Direct route**: appends are the hot path; the one route given as
  ``direct`` is matched here (with its own path pattern, as the router would)
  and called without Starlette's exception and routing layers. Its errors get
  the app's answer (:func:`server.errors.handle_error`), as they would there.
  ``eventlog serve`` goes one step further: :class:`server.front.Front` sends
  appends to :meth:`RequestMiddleware.serve` past uvicorn's proxy-header layer
  and Starlette's outer ones, which then does their part too.

The pure helper :func:`correlation_id_from` is tested without a server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventlog.errors import EventLogError, InvalidInput
from server.access_log import access_line, log_access
from server.api.params import refuse_repeats
from server.config import ServerConfig
from server.errors import HANDLED, handle_error, response_for
from server.metrics import Metrics

__all__ = [
    "RequestMiddleware",
    "correlation_id_from",
    "new_correlation_id",
]

_SAFE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def correlation_id_from(headers: Mapping[str, str]) -> str:
    """The request's correlation id: ``X-Correlation-Id`` if it is a safe token,
    else the trace id of a valid ``traceparent``, else a new random id."""
    given = headers.get("x-correlation-id")
    if given and _SAFE_ID.fullmatch(given):
        return given
    trace = headers.get("traceparent")
    if trace:
        match = _TRACEPARENT.fullmatch(trace.strip())
        if match and match.group(1) != "0" * 32:
            return match.group(1)
    return new_correlation_id()


_CID_PREFIX = os.urandom(8).hex()
_cid_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_correlation_id() -> str:
    """A new 32-hex-digit id: a random per-process prefix and a counter (unique, cheap)."""
    return f"{_CID_PREFIX}{next(_cid_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


class RequestMiddleware:
    """Correlation id, body limit, request log line and metrics for every HTTP request.

    Args:
        app: The app inside (Starlette's exception layer and router).
        config: The server's settings.
        metrics: Where requests are counted.
        access_sink: Receives each request's log line (default: the
            ``eventlog.access`` logger).
        direct: A route served straight from here, bypassing ``app`` (the append route).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: ServerConfig,
        metrics: Metrics,
        access_sink: Callable[[str], None] | None = None,
        direct: Route | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        #: Where request lines go: the ``eventlog.access`` logger unless given.
        self.access_sink = access_sink or log_access
        self._route_cache: dict[int, str] = {}
        self._direct = direct
        self._direct_methods = frozenset(direct.methods or ()) if direct else frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.serve(scope, receive, send, self.direct_match(scope))
        elif kind == "websocket":
            headers = _wanted_headers(scope)
            scope.setdefault("state", {})["correlation_id"] = correlation_id_from(headers)
            await self.app(scope, receive, send)
        elif kind == "lifespan":
            await self.app(scope, receive, _startup_failure_in_one_line(send))
        else:
            await self.app(scope, receive, send)

    def direct_match(self, scope: Scope) -> re.Match[str] | None:
        """The direct route's path match for an HTTP ``scope`` it serves (else None)."""
        direct = self._direct
        if direct is None or scope["method"] not in self._direct_methods or scope.get("root_path"):
            return None
        return direct.path_regex.match(scope["path"])

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        direct: re.Match[str] | None,
        *,
        proxy: ASGIApp | None = None,
    ) -> None:
        """One HTTP request: to the direct route if ``direct`` (:meth:`direct_match`), else app.

        ``proxy`` is given by the outermost layer (:class:`server.front.Front`), which
        sends appends here past uvicorn's and Starlette's outer layers: it is applied
        (uvicorn's ``ProxyHeadersMiddleware`` over an app that does nothing) to a
        request carrying ``X-Forwarded-For`` or ``-Proto``, and the direct route's
        bugs are answered here, as Starlette's outermost layer would.
        """
        started = time.perf_counter()
        headers = _wanted_headers(scope)
        if proxy is not None and ("x-forwarded-for" in headers or "x-forwarded-proto" in headers):
            await proxy(scope, receive, send)
        cid = correlation_id_from(headers)
        scope.setdefault("state", {})["correlation_id"] = cid
        status = 0  # no answer started yet
        cid_header = (b"x-correlation-id", cid.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [cid_header, _CHALLENGE] if status == 401 else [cid_header]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        config = self.config
        limit = config.max_body_bytes
        declared = headers.get("content-length")
        try:
            refuse_repeats(scope["query_string"])
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                if declared.isdigit():
                    raise InvalidInput(f"request body over {limit} bytes", code="body_too_large")
                raise InvalidInput("Content-Length is not a number", code="bad_content_length")
            limited = _limited(receive, limit, config.body_timeout)
            coding = headers.get("content-encoding")
            if coding is not None:
                limited = _inflated(limited, coding, limit)
            route = self._direct
            if direct is None or route is None:
                await self.app(scope, limited, send_wrapper)
            else:
                # What the router would add to the scope for this route.
                scope["endpoint"] = route.endpoint
                scope["path_params"] = direct.groupdict()
                try:
                    await route.app(scope, limited, send_wrapper)
                except Exception as exc:  # as Starlette's exception layers answer them
                    bug = not isinstance(exc, HANDLED)
                    if status and not bug:
                        raise RuntimeError(
                            "Caught handled exception, but response already started."
                        ) from exc
                    if status or (bug and proxy is None):
                        raise  # inside the app, its ServerErrorMiddleware answers a bug
                    answer = await handle_error(Request(scope, limited), exc)
                    await answer(scope, limited, send_wrapper)
                    if bug:
                        raise  # as ServerErrorMiddleware does: uvicorn logs it too
        except EventLogError as exc:  # refused before the app ran
            scope.setdefault("endpoint", _endpoint_of(scope))  # the route it was sent to
            response = response_for(exc)
            await response(scope, receive, send_wrapper)
        finally:
            status = status or 500  # the app failed before answering: a 500 went out
            ended = time.perf_counter()
            label = self._route(scope)
            method = scope["method"]
            self.metrics.http_requests.inc((method, label, str(status)))
            if config.access_log:
                client = scope.get("client")
                self.access_sink(
                    access_line(
                        config.log_format,
                        method=method,
                        path=scope["path"],
                        route=label,
                        status=status,
                        ms=(ended - started) * 1000,
                        cid=cid,
                        client=f"{client[0]}:{client[1]}" if client else "-",
                        at=ended,
                    )
                )

    def _route(self, scope: Scope) -> str:
        """The matched route's path template (bounded label cardinality)."""
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return "unmatched"
        label = self._route_cache.get(id(endpoint))
        if label is not None:
            return label
        routes: list[BaseRoute] = list(getattr(scope["app"].router, "routes", []))
        matching = [r for r in routes if isinstance(r, Route) and r.endpoint is endpoint]
        if len(matching) == 1:  # one template per endpoint: cache it
            self._route_cache[id(endpoint)] = matching[0].path
            return matching[0].path
        for r in matching:
            if r.matches(scope)[0] is Match.FULL:
                return r.path
        return "unmatched"


def _endpoint_of(scope: Scope) -> Any:
    """The endpoint of the route ``scope`` matches (None if none does), as the router
    would find it: so a request refused before routing is counted under its route."""
    for route in getattr(scope["app"].router, "routes", []):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return child.get("endpoint")
    return None


def _startup_failure_in_one_line(send: Send) -> Send:
    """Starlette reports a failed startup with the whole traceback as the message
    uvicorn logs; a configuration mistake (an unknown consumer kind, bad options)
    then reads as a wall of frames. Keep the traceback's last line, the error
    itself, and log the frames at DEBUG."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "lifespan.startup.failed" and message.get("message"):
            text = str(message["message"]).rstrip()
            logging.getLogger("eventlog.server").debug("startup failed:\n%s", text)
            message = {**message, "message": "startup failed: " + text.splitlines()[-1]}
        await send(message)

    return wrapped


#: RFC 9110: a 401 names the scheme to authenticate with.
_CHALLENGE = (b"www-authenticate", b"Bearer")

_WANTED = (
    b"x-correlation-id",
    b"traceparent",
    b"content-length",
    b"content-encoding",
    b"x-forwarded-for",
    b"x-forwarded-proto",
)


def _wanted_headers(scope: Scope) -> dict[str, str]:
    """The few request headers the middleware reads (one pass, no full decode)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED:
            found[name.decode()] = value.decode("latin-1")
    return found


class BodyDeadlines:
    """Cancels request tasks whose body has not arrived by its deadline.

    One timer ticking every ``tick`` seconds while any body read is pending,
    instead of a timer set and cancelled for every read: that cost ~3 µs a
    request, a few percent of a single-event append. Deadlines are kept to
    within one tick.
    """

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self._reads: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(
        self, task: asyncio.Task[Any], deadline: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Watch ``task``, now waiting for body bytes, until :meth:`stop`."""
        self._reads[task] = deadline
        if self._timer is None:
            self._timer = loop.call_later(self.tick, self._sweep, loop)

    def stop(self, task: asyncio.Task[Any]) -> bool:
        """Stop watching ``task``; True if it was cancelled for its deadline."""
        self._reads.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in list(self._reads.items()):
            if deadline <= now:
                del self._reads[task]
                self._expired.add(task)
                task.cancel()
        self._timer = loop.call_later(self.tick, self._sweep, loop) if self._reads else None


_deadlines = BodyDeadlines()


#: zlib's ``wbits`` for each content coding a request body may have.
_CODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


def _inflated(receive: Receive, coding: str, limit: int) -> Receive:
    """Wrap ``receive``: a compressed body arrives inflated, refused with 413 once
    the inflated bytes pass ``limit`` (inflating no more than that)."""
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return receive
    wbits = _CODINGS.get(coding)
    if wbits is None:
        raise InvalidInput(
            f"Content-Encoding {coding!r} is not accepted; use gzip, deflate or none",
            code="unsupported_encoding",
        )
    inflater = zlib.decompressobj(wbits)
    inflated = 0

    async def wrapped() -> Message:
        nonlocal inflated
        message = await receive()
        if message["type"] != "http.request":
            return message
        try:
            body = inflater.decompress(message.get("body", b""), limit - inflated + 1)
        except zlib.error as exc:
            message_ = f"the body is not valid {coding}: {exc}"
            raise InvalidInput(message_, code="malformed_body") from None
        inflated += len(body)
        if inflated > limit:
            raise InvalidInput(
                f"request body over {limit} bytes once inflated", code="body_too_large"
            )
        if not message.get("more_body", False) and not inflater.eof:
            raise InvalidInput(f"the {coding} body ends early", code="malformed_body")
        if inflater.unused_data:
            raise InvalidInput(f"data after the end of the {coding} body", code="malformed_body")
        return {**message, "body": body}

    return wrapped


def _limited(receive: Receive, limit: int, timeout: float) -> Receive:
    """Wrap ``receive``: raise 413 once the body passes ``limit``, 408 when it
    takes longer than ``timeout`` seconds to arrive."""
    received = 0
    deadline: float | None = None
    done = False

    async def wrapped() -> Message:
        nonlocal received, deadline, done
        if done:  # body complete: later receives wait for disconnect, unbounded
            return await receive()
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        if deadline is None:
            deadline = loop.time() + timeout
        _deadlines.start(task, deadline, loop)
        try:
            message = await receive()
        except asyncio.CancelledError:
            if _deadlines.stop(task) and task.uncancel() == 0:
                raise InvalidInput(
                    "request body not received in time", code="body_timeout"
                ) from None
            raise
        finally:
            _deadlines.stop(task)
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise InvalidInput(f"request body over {limit} bytes", code="body_too_large")
            done = not message.get("more_body", False)
        else:
            done = True
        return message

    return wrapped
