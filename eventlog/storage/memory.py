"""The in-memory backend: a real implementation for tests and ephemeral logs.

It keeps the same contract as the durable backends (the shared contract suite
proves it) but nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from eventlog.errors import LogClosed
from eventlog.model import ConsumerInfo, Event, Retention, StreamInfo, utc_now
from eventlog.storage.base import AppendOutcome, AppendRequest
from eventlog.storage.capabilities import Capabilities
from eventlog.storage.planner import given_ids, plan_appends

__all__ = ["MemoryStorage"]


class _Stream:
    __slots__ = ("bytes", "events", "first", "next", "retention", "times")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.times: list[datetime] = []
        self.first = 0
        self.next = 0
        self.bytes = 0
        self.retention = Retention()


class MemoryStorage:
    """Events, streams and consumer offsets in Python dicts and lists."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._offsets: dict[tuple[str, str], ConsumerInfo] = {}
        self._open = False
        self.capabilities = Capabilities(kind="memory", durable=False)

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    def _check(self) -> None:
        if not self._open:
            raise LogClosed("storage is closed")

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        self._check()
        wanted = given_ids(requests)
        existing = {
            (stream, i): self._ids[(stream, i)]
            for stream, ids in wanted.items()
            for i in ids
            if (stream, i) in self._ids
        }
        heads = {
            r.stream: self._streams[r.stream].next for r in requests if r.stream in self._streams
        }
        plan = plan_appends(requests, heads, existing)
        for row in plan.rows:
            s = self._streams.get(row.stream)
            if s is None:
                s = self._streams[row.stream] = _Stream()
            time = max(now, s.times[-1]) if s.times else now
            e = row.event
            s.events.append(
                Event(
                    stream=row.stream,
                    offset=row.offset,
                    id=e.id,
                    type=e.type,
                    key=e.key,
                    time=time,
                    headers=e.headers,
                    data=msgspec.Raw(e.data),
                )
            )
            s.times.append(time)
            s.next = row.offset + 1
            s.bytes += len(e.data)
            self._ids[(row.stream, e.id)] = row.offset
        return plan.outcomes

    async def read(self, stream: str, start: int, limit: int) -> list[Event]:
        self._check()
        s = self._streams.get(stream)
        if s is None or limit <= 0:
            return []
        i = max(start - s.first, 0)
        return s.events[i : i + limit]

    def _info(self, name: str, s: _Stream) -> StreamInfo:
        return StreamInfo(
            name=name,
            next_offset=s.next,
            first_offset=s.first,
            count=s.next - s.first,
            bytes=s.bytes,
            last_time=s.times[-1] if s.times else None,
            retention=s.retention,
        )

    async def stream_info(self, stream: str) -> StreamInfo | None:
        self._check()
        s = self._streams.get(stream)
        return None if s is None else self._info(stream, s)

    async def streams(self) -> list[StreamInfo]:
        self._check()
        return [self._info(n, s) for n, s in sorted(self._streams.items())]

    async def set_retention(self, stream: str, retention: Retention) -> None:
        self._check()
        self._streams.setdefault(stream, _Stream()).retention = retention

    async def trim(self, stream: str, before: int) -> int:
        self._check()
        s = self._streams.get(stream)
        if s is None or before <= s.first:
            return 0
        n = min(before, s.next) - s.first
        for event in s.events[:n]:
            s.bytes -= len(event.data)
            del self._ids[(stream, event.id)]
        del s.events[:n]
        del s.times[:n]
        s.first += n
        return n

    async def delete_stream(self, stream: str) -> bool:
        self._check()
        s = self._streams.pop(stream, None)
        if s is None:
            return False
        for event in s.events:
            del self._ids[(stream, event.id)]
        for key in [k for k in self._offsets if k[1] == stream]:
            del self._offsets[key]
        return True

    async def get_offset(self, consumer: str, stream: str) -> int | None:
        self._check()
        info = self._offsets.get((consumer, stream))
        return None if info is None else info.offset

    async def commit_offset(self, consumer: str, stream: str, offset: int) -> None:
        self._check()
        self._offsets[(consumer, stream)] = ConsumerInfo(
            name=consumer, stream=stream, offset=offset, updated=utc_now()
        )

    async def consumers(self) -> list[ConsumerInfo]:
        self._check()
        return [self._offsets[k] for k in sorted(self._offsets)]
