"""Local fakes of Discord's and Slack's incoming webhooks: aiohttp apps on loopback ports.

They enforce what the real services document and a sender must respect:

**Fake Discord** (``POST /api/webhooks/{id}/{token}``), per Discord's
"Rate Limits", "Execute Webhook" and "Embed Limits" pages:

* a per-webhook bucket of ``limit`` requests per ``window`` seconds, told in
  ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``, ``-Reset-After``,
  ``-Bucket`` (Discord's real bucket is 5 per 2 s; tests shorten the window
  so a 200-event burst takes seconds, not minutes); over it: ``429`` with
  ``{"message", "retry_after": <seconds, fractional>, "global": false}`` and
  ``Retry-After`` (whole seconds, rounded up) plus ``X-RateLimit-Scope``;
* optionally a ``429`` with ``X-RateLimit-Scope: shared`` every
  ``shared_every`` requests (limits shared with other users of the channel,
  which the bucket headers cannot announce);
* ``content`` at most 2000 characters; at most 10 embeds; embed title 256,
  description 4096, 25 fields of name 256 / value 1024, footer 2048, 6000 in
  all; at least content or an embed; otherwise ``400`` ``Invalid Form Body``
  (code 50035);
* with ``?wait=true``: ``200`` and the message object; without: ``204``.

**Fake Slack** (``POST /services/T…/B…/…``), per Slack's "Rate limits" and
"Sending messages using incoming webhooks": a token bucket (``burst``
messages, refilled at ``rate`` per second; Slack's own is about one per second
with bursts); over it: ``429`` with ``Retry-After`` in whole seconds. Blocks:
at most 50, header text 150, section text 3000, 10 fields of 2000; ``text``
at most 40000 and required without blocks; else ``400`` with Slack's error
string (``invalid_blocks``, ``no_text``, ``msg_too_long``). ``200 ok``.

Both record every accepted message in arrival order, count requests that
arrived while a ``retry_after`` they announced had not yet expired
(``early``) and how long after a wait's end the next request came
(``overshoot``: the wait was honoured exactly, not just not too early), and
can be switched to answer a fixed status (``fail_with``).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from consumers.notify.limits import units
from tests.consumers.delivery.receiver import Served

__all__ = ["FakeDiscord", "FakeSlack"]


@dataclass
class _Base(Served):
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    rate_limited: int = 0
    early: int = 0
    blocked_until: float = 0.0
    #: For each announced wait, how long after its end the next request came.
    overshoot: list[float] = field(default_factory=list)
    _waiting: bool = False
    fail_with: tuple[int, bytes, str] | None = None
    _runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> Any:
        await self._serve(self._app(), self.host)
        return self

    def _arrive(self, now: float) -> web.Response | None:
        """Count a request; the answer ``fail_with`` forces, if set."""
        self.requests += 1
        if now < self.blocked_until:
            self.early += 1
        elif self._waiting:
            self.overshoot.append(now - self.blocked_until)
        self._waiting = False
        if self.fail_with is None:
            return None
        status, body, ctype = self.fail_with
        return web.Response(status=status, body=body, content_type=ctype)

    def _announce(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)
        self._waiting = True


@dataclass
class FakeDiscord(_Base):
    """A Discord webhook endpoint (see the module docstring)."""

    limit: int = 5
    window: float = 2.0
    send_headers: bool = True
    shared_every: int | None = None
    without_wait: int = 0
    _window_start: float = 0.0
    _used: int = 0

    def url(self, webhook_id: str = "1234567890", token: str = "t0k3n") -> str:
        return f"http://{self.host}:{self.port}/api/webhooks/{webhook_id}/{token}"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/webhooks/{id}/{token}", self._execute)
        return app

    def _bucket_headers(self, now: float) -> dict[str, str]:
        if not self.send_headers:
            return {}
        reset_after = max(0.0, self._window_start + self.window - now)
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - self._used)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "abcd1234",
        }

    def _too_many(self, wait: float, scope: str, now: float) -> web.Response:
        self.rate_limited += 1
        self._announce(now + wait)
        body = {"message": "You are being rate limited.", "retry_after": wait, "global": False}
        headers = {
            **self._bucket_headers(now),
            "Retry-After": str(math.ceil(wait)),
            "X-RateLimit-Scope": scope,
        }
        return web.json_response(body, status=429, headers=headers)

    async def _execute(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        if (forced := self._arrive(now)) is not None:
            return forced
        if now < self.blocked_until:
            return self._too_many(round(self.blocked_until - now, 3), "user", now)
        if self.shared_every and self.requests % self.shared_every == 0:
            return self._too_many(0.3, "shared", now)
        if now >= self._window_start + self.window:
            self._window_start, self._used = now, 0
        if self._used >= self.limit:
            return self._too_many(round(self._window_start + self.window - now, 3), "user", now)
        self._used += 1
        try:
            message = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return web.json_response({"message": "400: Bad Request", "code": 0}, status=400)
        error = _discord_problem(message)
        if error is not None:
            return web.json_response(
                {"message": "Invalid Form Body", "code": 50035, "errors": error},
                status=400,
                headers=self._bucket_headers(now),
            )
        self.messages.append(message)
        if request.query.get("wait") != "true":
            self.without_wait += 1
            return web.Response(status=204, headers=self._bucket_headers(now))
        stored = {"id": str(len(self.messages)), "type": 0, **message}
        return web.json_response(stored, headers=self._bucket_headers(now))


def _discord_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "body must be an object"
    content = message.get("content", "")
    embeds = message.get("embeds", [])
    if not content and not embeds:
        return "Cannot send an empty message"
    if units(content) > 2000:
        return "content: Must be 2000 or fewer in length."
    if len(embeds) > 10:
        return "embeds: Must be 10 or fewer in length."
    for embed in embeds:
        title = embed.get("title", "")
        description = embed.get("description", "")
        footer = embed.get("footer", {}).get("text", "")
        fields = embed.get("fields", [])
        if units(title) > 256 or units(description) > 4096 or units(footer) > 2048:
            return "embed text over its limit"
        if len(fields) > 25:
            return "embeds.fields: Must be 25 or fewer in length."
        total = units(title) + units(description) + units(footer)
        for f in fields:
            name, value = f.get("name", ""), f.get("value", "")
            if not name or not value or units(name) > 256 or units(value) > 1024:
                return "embeds.fields: name/value empty or too long"
            total += units(name) + units(value)
        if total > 6000:
            return "embeds: Embed size exceeds maximum size of 6000"
    return None


@dataclass
class FakeSlack(_Base):
    """A Slack incoming webhook (see the module docstring)."""

    burst: float = 10.0
    rate: float = 1.0
    _tokens: float = -1.0
    _stamp: float = 0.0

    def url(self) -> str:
        return f"http://{self.host}:{self.port}/services/T00000000/B00000000/XXXXXXXXXXXXXXXX"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/services/{team}/{bot}/{token}", self._post)
        return app

    async def _post(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        if (forced := self._arrive(now)) is not None:
            return forced
        if self._tokens < 0:
            self._tokens, self._stamp = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if now < self.blocked_until or self._tokens < 1:
            wait = max(1, math.ceil((1 - self._tokens) / self.rate))
            self.rate_limited += 1
            self._announce(now + wait)
            return web.Response(status=429, text="rate_limited", headers={"Retry-After": str(wait)})
        self._tokens -= 1
        try:
            message = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return web.Response(status=400, text="invalid_payload")
        error = _slack_problem(message)
        if error is not None:
            return web.Response(status=400, text=error)
        self.messages.append(message)
        return web.Response(status=200, text="ok")


def _slack_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "invalid_payload"
    text = message.get("text")
    blocks = message.get("blocks")
    if blocks is None and not text:
        return "no_text"
    if text is not None and units(text) > 40000:
        return "msg_too_long"
    for block in blocks or []:
        kind = block.get("type")
        if kind == "header" and units(block["text"]["text"]) > 150:
            return "invalid_blocks"
        if kind == "section":
            if "text" in block and units(block["text"]["text"]) > 3000:
                return "invalid_blocks"
            fields = block.get("fields", [])
            if len(fields) > 10 or any(units(f["text"]) > 2000 for f in fields):
                return "invalid_blocks"
    if blocks is not None and len(blocks) > 50:
        return "invalid_blocks"
    return None


async def _serve(kind: str, port: int) -> None:  # pragma: no cover - a manual tool
    fake: FakeDiscord | FakeSlack = (
        FakeDiscord(port=port, window=2.0) if kind == "discord" else FakeSlack(port=port)
    )
    await fake.start()
    print(f"fake {kind} listening: {fake.url()}", flush=True)
    seen = 0
    while True:
        await asyncio.sleep(0.1)
        for message in fake.messages[seen:]:
            print(msgspec.json.encode(message).decode(), flush=True)
        seen = len(fake.messages)


if __name__ == "__main__":  # pragma: no cover - python -m tests.consumers.notify.fakes discord 8765
    import sys

    asyncio.run(_serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
