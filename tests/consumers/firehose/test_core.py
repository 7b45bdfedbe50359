"""The firehose's sans-I/O core, without an event loop: parsing, filters, hand-off, slow clients."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.firehose import (
    MAX_BATCH,
    Backlog,
    EventFilter,
    Frame,
    HubCore,
    Limits,
    Phase,
    Subscriber,
    encode_frame,
    parse_batch,
    parse_from,
    parse_key,
    parse_last_event_id,
    parse_types,
)
from consumers.firehose.params import parse_query
from eventlog import BEGINNING, END, InvalidInput, InvalidPosition, Offset
from tests.support import stored_event


def frame(offset: int, type: str = "order.created", key: str | None = None) -> Frame:
    text = f'{{"offset":{offset}}}'
    return Frame(offset, type, key, text, len(text))


def frames(start: int, stop: int, type: str = "order.created") -> list[Frame]:
    return [frame(i, type) for i in range(start, stop)]


def joined(limits: Limits) -> tuple[HubCore, Subscriber]:
    """A hub at offset 0 and a subscriber from 0 that has joined it live."""
    hub = HubCore(next_offset=0, limits=limits)
    sub = Subscriber(0, EventFilter(), limits)
    hub.try_join(sub)
    return hub, sub


def drain(sub: Subscriber) -> list[int]:
    taken = sub.take(1_000_000)
    sub.sent(len(taken))
    return [f.offset for f in taken]


# -- encoding ------------------------------------------------------------------


def test_encode_frame_is_compact_json_with_data_bytes_untouched() -> None:
    raw = b'{"b": 1,  "a": [1, 2.50]}'  # spacing and key order as the producer sent them
    event = stored_event(
        raw, offset=7, type="t.a", key="k", time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        headers={"h": "v"},
    )  # fmt: skip
    f = encode_frame(event)
    assert f.offset == 7
    assert f.type == "t.a"
    assert f.key == "k"
    assert f.size == len(f.text.encode())
    assert raw.decode() in f.text
    assert "\n" not in f.text
    decoded = msgspec.json.decode(f.text)
    assert decoded == {
        "stream": "s",
        "offset": 7,
        "id": "x",
        "type": "t.a",
        "key": "k",
        "time": "2026-01-02T03:04:05Z",
        "headers": {"h": "v"},
        "data": {"b": 1, "a": [1, 2.5]},
    }


def test_encode_frame_sends_a_stored_event_that_is_not_utf8_repaired_and_flagged() -> None:
    bad = stored_event(b'{"note": "caf\xe9"}', offset=2, time=datetime(2026, 1, 2, tzinfo=UTC))
    frame = encode_frame(bad)
    decoded = msgspec.json.decode(frame.text)
    assert decoded["data"] == {"note": "caf\ufffd"}
    assert decoded["headers"] == {"eventlog-repaired": "utf-8"}
    assert (frame.offset, frame.size) == (2, len(frame.text.encode()))


# -- parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, END),
        ("end", END),
        ("END", END),
        ("beginning", BEGINNING),
        ("0", Offset(0)),
        ("12345", Offset(12345)),
    ],
)
def test_parse_from_accepts_offsets_and_names(text: str | None, expected: object) -> None:
    assert parse_from(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1.5", "abc", "１２", "99999999999999999999", " "])
def test_parse_from_rejects_anything_else(text: str) -> None:
    with pytest.raises(InvalidPosition, match="from must be"):
        parse_from(text)


def test_parse_last_event_id() -> None:
    assert parse_last_event_id(None) is None
    assert parse_last_event_id("") is None
    assert parse_last_event_id("41") == 41
    with pytest.raises(InvalidPosition, match="Last-Event-ID"):
        parse_last_event_id("x1")


def test_parse_types_splits_and_strips() -> None:
    assert parse_types(None) == ()
    assert parse_types("order.*, payment.failed") == ("order.*", "payment.failed")


@pytest.mark.parametrize("text", ["", ",", "a,,b", "a,", "x\x01", ",".join(["a"] * 65), "a" * 300])
def test_parse_types_rejects_malformed_lists(text: str) -> None:
    with pytest.raises(InvalidInput, match="types"):
        parse_types(text)


def test_parse_key_and_batch() -> None:
    assert parse_key(None) is None
    assert parse_key("tenant-7:call-42") == "tenant-7:call-42"
    with pytest.raises(InvalidInput):
        parse_key("")
    assert parse_batch(None) == 1
    assert parse_batch("50") == 50
    assert parse_batch(str(MAX_BATCH)) == MAX_BATCH
    for bad in ("0", "-1", "x", str(MAX_BATCH + 1), "9" * 30, ""):
        with pytest.raises(InvalidInput, match="batch"):
            parse_batch(bad)


def test_parse_query_reads_every_parameter_and_resolves_the_start() -> None:
    query = parse_query({"from": "beginning", "types": "order.*", "key": "k1", "batch": "5"})
    assert (query.filter.types, query.filter.key, query.batch) == (("order.*",), "k1", 5)
    assert query.start(first=10, head=20) == 10
    assert parse_query({}).start(first=10, head=20) == 20  # from=end by default
    assert parse_query({"from": "12"}).start(first=10, head=20) == 12
    # An SSE reconnect's Last-Event-ID wins over from=.
    assert parse_query({"from": "beginning"}, "14").start(first=10, head=20) == 15


def test_parse_query_refuses_the_first_bad_parameter() -> None:
    with pytest.raises(InvalidPosition, match="from must be"):
        parse_query({"from": "x", "batch": "0"})
    with pytest.raises(InvalidInput, match="batch"):
        parse_query({"batch": "0"})


# -- filters -------------------------------------------------------------------


def test_type_globs_match_any_pattern_case_sensitively() -> None:
    f = EventFilter(("order.*", "payment.failed"))
    assert f.matches(frame(0, "order.created"))
    assert f.matches(frame(0, "order.line.added"))
    assert f.matches(frame(0, "payment.failed"))
    assert not f.matches(frame(0, "payment.succeeded"))
    assert not f.matches(frame(0, "Order.created"))
    assert not f.matches(frame(0, "orders"))
    assert not f.everything


def test_key_filter_is_exact_and_combines_with_types() -> None:
    f = EventFilter(("a.*",), key="k1")
    assert f.matches(frame(0, "a.x", "k1"))
    assert not f.matches(frame(0, "a.x", "k2"))
    assert not f.matches(frame(0, "a.x", None))
    assert not f.matches(frame(0, "b.x", "k1"))


def test_empty_filter_passes_everything_without_copying() -> None:
    f = EventFilter()
    page = frames(0, 3)
    assert f.everything
    assert f.select(page) is page


# -- backlog -------------------------------------------------------------------


def test_backlog_keeps_the_newest_within_count_and_bytes() -> None:
    b = Backlog(max_events=5, max_bytes=10_000)
    b.extend(frames(0, 12))
    assert len(b) == 5
    assert b.first_offset == 7
    assert [f.offset for f in b.page(9, 2) or []] == [9, 10]
    assert b.page(6, 2) is None
    assert b.page(12, 2) is None
    small = Backlog(max_events=100, max_bytes=3 * frame(0).size)
    small.extend(frames(0, 10))
    assert len(small) == 3
    assert small.bytes == sum(f.size for f in frames(7, 10))


def test_backlog_restarts_after_a_gap() -> None:
    b = Backlog(max_events=100, max_bytes=1 << 20)
    b.extend(frames(0, 5))
    b.extend(frames(50, 52))
    assert b.first_offset == 50
    assert len(b) == 2


# -- the hand-off --------------------------------------------------------------


def test_catch_up_then_live_has_no_gap_and_no_duplicate_when_storage_is_ahead_of_hub() -> None:
    limits = Limits(queue_events=1000, page=20, backlog_events=10)
    hub = HubCore(next_offset=50, limits=limits)
    hub.backlog.extend(frames(40, 50))
    sub = Subscriber(10, EventFilter(), limits)
    got: list[int] = []
    assert not hub.try_join(sub)
    assert hub.catch_up_page(sub) is None  # 10 is older than the backlog: read storage
    sub.feed(frames(10, 30))
    got += drain(sub)
    assert not hub.try_join(sub)
    # The storage read races ahead of the hub (the hub has not read 50..59 yet).
    sub.feed(frames(30, 60))
    assert hub.try_join(sub)
    assert sub.phase is Phase.LIVE
    hub.publish(frames(50, 70))  # 50..59 again: skipped
    got += drain(sub)
    assert got == list(range(10, 70))


def test_catch_up_from_the_backlog_joins_exactly_at_the_hub_position() -> None:
    limits = Limits(page=4, backlog_events=100)
    hub = HubCore(next_offset=0, limits=limits)
    hub.publish(frames(0, 10))
    sub = Subscriber(3, EventFilter(), limits)
    got: list[int] = []
    while not hub.try_join(sub):
        page = hub.catch_up_page(sub)
        assert page is not None
        sub.feed(page)
        got += drain(sub)
    hub.publish(frames(10, 12))
    got += drain(sub)
    assert got == list(range(3, 12))


def test_a_start_beyond_the_head_joins_at_once_and_waits_for_its_offset() -> None:
    limits = Limits()
    hub = HubCore(next_offset=5, limits=limits)
    sub = Subscriber(8, EventFilter(), limits)
    assert hub.try_join(sub)
    hub.publish(frames(5, 8))
    assert drain(sub) == []
    hub.publish(frames(8, 10))
    assert drain(sub) == [8, 9]


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 60),
    hub_start=st.integers(0, 60),
    steps=st.lists(st.tuples(st.sampled_from(["publish", "read", "take"]), st.integers(1, 15))),
)
def test_any_interleaving_of_publishes_and_catch_up_reads_is_gapless(
    start: int, hub_start: int, steps: list[tuple[str, int]]
) -> None:
    """Whatever the order of hub publishes, catch-up reads and sends, the client
    receives every offset from its start up to what was published, once, in order."""
    limits = Limits(queue_events=100_000, page=7, backlog_events=5)
    hub = HubCore(next_offset=hub_start, limits=limits)
    storage_head = hub_start
    sub = Subscriber(start, EventFilter(), limits)
    got: list[int] = []
    for action, n in [*steps, ("publish", 0), ("read", 0), ("read", 0), ("take", 0)]:
        if action == "publish":
            storage_head += n  # appended...
            hub.publish(frames(hub.next_offset, storage_head))  # ...and read by the hub
        elif action == "read" and not hub.try_join(sub):
            page = hub.catch_up_page(sub)
            if page is None:  # read storage, which may be ahead of the hub
                storage_head += n // 3
                page = frames(sub.next_offset, min(sub.next_offset + limits.page, storage_head))
            sub.feed(page)
            hub.try_join(sub)
        got += drain(sub)
    while sub.phase is Phase.CATCHING_UP:  # finish catching up
        page = hub.catch_up_page(sub) or frames(
            sub.next_offset, min(sub.next_offset + limits.page, storage_head)
        )
        sub.feed(page)
        hub.try_join(sub)
        got += drain(sub)
    hub.publish(frames(hub.next_offset, storage_head))
    got += drain(sub)
    assert got == list(range(start, max(start, storage_head)))


def test_filtered_subscriber_skips_unwanted_events_on_both_sides_of_the_seam() -> None:
    limits = Limits(page=5)
    hub = HubCore(next_offset=10, limits=limits)
    sub = Subscriber(0, EventFilter(("keep.*",)), limits)
    mixed = [frame(i, "keep.x" if i % 3 == 0 else "drop.x") for i in range(20)]
    sub.feed(mixed[0:10])
    assert hub.try_join(sub)
    hub.publish(mixed[10:20])
    assert drain(sub) == [0, 3, 6, 9, 12, 15, 18]


# -- slow clients --------------------------------------------------------------


def test_live_subscriber_past_its_bound_overflows_with_the_first_unsent_offset() -> None:
    limits = Limits(queue_events=10)
    hub = HubCore(next_offset=0, limits=limits)
    fast = Subscriber(0, EventFilter(), limits)
    slow = Subscriber(0, EventFilter(), limits)
    notified: list[Phase] = []
    slow.notify = lambda: notified.append(slow.phase)
    assert hub.try_join(fast)
    assert hub.try_join(slow)
    got: list[int] = []
    in_flight = slow.take(1)  # one frame taken, never reported sent
    hub.publish(frames(0, 8))
    got += drain(fast)
    in_flight = slow.take(3)  # offsets 0..2: the client is stuck sending offset 1
    slow.sent(1)
    assert [f.offset for f in in_flight] == [0, 1, 2]
    overflowed = hub.publish(frames(8, 16))  # 5 queued + 8 new > 10
    got += drain(fast)
    assert overflowed == [slow]
    assert slow.phase is Phase.OVERFLOWED
    assert notified[-1] is Phase.OVERFLOWED
    assert slow.resume_offset == 1
    assert not slow.queue
    assert slow.queued_bytes == 0
    assert id(slow) not in hub.live
    hub.publish(frames(16, 20))
    got += drain(fast)
    assert got == list(range(20))  # the fast client lost nothing


def test_overflow_with_everything_sent_resumes_at_the_first_dropped_event() -> None:
    hub, sub = joined(Limits(queue_events=3))
    hub.publish(frames(0, 2))
    assert drain(sub) == [0, 1]
    hub.publish(frames(2, 4))
    assert hub.publish(frames(4, 6)) == [sub]
    assert sub.resume_offset == 2


def test_byte_bound_overflows_too() -> None:
    hub, sub = joined(Limits(queue_events=1000, queue_bytes=5 * frame(0).size))
    assert hub.publish(frames(0, 4)) == []
    assert hub.publish(frames(4, 8)) == [sub]
    assert sub.resume_offset == 0


def test_a_client_with_an_empty_queue_is_never_slow_even_for_a_huge_page() -> None:
    hub, sub = joined(Limits(queue_events=2))
    assert hub.publish(frames(0, 50)) == []
    assert len(drain(sub)) == 50


def test_close_keeps_the_resume_offset_and_ends_the_subscriber() -> None:
    hub, sub = joined(Limits())
    hub.publish(frames(0, 5))
    sub.take(2)
    sub.sent(2)
    hub.close_all("server shutting down")
    assert sub.phase is Phase.CLOSED
    assert sub.reason == "server shutting down"
    assert sub.resume_offset == 2
    assert sub.take(10) == []


def test_skip_to_moves_hub_and_live_subscribers_past_removed_events() -> None:
    limits = Limits()
    hub = HubCore(next_offset=3, limits=limits)
    sub = Subscriber(3, EventFilter(), limits)
    hub.try_join(sub)
    hub.skip_to(10)
    hub.publish(frames(10, 12))
    assert drain(sub) == [10, 11]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue_events"):
        Limits(queue_events=0)


def test_frames_in_flight_at_overflow_count_once_the_sender_reports_them() -> None:
    hub, sub = joined(Limits(queue_events=4))
    hub.publish(frames(0, 4))
    in_flight = sub.take(3)  # the sender is sending 0..2
    sub.sent(1)
    hub.publish(frames(4, 6))
    assert hub.publish(frames(6, 9)) == [sub]  # overflow while 1 and 2 are in flight
    assert sub.resume_offset == 1
    sub.sent(2)  # the sender finished 1 and 2 before it noticed
    assert sub.resume_offset == 3  # 3 was queued, never sent
    assert [f.offset for f in in_flight] == [0, 1, 2]
