"""The consumer-offset methods of :class:`~eventlog.client.AsyncClient`, as the embedded
log's (:mod:`eventlog.log_offsets`), over ``/api/consumers``."""

from __future__ import annotations

from typing import Any

import msgspec

from eventlog.client import wire
from eventlog.client.transport import Params, Transport
from eventlog.errors import InvalidPosition, NotFound
from eventlog.model import ConsumerInfo, validate_stream_name

__all__ = ["OffsetMethods"]

_consumers = msgspec.json.Decoder(dict[str, list[ConsumerInfo]])
_consumer = msgspec.json.Decoder(wire.ConsumerDetail)


def _path(*parts: str) -> str:
    return "/api/" + "/".join(parts)


class OffsetMethods:
    """Committed consumer positions on the server."""

    http: Transport

    async def _get(self, path: str, params: Params | None = None, **kw: Any) -> bytes:
        return (await self.http.request("GET", path, params=params, **kw))[1]

    async def consumers(self) -> list[ConsumerInfo]:
        """Every committed consumer position."""
        data = await self._get("/api/consumers")
        return wire.answer(_consumers, data, "the consumer list")["consumers"]

    async def consumer_detail(self, name: str) -> dict[str, Any]:
        """One consumer as ``GET /api/consumers/{name}`` describes it (offsets, lag,
        parked events, its runtime state in the server).

        Raises:
            ConsumerNotFound: It never committed and does not run in the server.
        """
        data = await self._get(
            _path("consumers", validate_stream_name(name)), context={"name": name}
        )
        return wire.answer(wire.OBJECT, data, "a consumer query")

    async def committed_offset(self, consumer: str, stream: str) -> int | None:
        """The offset ``consumer`` committed on ``stream`` (the next to read), or None."""
        validate_stream_name(stream)
        try:
            data = await self._get(_path("consumers", validate_stream_name(consumer)))
        except NotFound:
            return None
        rows = wire.answer(_consumer, data, "a consumer query").streams
        return next((row.offset for row in rows if row.stream == stream), None)

    async def commit_offset(self, consumer: str, stream: str, offset: int) -> None:
        """Durably store ``offset`` as the next offset ``consumer`` reads on ``stream``
        (needs ``admin``; the offset may not pass the head)."""
        if not isinstance(offset, int) or offset < 0:
            raise InvalidPosition("offset must be a non-negative integer")
        body = wire.encode({"stream": validate_stream_name(stream), "position": offset})
        await self.http.request(
            "PUT",
            _path("consumers", validate_stream_name(consumer)),
            body=body,
            context={"name": consumer, "stream": stream},
        )

    async def replay_parked(self, name: str) -> dict[str, Any]:
        """Hand a consumer's parked events back to its handler in the server (admin)."""
        path = _path("consumers", validate_stream_name(name), "replay-parked")
        _, data = await self.http.request(
            "POST", path, timeout=600.0, idempotent=False, context={"name": name}
        )
        return wire.answer(wire.OBJECT, data, "a replay")
