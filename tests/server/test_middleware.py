"""The request middleware's helpers: correlation ids, log lines, the buffered access
log, body deadlines."""

from __future__ import annotations

import time

import msgspec

from server.access_log import format_line
from server.middleware import correlation_id_from


def test_correlation_id_sources() -> None:
    assert correlation_id_from({"x-correlation-id": "abc-1"}) == "abc-1"
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert correlation_id_from({"traceparent": trace}) == "4bf92f3577b34da6a3ce929d0e0e4736"
    # unsafe or malformed values are replaced by a generated id
    generated = correlation_id_from({"x-correlation-id": "a b\n", "traceparent": "garbage"})
    assert len(generated) == 32
    assert generated != correlation_id_from({})
    zero = "00-" + "0" * 32 + "-00f067aa0ba902b7-01"
    assert correlation_id_from({"traceparent": zero}) != "0" * 32


def test_log_lines_json_and_key_value() -> None:
    fields = {"method": "GET", "path": "/a b", "status": 200, "msg": 'say "hi"'}
    assert msgspec.json.decode(format_line(fields, "json")) == fields
    assert format_line(fields, "kv") == 'method=GET path="/a b" status=200 msg="say \\"hi\\""'
    assert format_line({"x": ""}, "kv") == 'x=""'


def test_access_line_matches_format_line_in_both_formats() -> None:
    from server.access_log import access_line

    fields: dict[str, object] = {
        "method": "POST",
        "path": "/api/streams/a b/events",
        "route": "/api/streams/{stream}/events",
        "status": 201,
        "ms": 1.25,
        "cid": "req-1",
        "client": "127.0.0.1:5000",
    }
    for fmt in ("kv", "json", "kv"):  # kv twice: the second finds its path remembered
        line = access_line(fmt, **fields)  # type: ignore[arg-type]
        if fmt == "json":
            decoded = msgspec.json.decode(line)
            assert decoded.pop("time").endswith("Z")
            assert decoded == fields
        else:
            time_part, rest = line.split(" ", 1)
            assert time_part.startswith("time=")
            assert rest == format_line(fields, "kv")
            assert 'path="/api/streams/a b/events"' in rest


def test_access_line_stamps_the_wall_clock_second_from_a_perf_counter_reading() -> None:
    from server.access_log import access_line

    def second(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    before = time.time()
    line = access_line(
        "kv", method="GET", path="/healthz", route="/healthz", status=200, ms=0.5,
        cid="c", client="-", at=time.perf_counter(),
    )  # fmt: skip
    after = time.time()
    assert line.split(" ", 1)[0].removeprefix("time=") in {second(before), second(after)}
    assert " ms=0.50 " in line


async def test_buffered_line_writer_writes_lines_together_after_its_interval() -> None:
    import asyncio
    import io

    from server.access_log import BufferedLineWriter

    class Counting(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            self.writes += 1
            return super().write(s)

    stream = Counting()
    writer = BufferedLineWriter(stream, interval=0.02, max_lines=5)
    for i in range(3):
        writer(f"line {i}")
    await asyncio.sleep(0)
    assert stream.getvalue() == ""
    await asyncio.sleep(0.1)
    assert stream.getvalue() == "line 0\nline 1\nline 2\n"
    assert stream.writes == 1
    for i in range(5):  # max_lines reached: written at once
        writer(f"more {i}")
    assert stream.getvalue().endswith("more 4\n")
    assert stream.writes == 2
    writer("last")
    writer.flush()  # what the server does on exit
    assert stream.getvalue().endswith("more 4\nlast\n")
    await asyncio.sleep(0.05)
    assert stream.writes == 3


async def test_body_deadlines_cancel_only_reads_past_their_deadline() -> None:
    import asyncio

    from server.middleware import BodyDeadlines

    deadlines = BodyDeadlines(tick=0.01)
    loop = asyncio.get_running_loop()
    outcomes: dict[str, str] = {}

    async def read(name: str, wait: float, allowed: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        deadlines.start(task, loop.time() + allowed, loop)
        try:
            await asyncio.sleep(wait)
            outcomes[name] = "read"
        except asyncio.CancelledError:
            outcomes[name] = "expired" if deadlines.stop(task) else "cancelled"
        finally:
            deadlines.stop(task)

    started = loop.time()
    slow = asyncio.create_task(read("slow", 10, 0.05))
    quick = asyncio.create_task(read("quick", 0.01, 1))
    other = asyncio.create_task(read("other", 10, 5))
    await asyncio.gather(slow, quick)
    assert loop.time() - started < 1
    other.cancel()  # a cancel that is not the deadline's
    await asyncio.gather(other, return_exceptions=True)
    assert outcomes == {"slow": "expired", "quick": "read", "other": "cancelled"}
