"""The HTTP sender: one pooled aiohttp session shared by every endpoint.

Why aiohttp and not httpx: at 50 requests in flight httpx degrades badly
(``BASELINES.md``: ~310 req/s against aiohttp's ~10,600; encode/httpx#3215), and
aiohttp's connector takes a resolver, so the SSRF guard connects only to the
addresses it checked.

Every request: no redirects, one total timeout, at most :data:`READ_LIMIT` body
bytes read (then the connection is dropped, not reused), and every failure an
:class:`~consumers.delivery.retry.AttemptResult` with an ``ErrorKind``, never an
exception.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping

import aiohttp
import yarl

from consumers.delivery.retry import AttemptResult
from consumers.delivery.ssrf import GuardedResolver, InvalidTarget, UnsafeTarget, check_host

__all__ = ["BODY_TIMEOUT", "READ_LIMIT", "USER_AGENT", "Sender"]

USER_AGENT = "eventlog-webhooks/0.1"
#: Most response-body bytes read per attempt, and most seconds spent reading them
#: after the headers.
READ_LIMIT = 64 << 10
BODY_TIMEOUT = 2.0


@functools.lru_cache(maxsize=256)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, 10.0))


@functools.lru_cache(maxsize=4096)
def _host(url: str) -> str:
    return yarl.URL(url).host or ""


class Sender:
    """Posts request bodies; owns the connection pool.

    Args:
        allow_private: Turn off the SSRF address checks (tests, trusted networks).
    """

    def __init__(self, *, allow_private: bool = False) -> None:
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> aiohttp.ClientSession:
        """Create the session (idempotent) and return it."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,
                resolver=GuardedResolver(allow_private=self.allow_private),
                ttl_dns_cache=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Not aiohttp's default "gzip, deflate": the answer is stored as read.
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        """Close the pool."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> AttemptResult:
        """POST ``body`` to ``url``; never raises for anything the network or receiver does."""
        started = time.monotonic()
        session = self._session or await self.start()
        try:
            if not self.allow_private:
                check_host(_host(url), allow_private=False)
        except UnsafeTarget as exc:
            return AttemptResult.failed("unsafe_target", str(exc), started)
        except (ValueError, InvalidTarget) as exc:
            return AttemptResult.failed("invalid", f"invalid url: {exc}", started)
        try:
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=_timeout(timeout)
            ) as response:
                snippet = b""
                if not response.content.at_eof():  # at its end: no body (204) or already read
                    snippet, complete = await self._read_some(response)
                    if not complete:
                        response.close()  # do not reuse a connection with unread body
                duration = time.monotonic() - started
                return AttemptResult(response.status, response.headers, snippet, None, "", duration)
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, UnsafeTarget):
                return AttemptResult.failed("unsafe_target", str(exc.os_error), started)
            return AttemptResult.failed("dns", f"cannot resolve {exc.host}", started)
        except aiohttp.ClientConnectorError as exc:
            return AttemptResult.failed(
                "connect", f"cannot connect to {exc.host}:{exc.port}", started
            )
        except TimeoutError:
            return AttemptResult.failed("timeout", f"no answer within {timeout:g} s", started)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            return AttemptResult.failed("reset", f"connection lost: {exc}", started)
        except aiohttp.InvalidURL as exc:
            return AttemptResult.failed("invalid", f"invalid url: {exc}", started)
        except aiohttp.ClientError as exc:
            return AttemptResult.failed("protocol", f"{type(exc).__name__}: {exc}", started)
        except ValueError as exc:  # e.g. a header value aiohttp refuses
            return AttemptResult.failed("invalid", f"invalid request: {exc}", started)

    async def _read_some(self, response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        """Up to :data:`READ_LIMIT` body bytes; (bytes, True if the body was read to its end)."""
        chunks: list[bytes] = []
        got = 0
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                while got < READ_LIMIT:
                    chunk = await response.content.read(READ_LIMIT - got)
                    if not chunk:
                        return b"".join(chunks), True
                    chunks.append(chunk)
                    got += len(chunk)
        except (TimeoutError, aiohttp.ClientError):
            return b"".join(chunks), False
        return b"".join(chunks), response.content.at_eof()
