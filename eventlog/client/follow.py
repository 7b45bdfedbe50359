"""Following a stream over the WebSocket firehose, resuming after every disconnect.

:func:`follow` yields events from a start position forever. It remembers the
offset after the last event it yielded; when the connection drops (the server
restarted, a proxy cut it, the server closed a slow client with 4008) it
reconnects with ``from=`` that offset, so the events it yields have no gap and
no duplicate across reconnects (the firehose's catch-up-then-live hand-off
guarantees the same within one connection). Reconnects wait with
:data:`FOLLOW_BACKOFF` and go on until the caller stops iterating; errors that
a retry cannot fix (a missing stream, a bad API key, events removed by
retention: close code 4416, a certificate the client does not trust) are
raised as the embedded log's errors.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from eventlog.backoff import Backoff
from eventlog.client.transport import RETRY_STATUSES
from eventlog.client.wire import error_from, tls_error
from eventlog.errors import (
    EventLogError,
    InvalidPosition,
    LogClosed,
    OffsetOutOfRange,
    Unavailable,
)
from eventlog.model import Event, validate_stream_name

if TYPE_CHECKING:
    from eventlog.client.aio import AsyncClient

__all__ = ["FOLLOW_BACKOFF", "follow", "ws_url"]

logger = logging.getLogger("eventlog.client")

#: Reconnecting after a drop: 0.25 s doubling up to 5 s, no jitter (as ``eventlog tail -f``).
FOLLOW_BACKOFF = Backoff(base=0.25, cap=5.0, jitter=0)

#: Close codes after which the same request, resumed, can go on.
_RESUMABLE = {1000, 1001, 1006, 1011, 1012, 1013, 4008}

_one = msgspec.json.Decoder(Event)
_many = msgspec.json.Decoder(list[Event])


def ws_url(base: str, stream: str, params: dict[str, str]) -> str:
    """The firehose URL of ``stream`` on the server at ``base`` (http -> ws, https -> wss)."""
    scheme, rest = base.split("://", 1)
    ws = "wss" if scheme == "https" else "ws"
    return f"{ws}://{rest}/api/streams/{stream}/firehose?{urlencode(params)}"


async def follow(
    client: AsyncClient,
    stream: str,
    start: int | str = "end",
    *,
    types: Sequence[str] | None = None,
    key: str | None = None,
    batch: int = 100,
) -> AsyncIterator[Event]:
    """Events of ``stream`` from ``start`` (an offset, ``"beginning"`` or ``"end"``),
    forever, over the WebSocket firehose (``client.follow(...)``, the method of
    :class:`~eventlog.client.AsyncClient`); reconnects and resumes after the last
    event it yielded, so a server restart loses and repeats nothing.

    Raises:
        StreamNotFound, Unauthorized, Forbidden, InvalidInput: The server refused
            the subscription.
        OffsetOutOfRange: Events the follower had not read yet were removed by
            retention (it does not skip them silently).
    """
    validate_stream_name(stream)
    if client.closed:
        raise LogClosed("the client is closed")
    if isinstance(start, int):
        if start < 0:
            raise InvalidPosition("start must be a non-negative offset, 'beginning' or 'end'")
        position: int | None = start
    elif start == "end":
        position = (await client.bounds(stream))[1]  # resumable from a known offset
    elif start == "beginning":
        position = None
    else:
        raise InvalidPosition(f"start must be an offset, 'beginning' or 'end', not {start!r}")
    extra = {"batch": str(batch)}
    if types:
        extra["types"] = ",".join(types)
    if key is not None:
        extra["key"] = key
    headers = {"Authorization": f"Bearer {client.api_key}"} if client.api_key else {}
    decode = _many.decode if batch > 1 else _one.decode
    failures = 0
    while True:
        where = "beginning" if position is None else str(position)
        url = ws_url(client.url, stream, {"from": where, **extra})
        try:
            async with connect(
                url,
                additional_headers=headers,
                max_size=None,
                compression=None,
                open_timeout=10,
                ssl=(client.ssl or True) if url.startswith("wss:") else None,
            ) as ws:
                if failures:
                    logger.info("firehose of %s: reconnected at offset %s", stream, position)
                failures = 0
                async for message in ws:
                    got = decode(message)
                    for event in got if isinstance(got, list) else [got]:
                        if position is not None and event.offset < position:
                            continue  # never twice, whatever the server resends
                        position = event.offset + 1
                        yield event
                error: EventLogError = Unavailable("the server closed the firehose")
        except ConnectionClosed as exc:
            error = _closed(exc, stream, position)
        except InvalidStatus as exc:
            response = exc.response
            error = error_from(
                response.status_code,
                bytes(response.body or b""),
                response.reason_phrase,
                context={"stream": stream, "offset": position or 0},
            )
            if response.status_code not in RETRY_STATUSES:
                raise error from None
        except ssl.SSLCertVerificationError as exc:
            raise tls_error(client.url, exc) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            error = Unavailable(f"cannot reach the firehose at {client.url}: {exc}")
        failures += 1
        if failures == 1:
            logger.warning("firehose of %s: %s; reconnecting", stream, error)
        await asyncio.sleep(FOLLOW_BACKOFF.delay(failures))


def _closed(exc: ConnectionClosed, stream: str, position: int | None) -> EventLogError:
    """The error a close frame means; raised at once unless resuming can fix it."""
    frame = exc.rcvd
    code, reason = (frame.code, frame.reason) if frame is not None else (1006, "")
    if code in _RESUMABLE:
        return Unavailable(f"firehose closed ({code} {reason})".strip())
    if code == 4416:
        error = OffsetOutOfRange.__new__(OffsetOutOfRange)
        EventLogError.__init__(error, f"stream {stream!r}: {reason}", code="offset_out_of_range")
        error.stream, error.offset, error.first, error.skipped = stream, position or 0, -1, 0
        raise error from None
    status = code - 4000 if 4000 <= code < 5000 else 0
    raise error_from(status, b"", f"firehose closed ({code}): {reason}") from None
